"""Arguments of ``swift eval``: what ``swift deploy`` takes to serve the model, plus EvalScope's task settings.

With ``--eval_url`` nothing is served: ``--model`` is then the model name the server knows (ms-swift's reading).
"""
import importlib.util
from dataclasses import dataclass, field
from typing import Literal, Optional

from ..utils import SwiftError, get_logger
from .base_args import json_object
from .deploy_args import DeployArguments

# The backends besides Native, and the package each needs (installed with evalscope's extras of the same name).
logger = get_logger()
BACKEND_PACKAGES = {'OpenCompass': 'opencompass', 'VLMEvalKit': 'vlmeval'}
EVALSCOPE_INSTALL = "pip install 'swift[eval]' && pip install --no-deps evalscope==1.14.1"


@dataclass
class EvalScopeArguments:
    """EvalScope's task settings: what ``swift eval`` and training's --eval_use_evalscope both read."""
    eval_dataset: list[str] = field(
        default_factory=list, metadata={'help': "EvalScope benchmark names (gsm8k, mmlu, ...), or general_mcq / "
                                                'general_qa with a local_path in --eval_dataset_args.'})
    eval_limit: Optional[int] = field(default=None, metadata={'help': 'Rows of each benchmark to evaluate.'})
    eval_dataset_args: Optional[str] = field(
        default=None, metadata={'help': 'JSON object of settings per benchmark, e.g. \'{"general_mcq": '
                                        '{"local_path": "mcq", "subset_list": ["example"]}}\'.'})
    eval_generation_config: Optional[str] = field(
        default=None, metadata={'help': 'JSON object of generation settings sent with each request, e.g. '
                                        '\'{"max_tokens": 512, "temperature": 0}\'.'})
    extra_eval_args: Optional[str] = field(
        default=None, metadata={'help': "JSON object of further EvalScope TaskConfig fields (Native backend), e.g. "
                                        '\'{"ignore_errors": true}\'.'})

    def parse_evalscope_settings(self) -> None:
        """The JSON flags as objects (objects already: kept), each bad value one line."""
        self.eval_dataset_args = json_object('--eval_dataset_args', self.eval_dataset_args, 'of settings per '
                                             'benchmark') or {}
        for name, settings in self.eval_dataset_args.items():
            if not isinstance(settings, dict):
                raise SwiftError(f'--eval_dataset_args: the settings of {name!r} must be a JSON object')
        self.eval_generation_config = json_object('--eval_generation_config', self.eval_generation_config,
                                                  'of generation settings') or {}
        self.extra_eval_args = json_object('--extra_eval_args', self.extra_eval_args, 'of TaskConfig fields') or {}
        if self.eval_limit is not None and self.eval_limit < 1:
            raise SwiftError(f'--eval_limit must be at least 1, got {self.eval_limit}')


@dataclass
class EvalArguments(EvalScopeArguments, DeployArguments):
    eval_output_dir: str = field(default='eval_output', metadata={'help': 'Folder of the reports and predictions.'})
    eval_backend: Literal['Native', 'OpenCompass', 'VLMEvalKit'] = field(
        default='Native', metadata={'help': "EvalScope's backend; OpenCompass and VLMEvalKit need their packages."})
    local_dataset: bool = field(
        default=False, metadata={'help': "OpenCompass: read its data from ./data (ms-swift downloads it there)."})
    eval_num_proc: int = field(default=16, metadata={'help': 'Requests EvalScope sends at once.'})
    eval_url: Optional[str] = field(
        default=None, metadata={'help': 'An OpenAI-compatible server to evaluate (e.g. http://127.0.0.1:8000/v1); '
                                        'unset: swift serves --model itself on 127.0.0.1 for the run.'})
    # ms-swift's eval defaults: greedy answers, and requests not logged one by one.
    temperature: Optional[float] = field(default=0.0, metadata={'help': '0 is greedy.'})
    verbose: bool = field(default=False, metadata={'help': 'Log each request and its whole response.'})

    def __post_init__(self):
        super().__post_init__()
        if not self.eval_dataset:
            raise SwiftError('--eval_dataset: give at least one benchmark name (e.g. general_mcq, gsm8k)')
        self.parse_evalscope_settings()
        if self.eval_num_proc < 1:
            raise SwiftError(f'--eval_num_proc must be at least 1, got {self.eval_num_proc}')
        if self.eval_url and 'chat/completions' in self.eval_url:  # ms-swift accepts the endpoint's full URL too
            self.eval_url = self.eval_url.split('/chat/completions', 1)[0]
        package = BACKEND_PACKAGES.get(self.eval_backend)
        if package and importlib.util.find_spec(package) is None:
            raise SwiftError(f'--eval_backend {self.eval_backend} needs the {package} package, which is not '
                             f"installed (pip install 'evalscope[{package}]'); the Native backend runs without it")


@dataclass
class EvalScopeTrainingArguments(EvalScopeArguments):
    """Training's evaluation with EvalScope (ms-swift's --eval_use_evalscope): at each evaluation the model being
    trained is scored on --eval_dataset and the scores are logged as ``test_<dataset>``."""
    eval_use_evalscope: bool = field(
        default=False, metadata={'help': 'At each evaluation (--eval_steps), also score the current model on '
                                         "--eval_dataset with EvalScope (pip install 'swift[eval]')."})

    def check_evalscope_training(self) -> None:
        if not self.eval_use_evalscope:
            if self.eval_dataset:  # ms-swift ignores it then; say so, as it is easily taken for --val_dataset
                logger.warning('--eval_dataset names EvalScope benchmarks, scored during training only with '
                               '--eval_use_evalscope true (held-out rows of your data: --val_dataset)')
            return
        if importlib.util.find_spec('evalscope') is None:
            raise SwiftError(f'--eval_use_evalscope needs EvalScope: {EVALSCOPE_INSTALL}')
        if not self.eval_dataset:
            raise SwiftError('--eval_use_evalscope: give --eval_dataset (e.g. general_mcq, gsm8k)')
        self.parse_evalscope_settings()
