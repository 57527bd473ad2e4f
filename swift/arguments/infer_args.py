"""Arguments of ``swift infer``."""
from dataclasses import dataclass, field
from typing import Literal, Optional

from ..utils import SwiftError
from ..infer.arguments import LmdeployArguments, SglangArguments, VllmEngineArguments
from .base_args import BaseArguments, GenerationArguments


@dataclass
class InferArguments(BaseArguments, GenerationArguments, VllmEngineArguments, SglangArguments, LmdeployArguments):
    infer_backend: Literal['transformers', 'pt', 'vllm', 'sglang', 'lmdeploy'] = field(
        default='pt', metadata={'help': "Inference engine: pt works everywhere ('transformers' is ms-swift 4's name "
                                        'for it); vllm needs vLLM (scripts/setup_vllm.sh); sglang and lmdeploy need '
                                        'their package and a CUDA GPU.'})
    max_batch_size: int = field(default=1, metadata={'help': 'Rows generated together in batch inference.'})
    merge_lora: bool = field(default=False, metadata={'help': 'Merge the adapters into the base before inference.'})
    result_path: Optional[str] = field(default=None, metadata={'help': 'Where batch inference writes its jsonl.'})
    output_dir: Optional[str] = field(default=None, metadata={'help': 'Folder for a merged model.'})
    split_dataset_ratio: float = field(default=0.0, metadata={'help': 'Held-out fraction for --load_data_args.'})
    write_batch_size: int = field(
        default=1000, metadata={'help': 'Batch inference appends its results to the jsonl every N rows; -1 writes '
                                        'once at the end.'})
    metric: Optional[Literal['acc', 'rouge']] = field(
        default=None, metadata={'help': 'Score batch-inference answers against the labels: acc (exact match).'})
    reranker_use_activation: bool = field(
        default=True, metadata={'help': "A reranker's score is the sigmoid of its logit (false: the logit)."})
    val_dataset_sample: Optional[int] = field(
        default=None, metadata={'help': 'Rows of the inference dataset to answer (repeated or drawn at random as '
                                        '--dataset_shuffle says).'})

    def __post_init__(self):
        if self.infer_backend == 'transformers':
            self.infer_backend = 'pt'
        BaseArguments.__post_init__(self)
        GenerationArguments.__post_init__(self)
        if self.metric == 'rouge':
            raise SwiftError('--metric rouge: not built yet (ms-swift scores it with rouge, jieba and nltk, which '
                             'swift does not install); use --metric acc')
        if self.val_dataset_sample is not None and self.val_dataset_sample < 0:
            raise SwiftError(f'--val_dataset_sample must be positive, got {self.val_dataset_sample}')
        VllmEngineArguments.__post_init__(self)
        SglangArguments.__post_init__(self)
        LmdeployArguments.__post_init__(self)
        if self.max_batch_size < 1:
            raise SwiftError(f'--max_batch_size must be at least 1, got {self.max_batch_size}')
        for flag in ('new_special_tokens', 'rope_scaling', 'max_memory', 'init_strategy',
                     'experts_impl'):
            if getattr(self, flag) and self.infer_backend != 'pt':
                raise SwiftError(f'--{flag} changes the model as the pt backend loads it, not --infer_backend '
                                 f'{self.infer_backend}: export a model with the change first')
        if not self.model and not self.adapters:
            raise SwiftError('give --model or --adapters')
