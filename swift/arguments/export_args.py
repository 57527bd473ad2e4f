"""Arguments of ``swift export``."""
from dataclasses import dataclass, field
from typing import Optional

from ..utils import SwiftError
from .base_args import BaseArguments


@dataclass
class ExportArguments(BaseArguments):
    merge_lora: bool = field(default=False, metadata={'help': 'Merge --adapters into the base: writes CKPT-merged/.'})
    output_dir: Optional[str] = field(default=None, metadata={'help': 'Where to write; default CKPT-merged.'})
    push_to_hub: bool = field(default=False, metadata={'help': 'Upload the checkpoint to a hub.'})
    hub_model_id: Optional[str] = field(default=None, metadata={'help': "'<namespace>/<name>' on the hub."})
    hub_private_repo: bool = False
    commit_message: str = 'update files'

    def __post_init__(self):
        BaseArguments.__post_init__(self)
        if not self.model and not self.adapters:
            raise SwiftError('give --model or --adapters')
        if self.merge_lora and not self.adapters:
            raise SwiftError('--merge_lora true needs --adapters CKPT')
        if self.push_to_hub and not self.hub_model_id:
            raise SwiftError('--push_to_hub true needs --hub_model_id <namespace>/<name>')
