"""Arguments of ``swift sample``: the inference arguments (model, template, generation) plus ms-swift's sampler's."""
import json
from dataclasses import dataclass, field
from typing import Literal, Optional

from ..utils import SwiftError
from .infer_args import InferArguments


@dataclass
class SampleArguments(InferArguments):
    sampler_type: Literal['sample', 'distill', 'mcts'] = field(
        default='sample', metadata={'help': 'sample: N completions per prompt from --model; distill: the same from '
                                            'an OpenAI-compatible API (--sampler_engine client).'})
    sampler_engine: Literal['transformers', 'pt', 'vllm', 'lmdeploy', 'client', 'no'] = field(
        default='transformers', metadata={'help': "What generates: transformers ('pt' is ms-swift 3's name), vllm, "
                                                  'client (an OpenAI-compatible API: --engine_kwargs base_url), or '
                                                  'no (score --cache_files only).'})
    num_return_sequences: int = field(default=64, metadata={'help': 'Completions sampled per prompt.'})
    orm_model: Optional[str] = field(
        default=None, metadata={'help': 'Outcome reward: a reward function name (accuracy, format, ...; '
                                        'docs/rewards.md); only completions it scores above 0 are kept.'})
    prm_model: Optional[str] = field(
        default=None, metadata={'help': 'A reward model folder (sequence classifier) that scores each completion; '
                                        'completions at or below --prm_threshold are dropped.'})
    output_dir: Optional[str] = field(default='sample_output', metadata={'help': 'Folder of the sample file.'})
    output_file: Optional[str] = field(
        default=None, metadata={'help': 'File name (no folder) of the jsonl; default: the time, e.g. '
                                        '2026-01-01-12-00-00.jsonl.'})
    override_exist_file: bool = field(
        default=False, metadata={'help': 'Write over an existing --output_file; otherwise the run does nothing.'})
    num_sampling_batch_size: int = field(default=1, metadata={'help': 'Prompts sampled together per batch.'})
    num_sampling_batches: Optional[int] = field(default=None, metadata={'help': 'Batches to run; default: all.'})
    n_best_to_keep: int = field(default=5, metadata={'help': 'With a reward: best completions kept per prompt.'})
    data_range: list[int] = field(
        default_factory=list, metadata={'help': 'SHARD NUM_SHARDS: sample only this shard of the dataset.'})
    prm_threshold: float = field(default=0.0, metadata={'help': 'Lowest --prm_model score kept (exclusive).'})
    easy_query_threshold: Optional[float] = field(
        default=None, metadata={'help': 'Drop a prompt whose share of correct completions (--orm_model) reaches '
                                        'this: it is too easy to teach anything.'})
    engine_kwargs: Optional[str] = field(
        default=None, metadata={'help': 'JSON object for the engine; for client: base_url, api_key.'})
    cache_files: list[str] = field(
        default_factory=list, metadata={'help': 'Sample files of an earlier run to score (--sampler_engine no).'})
    temperature: Optional[float] = field(default=1.0, metadata={'help': 'Sampling temperature; 0 is greedy.'})

    def __post_init__(self):
        if self.sampler_engine == 'pt':
            self.sampler_engine = 'transformers'  # ms-swift 3's name
        if self.sampler_type == 'mcts':
            raise SwiftError('--sampler_type mcts: not built yet (Monte Carlo tree search sampling); use sample')
        if self.sampler_type == 'distill' and self.sampler_engine != 'client':
            raise SwiftError('--sampler_type distill samples from an API: give --sampler_engine client and '
                             '--engine_kwargs \'{"base_url": "..."}\'')
        self.infer_backend = 'vllm' if self.sampler_engine == 'vllm' else 'pt'
        if self.sampler_engine == 'lmdeploy':
            self.infer_backend = 'lmdeploy'
        InferArguments.__post_init__(self)
        if self.output_file and ('/' in self.output_file or '\\' in self.output_file):
            raise SwiftError(f'--output_file is a file name without a folder (use --output_dir), got '
                             f'{self.output_file!r}')
        try:
            self.engine_kwargs = json.loads(self.engine_kwargs) if isinstance(self.engine_kwargs, str) else (
                self.engine_kwargs or {})
        except json.JSONDecodeError as err:
            raise SwiftError(f'--engine_kwargs must be a JSON object: {err}') from None
        if not isinstance(self.engine_kwargs, dict):
            raise SwiftError('--engine_kwargs must be a JSON object')
        if self.sampler_engine == 'client' and not self.engine_kwargs.get('base_url'):
            raise SwiftError('--sampler_engine client needs the API address: --engine_kwargs \'{"base_url": '
                             '"http://127.0.0.1:8000/v1"}\'')
        if self.sampler_engine == 'no' and not self.cache_files:
            raise SwiftError('--sampler_engine no scores earlier samples: give --cache_files')
        if self.data_range and (len(self.data_range) != 2 or not 0 <= self.data_range[0] < self.data_range[1]):
            raise SwiftError(f'--data_range is SHARD NUM_SHARDS with 0 <= SHARD < NUM_SHARDS, got {self.data_range}')
        for flag in ('num_return_sequences', 'num_sampling_batch_size', 'n_best_to_keep'):
            if getattr(self, flag) < 1:
                raise SwiftError(f'--{flag} must be at least 1, got {getattr(self, flag)}')
        if not self.dataset:
            raise SwiftError('--dataset: give the prompts to sample from')
