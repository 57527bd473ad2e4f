"""Arguments of ``swift app``: the inference arguments plus the web page's (ms-swift's names and defaults)."""
from dataclasses import dataclass, field
from typing import Literal, Optional

from .deploy_args import check_port
from .infer_args import InferArguments


@dataclass
class AppArguments(InferArguments):
    studio_title: Optional[str] = field(default=None, metadata={'help': 'Page title; default: the model folder name.'})
    lang: Literal['en', 'zh'] = field(default='en', metadata={'help': 'Language of the page.'})
    server_name: str = field(
        default='127.0.0.1',
        metadata={'help': 'Address to listen on; 0.0.0.0 opens the chat, without any login, to the whole network.'})
    server_port: int = field(default=7860, metadata={'help': 'Port to listen on.'})
    share: bool = field(default=False, metadata={'help': "Also publish the page on a public gradio.live link."})
    stream: bool = field(default=True, metadata={'help': 'Show the answer token by token as it is generated.'})

    def __post_init__(self):
        InferArguments.__post_init__(self)
        check_port('--server_port', self.server_port)
