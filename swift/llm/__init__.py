"""The Python API of the seeds: ``from swift.llm import sft_main, TrainArguments, PtEngine, ...``.

A facade over the packages below it; nothing inside swift imports it. Each name is imported when first used, so
``from swift.llm import PtEngine`` does not pay for trl and the trainers.
"""
import importlib

_SOURCES = {
    'BaseArguments': 'swift.arguments', 'DeployArguments': 'swift.arguments', 'ExportArguments': 'swift.arguments',
    'InferArguments': 'swift.arguments', 'RLHFArguments': 'swift.rlhf.arguments', 'TrainArguments': 'swift.arguments',
    'safe_snapshot_download': 'swift.hub', 'InferEngine': 'swift.infer', 'PtEngine': 'swift.infer',
    'VllmEngine': 'swift.infer.vllm_engine', 'load_dataset': 'swift.dataset',
    'get_model_tokenizer': 'swift.model', 'deploy_main': 'swift.pipelines.deploy',
    'export_main': 'swift.pipelines.export', 'infer_main': 'swift.pipelines.infer', 'rlhf_main': 'swift.pipelines.rlhf',
    'pt_main': 'swift.pipelines.train', 'sft_main': 'swift.pipelines.train', 'InferRequest': 'swift.protocol',
    'RequestConfig': 'swift.protocol', 'AdapterRequest': 'swift.protocol', 'get_template': 'swift.template',
}
__all__ = list(_SOURCES)


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(_SOURCES[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
