"""The Python API of the seeds: ``from swift.llm import sft_main, TrainArguments, PtEngine, ...``.

A facade over the packages below it; nothing inside swift imports it.
"""
from ..arguments import (BaseArguments, DeployArguments, ExportArguments, InferArguments, RLHFArguments,
                         TrainArguments)
from ..hub import safe_snapshot_download
from ..infer import InferEngine, PtEngine
from ..model import get_model_tokenizer
from ..pipelines.deploy import deploy_main
from ..pipelines.export import export_main
from ..pipelines.infer import infer_main
from ..pipelines.rlhf import rlhf_main
from ..pipelines.train import pt_main, sft_main
from ..protocol import InferRequest, RequestConfig
from ..template import get_template

__all__ = ['BaseArguments', 'DeployArguments', 'ExportArguments', 'InferArguments', 'RLHFArguments', 'TrainArguments',
           'safe_snapshot_download', 'InferEngine', 'PtEngine', 'get_model_tokenizer', 'deploy_main', 'export_main',
           'infer_main', 'pt_main', 'rlhf_main', 'sft_main', 'InferRequest', 'RequestConfig', 'get_template']
