from .app_args import AppArguments
from .base_args import (BaseArguments, DataArguments, GenerationArguments, ModelArguments, TemplateArguments,
                        group)
from .deploy_args import DeployArguments
from .eval_args import EvalArguments
from .export_args import ExportArguments
from .infer_args import InferArguments
from .parser import parse_args
from .rollout_args import RolloutArguments
from .sample_args import SampleArguments
from .train_args import TrainArguments, TunerArguments
