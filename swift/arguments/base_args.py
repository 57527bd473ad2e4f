"""Argument groups shared by every command. Dataclasses only: ``__post_init__`` validates and does no I/O."""
import os
from dataclasses import dataclass, field, fields
from typing import Literal, Optional, TypeVar

from ..utils import SwiftError
from ..utils.errors import json_object
from ..utils.io import read_json

TorchDtype = Literal['auto', 'float32', 'float16', 'bfloat16', 'fp32', 'fp16', 'bf16']
G = TypeVar('G')
AttnImpl = Literal['flash_attn', 'flash_attention_2', 'sdpa', 'eager']


def group(args, cls: type[G], **overrides) -> G:
    """The ``cls`` part of a command's arguments, as its own object (with ``overrides``): what a consumer such as
    the tuners, an engine or a trainer receives instead of the whole command line."""
    return cls(**{**{f.name: getattr(args, f.name) for f in fields(cls) if f.init}, **overrides})


@dataclass
class ModelArguments:
    model: Optional[str] = field(default=None, metadata={'help': 'Local model folder or hub id.'})
    model_type: Optional[str] = field(
        default=None, metadata={'help': 'Registry name of the model family; detected from config.json when unset.'})
    model_revision: Optional[str] = field(default=None, metadata={'help': 'Hub revision (branch, tag or commit).'})
    torch_dtype: Optional[TorchDtype] = field(
        default=None, metadata={'help': 'Weights dtype. bfloat16 on a CPU without native bf16 computes in float32.'})
    attn_impl: Optional[AttnImpl] = field(
        default=None, metadata={'help': 'Attention kernel; flash_attn falls back to sdpa when not installed.'})
    use_hf: bool = field(default=False, metadata={'help': 'Download from Hugging Face instead of ModelScope.'})
    hub_token: Optional[str] = field(default=None, metadata={'help': 'Token for private hub repositories.'})
    trust_remote_code: bool = field(default=False, metadata={'help': 'Run code shipped with the model.'})
    check_model: bool = field(default=True, metadata={'help': 'Check the hub for a newer model (ignored offline).'})
    local_repo_path: Optional[str] = field(default=None, metadata={'help': 'Local clone of a repo the model needs.'})
    device_map: Optional[str] = field(default=None, metadata={'help': "Device placement, e.g. 'auto' or 'cpu'."})
    task_type: Literal['causal_lm', 'seq_cls', 'embedding', 'reranker', 'generative_reranker'] = field(
        default='causal_lm', metadata={'help': 'causal_lm generates; seq_cls scores (reward models, classifiers); '
                                               'embedding: last-token vectors, L2-normalised; reranker: one-output '
                                               'scoring head on query + document; generative_reranker: the logit of '
                                               '"yes" minus "no" at the last token.'})
    num_labels: Optional[int] = field(default=None, metadata={'help': 'Outputs of a seq_cls head (1 for a reward).'})
    problem_type: Optional[Literal['regression', 'single_label_classification', 'multi_label_classification']] = field(
        default=None, metadata={'help': "seq_cls loss, written into config.json; default: transformers' choice "
                                        '(regression for one label).'})
    experts_impl: Optional[Literal['grouped_mm', 'batched_mm', 'eager']] = field(
        default=None, metadata={'help': "MoE experts kernel (transformers' experts_implementation)."})
    max_memory: Optional[str] = field(
        default=None, metadata={'help': 'JSON object of memory per device for device_map auto/sequential, e.g. '
                                        '\'{"0": "20GB", "cpu": "60GB"}\'; passed to from_pretrained.'})
    init_strategy: Optional[Literal['zero', 'uniform', 'normal', 'xavier_uniform', 'xavier_normal',
                                    'kaiming_uniform', 'kaiming_normal', 'orthogonal']] = field(
        default=None, metadata={'help': 'Initialise the parameters the checkpoint lacks (e.g. a new head) this way.'})
    rope_scaling: Optional[str] = field(
        default=None, metadata={'help': "RoPE scaling: linear, dynamic or yarn (factor from --max_model_len), or a "
                                        'JSON object such as \'{"rope_type": "yarn", "factor": 4}\'.'})
    new_special_tokens: list[str] = field(
        default_factory=list, metadata={'help': 'Tokens to add to the tokenizer (or .txt files of them, one per '
                                                'whitespace-separated word); the embeddings grow to hold them.'})
    quant_method: Optional[Literal['bnb']] = field(
        default=None, metadata={'help': 'Load the base model quantized (QLoRA): bnb = bitsandbytes.'})
    quant_bits: Optional[int] = field(
        default=None, metadata={'help': '4 or 8 with --quant_method bnb; 0 loads unquantized.'})
    bnb_4bit_quant_type: Literal['nf4', 'fp4'] = field(
        default='nf4', metadata={'help': 'bitsandbytes 4-bit data type: NormalFloat4 or plain FP4.'})
    bnb_4bit_use_double_quant: bool = field(
        default=True, metadata={'help': 'Quantize the 4-bit quantization constants as well (saves memory).'})
    bnb_4bit_compute_dtype: Optional[Literal['float32', 'float16', 'bfloat16']] = field(
        default=None, metadata={'help': 'dtype the 4-bit layers compute in; default --torch_dtype (float32 on a '
                                        'CPU).'})
    bnb_4bit_quant_storage: Optional[Literal['uint8', 'int8', 'float16', 'bfloat16', 'float32', 'float64']] = field(
        default=None, metadata={'help': 'dtype the packed 4-bit weights are stored in (default uint8); FSDP/DeepSpeed '
                                        'need it equal to the other weights.'})

    def parse_rope_scaling(self) -> None:
        if isinstance(self.rope_scaling, str) and self.rope_scaling.strip().startswith('{'):
            self.rope_scaling = json_object('--rope_scaling', self.rope_scaling, "such as '{\"factor\": 2}'")
        elif isinstance(self.rope_scaling, str) and self.rope_scaling not in ('linear', 'dynamic', 'yarn'):
            raise SwiftError(f'--rope_scaling must be linear, dynamic, yarn or a JSON object, got {self.rope_scaling!r}')

    def expand_special_tokens(self) -> None:
        """--new_special_tokens: a ``.txt`` entry stands for the whitespace-separated tokens it holds."""
        tokens = []
        for token in self.new_special_tokens:
            if token.endswith('.txt'):
                if not os.path.isfile(token):
                    raise SwiftError(f'--new_special_tokens {token}: no such file')
                with open(token, encoding='utf-8') as f:
                    tokens += f.read().split()
            else:
                tokens.append(token)
        self.new_special_tokens = tokens

    @property
    def quantized(self) -> bool:
        return bool(self.quant_bits)


@dataclass
class DataArguments:
    dataset: list[str] = field(
        default_factory=list, metadata={'help': "Dataset files or ids: 'name[:subset][#N]'. Several are concatenated."})
    val_dataset: list[str] = field(default_factory=list, metadata={'help': 'Evaluation datasets, same syntax.'})
    split_dataset_ratio: float = field(
        default=0.01, metadata={'help': 'Fraction of the training data held out for evaluation when no val_dataset.'})
    data_seed: int = field(default=42, metadata={'help': 'Seed for sampling, shuffling and the split.'})
    dataset_num_proc: int = field(default=1, metadata={'help': 'Processes for encoding.'})
    dataset_shuffle: bool = field(default=True, metadata={'help': 'Shuffle the training data before splitting.'})
    columns: Optional[str] = field(
        default=None, metadata={'help': 'JSON object renaming columns, e.g. \'{"question": "query"}\'.'})
    strict: bool = field(default=True, metadata={'help': 'Stop on a malformed row; false skips and counts it.'})
    model_name: list[str] = field(
        default_factory=list, metadata={'help': 'Name for swift/self-cognition: one, or Chinese then English.'})
    model_author: list[str] = field(
        default_factory=list, metadata={'help': 'Author for swift/self-cognition: one, or Chinese then English.'})
    custom_dataset_info: Optional[str] = field(default=None, metadata={'help': 'A dataset_info.json of your own.'})
    load_from_cache_file: bool = field(
        default=False, metadata={'help': "Reuse normalised rows cached under the 🤗 datasets cache (swift_rows/), keyed "
                                         "by the rows' content and the data flags, and training's encoded rows "
                                         "(swift_encoded/, keyed by the rows and their encoding); false redoes both."})
    val_dataset_shuffle: bool = field(default=False, metadata={'help': 'Shuffle --val_dataset rows (--data_seed).'})
    interleave_prob: Optional[list[float]] = field(
        default=None, metadata={'help': 'Mix the --dataset entries with these probabilities (datasets.'
                                        'interleave_datasets) instead of concatenating them.'})
    stopping_strategy: Literal['first_exhausted', 'all_exhausted'] = field(
        default='first_exhausted', metadata={'help': 'With --interleave_prob: stop when the first dataset runs out, '
                                                     'or repeat them until all have.'})
    disable_auto_column_mapping: bool = field(
        default=False, metadata={'help': 'Read questions/answers only from query/response columns (prompt, question, '
                                         'problem, answer, completion are not renamed); --columns still applies.'})
    lazy_tokenize: bool = field(default=False, metadata={'help': 'Encode rows while training instead of before.'})
    packing: bool = field(default=False, metadata={'help': 'Pack rows into max_length sequences.'})
    padding_free: bool = field(default=False, metadata={'help': 'Concatenate each batch without padding.'})

    def __post_init__(self):
        if not 0 <= self.split_dataset_ratio < 1:
            raise SwiftError(f'--split_dataset_ratio must be in [0, 1), got {self.split_dataset_ratio}')
        self.columns = json_object('--columns', self.columns, 'mapping old column names to new ones')


@dataclass
class TemplateArguments:
    template: Optional[str] = field(default=None, metadata={'help': 'Chat template; detected from the model.'})
    system: Optional[str] = field(default=None, metadata={'help': 'Default system prompt: a string or a text file.'})
    max_length: Optional[int] = field(default=None, metadata={'help': 'Longest encoded row, in tokens.'})
    truncation_strategy: Literal['delete', 'left', 'right'] = field(
        default='delete', metadata={'help': 'What to do with a row longer than max_length.'})
    loss_scale: str = field(
        default='default', metadata={'help': 'Which tokens carry loss: default (assistant turns and tool calls), '
                                             'last_round, or all; +react, +hermes, +qwen, +agentflan or +alpha_umi '
                                             "(or alone) weighs them as ms-swift's agent configs do (2.0 on calls); "
                                             '+ignore_empty_think (or alone) also leaves out an answer\'s leading '
                                             'empty <think></think> block.'})
    agent_template: Optional[str] = field(
        default=None, metadata={'help': "How a row's tools and tool calls are written: hermes, react_en, react_zh; "
                                        'default: the family\'s own (hermes for Qwen2.5/Qwen3, react_en otherwise).'})
    use_chat_template: bool = field(default=True, metadata={'help': 'False trains on raw text (swift pt).'})
    template_backend: Literal['swift', 'jinja'] = field(
        default='swift', metadata={'help': "jinja renders with the tokenizer's own chat template (the hf template: "
                                           'loss spans found turn by turn, so it trains too); text-only models.'})
    is_binary_loss_scale: Optional[bool] = field(
        default=None, metadata={'help': "ms-swift's switch to express 0/1 loss scales as -100 labels: the 0/1 "
                                        '--loss_scale strategies here always are; weighted ones add loss_scale.'})
    response_prefix: Optional[str] = field(
        default=None, metadata={'help': "Text the answer starts with at inference, e.g. '<think>\\n'; wins over "
                                        '--enable_thinking.'})
    enable_thinking: Optional[bool] = field(
        default=None, metadata={'help': "Hybrid-thinking templates (qwen3): false starts the answer with an empty "
                                        "think block, true lets the model think; unset keeps the chat template's "
                                        'default (thinking).'})
    preserve_thinking: Optional[bool] = field(
        default=None, metadata={'help': 'Keep the <think> blocks of earlier rounds (default: only after the last '
                                        'user turn).'})
    add_non_thinking_prefix: bool = field(
        default=True, metadata={'help': 'qwen3: a final answer without <think> gets the empty think block.'})

    def __post_init__(self):
        if self.max_length is not None and self.max_length <= 0:
            raise SwiftError(f'--max_length must be positive, got {self.max_length}')
        if self.response_prefix is not None:
            self.response_prefix = self.response_prefix.replace('\\n', '\n')


@dataclass
class GenerationArguments:
    max_new_tokens: Optional[int] = field(default=None, metadata={'help': 'Most tokens to generate.'})
    temperature: Optional[float] = field(default=None, metadata={'help': '0 is greedy.'})
    top_k: Optional[int] = field(default=None, metadata={'help': 'Sample among the k most likely tokens.'})
    top_p: Optional[float] = field(
        default=None, metadata={'help': 'Sample among the most likely tokens whose probabilities add up to p.'})
    repetition_penalty: Optional[float] = field(
        default=None, metadata={'help': 'Above 1 makes tokens already in the text less likely.'})
    stop_words: list[str] = field(default_factory=list, metadata={'help': 'Strings that end generation.'})
    stream: bool = field(default=False, metadata={'help': 'Print tokens as they are generated.'})
    logprobs: bool = field(default=False, metadata={'help': "Return each generated token's log-probability (batch "
                                                            'inference writes them into the results).'})
    top_logprobs: Optional[int] = field(
        default=None, metadata={'help': 'With --logprobs: also this many (0..20) most likely tokens per position.'})

    def __post_init__(self):
        if self.top_logprobs is not None and not 0 <= self.top_logprobs <= 20:
            raise SwiftError(f'--top_logprobs must be in 0..20, got {self.top_logprobs}')


# Arguments saved by training that inference and export take back from a checkpoint's args.json.
CHECKPOINT_ARGS = ('model', 'model_type', 'model_revision', 'task_type', 'num_labels', 'problem_type',
                   'new_special_tokens', 'rope_scaling', 'torch_dtype', 'template',
                   'system', 'use_chat_template', 'max_length', 'truncation_strategy', 'use_hf', 'trust_remote_code',
                   'quant_method', 'quant_bits', 'bnb_4bit_quant_type', 'bnb_4bit_use_double_quant',
                   'bnb_4bit_quant_storage', 'bnb_4bit_compute_dtype')
CHECKPOINT_DATA_ARGS = ('dataset', 'val_dataset', 'split_dataset_ratio', 'data_seed', 'columns', 'model_name',
                        'model_author', 'dataset_shuffle', 'strict')


@dataclass
class CommandArguments:
    ignore_args_error: bool = field(
        default=False, metadata={'help': 'Warn about unknown flags instead of stopping (notebooks pass their own).'})
    external_plugins: list[str] = field(
        default_factory=list, metadata={'help': 'Python files imported as the command starts, to register reward '
                                                'functions, models and templates of your own by name.'})


@dataclass
class BaseArguments(ModelArguments, DataArguments, TemplateArguments, CommandArguments):
    adapters: list[str] = field(
        default_factory=list, metadata={'help': "LoRA checkpoints; for deploy also 'name=path'."})
    load_args: bool = field(default=True, metadata={'help': "Read model, template and system from args.json."})
    load_data_args: bool = field(default=False, metadata={'help': 'Also read the data arguments from args.json.'})
    seed: int = field(default=42, metadata={'help': 'Random seed: sampling, initialisation, data order.'})

    def __post_init__(self):
        DataArguments.__post_init__(self)
        TemplateArguments.__post_init__(self)
        self.expand_special_tokens()
        self.parse_rope_scaling()
        self.max_memory = json_object('--max_memory', self.max_memory, 'of memory per device')
        if self.max_memory:  # device ids are ints in accelerate; JSON keys are strings
            self.max_memory = {int(k) if isinstance(k, str) and k.isdigit() else k: v
                               for k, v in self.max_memory.items()}
            if self.device_map is None:
                self.device_map = 'auto'
            elif self.device_map not in ('auto', 'sequential', 'balanced', 'balanced_low_0'):
                raise SwiftError(f'--max_memory needs --device_map auto, sequential, balanced or balanced_low_0, '
                                 f'got {self.device_map}')

    @property
    def adapter_paths(self) -> list[str]:
        """Every adapter folder given, in order."""
        return self.adapters

    @property
    def checkpoint_dir(self) -> Optional[str]:
        """The checkpoint whose args.json describes this run: the first adapter, else the model folder."""
        for path in [*self.adapter_paths[:1], self.model]:
            if path and os.path.isfile(os.path.join(path, 'args.json')):
                return path
        return None

    @classmethod
    def from_pretrained(cls, checkpoint_dir: str) -> 'BaseArguments':
        """The arguments a run was trained with, read from ``checkpoint_dir/args.json``."""
        path = os.path.join(checkpoint_dir, 'args.json')
        if not os.path.isfile(path):
            raise SwiftError(f'{path} not found: is {checkpoint_dir} a swift checkpoint?')
        saved = read_json(path)
        names = {f.name for f in fields(cls) if f.init}
        return cls(**{k: v for k, v in saved.items() if k in names})
