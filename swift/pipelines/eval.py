"""``swift eval``: score a model on EvalScope benchmarks through an OpenAI-compatible server.

    swift eval --model Qwen/Qwen2.5-0.5B-Instruct --eval_dataset gsm8k --eval_limit 10
    swift eval --model m --eval_dataset general_mcq \\
        --eval_dataset_args '{"general_mcq": {"local_path": "mcq", "subset_list": ["example"]}}'
    swift eval --model <served name> --eval_url http://127.0.0.1:8000/v1 --eval_dataset general_mcq ...

Without --eval_url the model is served by this process on 127.0.0.1 (the app of ``swift deploy``, on a free port)
for the run and stopped after it, as ms-swift does. EvalScope (``pip install 'swift[eval]'``) loads the data, sends
the requests and scores the answers; its reports land under ``--eval_output_dir``, and one record of the scores is
appended to ``<eval_output_dir>/eval_result.jsonl`` and printed as a table.
"""
import dataclasses
import datetime as dt
import importlib.util
import json
import os
import socket
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Iterator

from ..arguments.eval_args import EVALSCOPE_INSTALL, EvalArguments
from ..utils import SwiftError, get_logger
from .common import apply_checkpoint_args, to_arguments

logger = get_logger()
# Benchmarks whose data EvalScope reads from --eval_dataset_args' local_path rather than a hub.
LOCAL_BENCHMARKS = {'general_mcq', 'general_qa'}


def eval_main(args: EvalArguments | list[str] | None = None) -> dict:
    args = to_arguments(EvalArguments, args)
    if importlib.util.find_spec('evalscope') is None:
        raise SwiftError(f'swift eval needs EvalScope: {EVALSCOPE_INSTALL}')
    if not args.eval_url:
        args = apply_checkpoint_args(args)
    if args.eval_backend == 'Native':
        check_datasets(args)  # before any model loads: a missing download fails in seconds
    with served_model(args) as (url, model_name):
        scores, report_dir = run_evalscope(args, url, model_name)
    record = {'time': dt.datetime.now().strftime('%Y-%m-%d %H:%M:%S'), 'model': args.model,
              'adapters': args.adapter_paths, 'eval_backend': args.eval_backend, 'eval_limit': args.eval_limit,
              'eval_output_dir': os.path.abspath(args.eval_output_dir), 'report_dir': report_dir, 'scores': scores}
    path = os.path.join(args.eval_output_dir, 'eval_result.jsonl')
    os.makedirs(args.eval_output_dir, exist_ok=True)
    with open(path, 'a', encoding='utf-8') as f:
        f.write(json.dumps(record, ensure_ascii=False) + '\n')
    print(score_table(scores))
    logger.info(f'eval result appended to {path}')
    return record


def task_config(args: EvalArguments, url: str, model_name: str):
    """EvalScope's TaskConfig for the Native backend, pointed at ``url``."""
    from evalscope.config import TaskConfig
    return TaskConfig(model=model_name, eval_type='openai_api', api_url=url, api_key=args.api_key or 'EMPTY',
                      datasets=list(args.eval_dataset), work_dir=os.path.join(args.eval_output_dir, 'native'),
                      limit=args.eval_limit, eval_batch_size=args.eval_num_proc,
                      dataset_args=args.eval_dataset_args, generation_config=args.eval_generation_config,
                      **args.extra_eval_args)


def check_datasets(args: EvalArguments) -> None:
    """Each --eval_dataset is a benchmark EvalScope knows and its data loads here; otherwise one line that says
    which, and, for a benchmark that must be downloaded, how to give a local copy."""
    from evalscope.api.registry import get_benchmark
    config = task_config(args, 'http://127.0.0.1:1/v1', 'check')
    for name in args.eval_dataset:
        try:
            benchmark = get_benchmark(name, config)
        except ValueError as err:
            raise SwiftError(f'--eval_dataset {name}: {str(err).splitlines()[0]}') from None
        local_path = args.eval_dataset_args.get(name, {}).get('local_path')
        try:
            benchmark.load_dataset()
        except Exception as err:  # noqa: BLE001 - EvalScope's loaders raise anything from OSError to ImportError
            raise SwiftError(_load_failure(name, local_path, err)) from None


def _load_failure(name: str, local_path: str | None, err: Exception) -> str:
    reason = f'{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ""}'.rstrip(': ')
    if local_path:
        return f'--eval_dataset {name}: cannot load its local_path {local_path} ({reason})'
    if name in LOCAL_BENCHMARKS:
        return (f'--eval_dataset {name} reads your own files: give --eval_dataset_args \'{{"{name}": '
                f'{{"local_path": "FOLDER", "subset_list": ["NAME"]}}}}\' ({reason})')
    return (f'--eval_dataset {name}: its data must be downloaded from the hub, which failed ({reason}); offline, '
            f'give a local copy: --eval_dataset_args \'{{"{name}": {{"local_path": "FOLDER"}}}}\'')


def run_evalscope(args: EvalArguments, url: str, model_name: str) -> tuple[dict, str]:
    """Scores by dataset, metric and subset, and the folder of EvalScope's reports."""
    from evalscope.run import run_task
    if args.eval_backend == 'Native':
        config = task_config(args, url, model_name)
        reports = run_task(config)
        return {name: report_scores(report) for name, report in reports.items()}, config.work_dir
    config = other_backend_config(args, url, model_name)
    run_task(config)
    from evalscope.summarizer import Summarizer
    return {'reports': Summarizer.get_report_from_cfg(task_cfg=config)}, config.work_dir


def other_backend_config(args: EvalArguments, url: str, model_name: str):
    """OpenCompass and VLMEvalKit through EvalScope, configured as ms-swift configures them (needs their package)."""
    from evalscope.config import TaskConfig
    chat_url = f"{url.rstrip('/')}/chat/completions"
    key = args.api_key or 'EMPTY'
    if args.eval_backend == 'OpenCompass':
        work_dir = os.path.join(args.eval_output_dir, 'opencompass')
        eval_config = {'datasets': args.eval_dataset, 'batch_size': args.eval_num_proc, 'work_dir': work_dir,
                       'limit': args.eval_limit, 'models': [{'path': model_name, 'openai_api_base': chat_url,
                                                             'key': key, 'is_chat': args.use_chat_template}]}
    else:
        work_dir = os.path.join(args.eval_output_dir, 'vlmeval')
        eval_config = {'data': args.eval_dataset, 'nproc': args.eval_num_proc, 'limit': args.eval_limit,
                       'model': [{'type': model_name, 'name': 'CustomAPIModel', 'api_base': chat_url, 'key': key,
                                  **args.eval_generation_config}]}
    return TaskConfig(eval_backend=args.eval_backend, eval_config=eval_config, work_dir=work_dir)


def report_scores(report) -> dict:
    """``{metric: {subset: {'score', 'num'}}}`` of one EvalScope report, with the metric's overall score."""
    scores = {}
    for metric in report.metrics:
        name = metric.semantics.metric_name if metric.semantics else metric.identity.name
        subsets = {s.name: {'score': s.score, 'num': s.num} for c in metric.categories for s in c.subsets}
        scores[name] = {'score': metric.score, 'num': metric.num, 'subsets': subsets}
    return scores


def score_table(scores: dict) -> str:
    """The scores as a text table: one line per dataset, metric and subset."""
    rows = [('Dataset', 'Metric', 'Subset', 'Num', 'Score')]
    for dataset, metrics in scores.items():
        if not isinstance(metrics, dict) or not all(isinstance(m, dict) and 'subsets' in m for m in metrics.values()):
            rows.append((dataset, '-', '-', '-', json.dumps(metrics, default=str)[:60]))
            continue
        for metric, value in metrics.items():
            for subset, part in value['subsets'].items():
                rows.append((dataset, metric, subset, str(part['num']), f"{part['score']:.4f}"))
            if len(value['subsets']) > 1:
                rows.append((dataset, metric, 'OVERALL', str(value['num']), f"{value['score']:.4f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'
    lines = [rule] + [('| ' + ' | '.join(c.ljust(w) for c, w in zip(row, widths)) + ' |') for row in rows] + [rule]
    lines.insert(2, rule)
    return '\n'.join(lines)


@contextmanager
def served_model(args: EvalArguments) -> Iterator[tuple[str, str]]:
    """``(base url, model name)``: --eval_url as given, or --model served here on 127.0.0.1 for the block."""
    if args.eval_url:
        yield args.eval_url.rstrip('/'), args.model
        return
    from .deploy import serve_in_thread
    with serve_in_thread(args, host='127.0.0.1', port=_free_port()) as (url, name):
        yield url, name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]



def training_task(settings, output_dir: str, batch_size: int) -> SimpleNamespace:
    """What ``task_config`` reads, for training's --eval_use_evalscope: the EvalScope flags (``settings``,
    arguments.eval_args.EvalScopeArguments), reports under ``<output_dir>/eval``, ``batch_size`` requests at once,
    greedy answers of up to 512 tokens unless --eval_generation_config says otherwise (ms-swift's defaults)."""
    task = SimpleNamespace(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)},
                           api_key=None, eval_output_dir=os.path.join(output_dir, 'eval'), eval_num_proc=batch_size,
                           eval_backend='Native')
    task.eval_generation_config = task.eval_generation_config or {'max_tokens': 512}
    return task


def evalscope_scorer(template, task: SimpleNamespace):
    """Training's ``score(model, step)``: the model as it is now, served through a PtEngine on 127.0.0.1 as
    ``model-step<N>`` and scored by the same EvalScope task as ``swift eval``; ``{dataset: overall score}``."""
    from ..infer import PtEngine
    from ..infer.server import create_app
    from ..protocol import RequestConfig
    from .deploy import serve_app_in_thread

    def score(model, step: int) -> dict[str, float]:
        name = f'model-step{step}'
        engine = PtEngine.from_model_template(model, template, max_batch_size=task.eval_num_proc)
        app = create_app(engine, name, [], default_request_config=RequestConfig(temperature=0))
        with serve_app_in_thread(app, '127.0.0.1', _free_port()) as url:
            scores, _ = run_evalscope(task, url, name)
        return {dataset: _overall(metrics) for dataset, metrics in scores.items()}
    return score


def _overall(metrics: dict) -> float:
    """A dataset's score: its first metric's overall score (EvalScope's report score, which ms-swift logs)."""
    return next(iter(metrics.values()))['score']
