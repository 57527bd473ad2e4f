"""Arguments of ``swift web-ui``: where the page listens and its language (ms-swift's names and defaults)."""
from dataclasses import dataclass, field
from typing import Literal

from .deploy_args import check_port


@dataclass
class WebUIArguments:
    server_name: str = field(
        default='127.0.0.1',
        metadata={'help': 'Address to listen on; 0.0.0.0 lets anyone on the network start commands on this machine.'})
    server_port: int = field(default=7860, metadata={'help': 'Port to listen on.'})
    lang: Literal['en', 'zh'] = field(default='zh', metadata={'help': 'Language of the page (ms-swift: zh).'})
    share: bool = field(default=False, metadata={'help': 'Also publish the page on a public gradio.live link.'})

    def __post_init__(self):
        check_port('--server_port', self.server_port)
