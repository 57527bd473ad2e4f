"""``swift infer``: chat in the terminal, or answer a dataset in batches.

    swift infer --adapters output/vx-xxx/checkpoint-xxx --stream true --temperature 0 --max_new_tokens 2048
    swift infer --adapters output/vx-xxx/checkpoint-xxx --load_data_args true --max_batch_size 8
"""
import dataclasses
import datetime as dt
import json
import os
import random
import re

from ..arguments import InferArguments, group
from ..dataset import split_rows
from ..infer import InferEngine, PtEngine
from ..infer.arguments import LmdeployArguments, SglangArguments, VllmEngineArguments
from ..protocol import InferRequest, RequestConfig
from ..template.vision import VisionTemplate
from ..tuners import Swift
from ..utils import SwiftError, get_logger
from ..utils.packages import lmdeploy_missing, sglang_missing, vllm_missing
from ..utils.io import write_jsonl
from .common import (apply_checkpoint_args, load_dataset_rows, load_folder_and_template, load_model_and_template,
                     to_arguments)
from .export import merge_lora
from .retrieval import retrieval_results
from ..model.retrieval import RETRIEVAL_TASKS
from .seq_cls import classify_rows, is_classification

logger = get_logger()
EXIT_WORDS = {'exit', 'quit'}
CLEAR_WORDS = {'clear'}
# ms-swift's terminal asks for the file of each media placeholder typed in a question
MEDIA_TAG = re.compile('<image>|<video>|<audio>')


def infer_main(args: InferArguments | list[str] | None = None) -> list[dict] | None:
    args = apply_checkpoint_args(to_arguments(InferArguments, args))
    with build_engine(args) as engine:
        if engine.task_type in RETRIEVAL_TASKS:  # embeddings or scores of a dataset (pipelines/retrieval.py)
            if not (args.val_dataset or args.load_data_args):
                raise SwiftError(f'--task_type {engine.task_type} has no chat: pass --val_dataset, or serve it '
                                 'with swift deploy (/v1/embeddings, /v1/rerank)')
            return _write_results(args, retrieval_results(engine, _validation_rows(args)))
        config = request_config(args)
        config.stream = config.stream and not engine.is_scorer  # a score comes whole
        if args.val_dataset or args.load_data_args:
            return batch_infer(engine, args, config)
        chat(engine, config)
    return None


def build_engine(args: InferArguments, named_adapters: dict[str, str] | None = None) -> InferEngine:
    """The engine --infer_backend names, with --adapters applied and ``named_adapters`` (name to checkpoint)
    loaded beside them, selectable per request."""
    named_adapters = named_adapters or {}
    if args.merge_lora and args.adapters:
        args.model, args.adapters = merge_lora(args, reuse_existing=True), []
    if args.infer_backend in FOLDER_ENGINES:
        if args.task_type in RETRIEVAL_TASKS:
            raise SwiftError(f'--task_type {args.task_type} runs on --infer_backend pt here, not '
                             f'{args.infer_backend}')
        return FOLDER_ENGINES[args.infer_backend](args, named_adapters)
    model, _, template = load_model_and_template(args)
    for adapter in args.adapters:
        model = Swift.from_pretrained(model, adapter)
    engine = PtEngine(model, template, max_batch_size=args.max_batch_size)
    engine.reranker_use_activation = args.reranker_use_activation
    for name, path in named_adapters.items():
        engine.add_adapter(path, name)
    return engine


def _check_folder_engine(args: InferArguments, missing: str | None) -> None:
    """SwiftError when the backend cannot run here, or for more than one bare --adapters checkpoint: an engine that
    loads the model folder itself applies one to the base, the others are served by name."""
    if missing:
        raise SwiftError(f'--infer_backend {args.infer_backend}: {missing}')
    if len(args.adapters) > 1:
        raise SwiftError(f'--infer_backend {args.infer_backend} applies one --adapters checkpoint to the model; merge '
                         'the others first (swift export --merge_lora true), or serve them by name (name=path)')


def _default_adapter(args: InferArguments) -> str | None:
    return args.adapters[0] if args.adapters else None


def _vllm_engine(args: InferArguments, named_adapters: dict[str, str]) -> InferEngine:
    _check_folder_engine(args, vllm_missing())
    from ..infer.vllm_engine import VllmEngine  # imports vLLM, seconds of start-up
    model_dir, template = load_folder_and_template(args)
    # vLLM batches whatever it holds, so requests reach it as they come, up to its own limit (--vllm_max_num_seqs):
    # --max_batch_size is for the pt backend (ms-swift's docs say the same).
    return VllmEngine(model_dir, template, group(args, VllmEngineArguments), torch_dtype=args.torch_dtype,
                      trust_remote_code=args.trust_remote_code, seed=args.seed, adapters=named_adapters,
                      default_adapter=_default_adapter(args))


# SGLang and LMDeploy schedule requests themselves too: they get them as they come (ChoiceStreamEngine's
# ROWS_AT_ONCE), not in --max_batch_size chunks.
def _sglang_engine(args: InferArguments, named_adapters: dict[str, str]) -> InferEngine:
    _check_folder_engine(args, sglang_missing())
    from ..infer.sglang_engine import SglangEngine  # imports SGLang
    model_dir, template = load_folder_and_template(args)
    return SglangEngine(model_dir, template, group(args, SglangArguments), torch_dtype=args.torch_dtype,
                        trust_remote_code=args.trust_remote_code, seed=args.seed, adapters=named_adapters,
                        default_adapter=_default_adapter(args))


def _lmdeploy_engine(args: InferArguments, named_adapters: dict[str, str]) -> InferEngine:
    _check_folder_engine(args, lmdeploy_missing())
    from ..infer.lmdeploy_engine import LmdeployEngine  # imports LMDeploy
    model_dir, template = load_folder_and_template(args)
    return LmdeployEngine(model_dir, template, group(args, LmdeployArguments),
                          trust_remote_code=args.trust_remote_code, adapters=named_adapters,
                          default_adapter=_default_adapter(args))


# The engines that load the model folder themselves, by --infer_backend; pt loads the model in build_engine.
FOLDER_ENGINES = {'vllm': _vllm_engine, 'sglang': _sglang_engine, 'lmdeploy': _lmdeploy_engine}


def request_config(args: InferArguments) -> RequestConfig:
    return RequestConfig(max_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                         top_k=args.top_k, repetition_penalty=args.repetition_penalty, stop=args.stop_words,
                         stream=args.stream, logprobs=args.logprobs, top_logprobs=args.top_logprobs)


def chat(engine: InferEngine, config: RequestConfig) -> None:
    """A multi-turn chat on stdin/stdout. 'clear' forgets the history; 'exit' or end of input leaves. With a model
    that takes media, each <image>, <video> or <audio> typed in a question asks for its file, as in ms-swift."""
    print("chat with the model; type 'clear' to forget the conversation, 'exit' to leave")
    history: list[dict] = []
    takes = engine.template.media if isinstance(engine.template, VisionTemplate) else ()
    media: dict[str, list] = {key: [] for key in takes}
    while True:
        try:
            query = input('<<< ')
        except EOFError:
            print()
            return
        if query.strip() in EXIT_WORDS:
            return
        if query.strip() in CLEAR_WORDS:
            history, media = [], {key: [] for key in takes}
            continue
        before = {key: len(items) for key, items in media.items()}
        _ask_media(query, media)
        history.append({'role': 'user', 'content': query})
        try:
            response = _answer(engine, history, config, media)
        except SwiftError as err:  # e.g. an unreadable file: say so and forget the turn, the chat goes on
            print(f'[ERROR] {err}')
            history.pop()
            media = {key: items[:before[key]] for key, items in media.items()}
            continue
        history.append({'role': 'assistant', 'content': response})


def _ask_media(query: str, media: dict[str, list]) -> None:
    """The file (path or URL) of each media placeholder of ``query`` the model takes, asked as ms-swift asks."""
    for tag in MEDIA_TAG.findall(query):
        kind = tag[1:-1]
        if f'{kind}s' in media:
            media[f'{kind}s'].append(input(f"Input {'an' if kind[0] in 'ia' else 'a'} {kind} path or URL <<< ").strip())


def _answer(engine: InferEngine, messages: list[dict], config: RequestConfig,
            media: dict[str, list] | None = None) -> str:
    request = InferRequest(messages=list(messages), **{key: list(items) for key, items in (media or {}).items()})
    if not config.stream:
        response = engine.infer([request], config)[0].choices[0].message.content
        print(response)
        return response
    pieces = []
    for chunk, in engine.infer([request], config):
        piece = chunk.choices[0].delta.content or ''
        pieces.append(piece)
        print(piece, end='', flush=True)
    print()
    return ''.join(pieces)


def batch_infer(engine: InferEngine, args: InferArguments, config: RequestConfig) -> list[dict]:
    """Answer every row of --val_dataset (or the training run's held-out split) and write a jsonl, every
    --write_batch_size rows (-1 or 0: once at the end); --metric scores the answers against the labels."""
    rows = _validation_rows(args)
    if engine.is_scorer:  # a classifier's predictions (pipelines/seq_cls.py), or a reward model's scores
        return _write_results(args, classify_rows(engine, rows) if is_classification(engine, rows)
                              else _scores(engine, rows))
    config.stream = False
    path = args.result_path or _default_result_path(args)
    size = args.write_batch_size if args.write_batch_size > 0 else max(len(rows), 1)
    results = []
    for start in range(0, len(rows), size):
        part = _answers(engine, rows[start:start + size], config)
        (_append_jsonl if start else write_jsonl)(path, part)
        results += part
        if len(rows) > size:
            logger.info(f'{len(results)}/{len(rows)} results written to {path}')
    if not rows:
        write_jsonl(path, [])
    logger.info(f'{len(results)} results written to {path}')
    if args.metric is not None:
        logger.info(f'{args.metric}: {metric(args.metric, results)}')
    return results


def _answers(engine: InferEngine, rows: list[dict], config: RequestConfig) -> list[dict]:
    requests = [InferRequest(messages=_prompt_messages(row['messages']), tools=row.get('tools'), **_media(row))
                for row in rows]
    responses = engine.infer(requests, config)
    results = []
    for row, request, response in zip(rows, requests, responses):
        answer = response.choices[0].message.content
        label = row['messages'][-1]['content'] if row['messages'][-1]['role'] == 'assistant' else None
        result = {'messages': request.messages + [{'role': 'assistant', 'content': answer}],
                  'response': answer, 'labels': label, **_media(row, paths_only=True)}
        calls = response.choices[0].message.tool_calls
        if calls:  # agent rows: the calls the agent template's parser read from the answer, OpenAI's shape
            result['tool_calls'] = result['messages'][-1]['tool_calls'] = [dataclasses.asdict(c) for c in calls]
        if config.logprobs:  # as ms-swift writes them: the choice's logprobs object
            logprobs = response.choices[0].logprobs
            result['logprobs'] = dataclasses.asdict(logprobs) if dataclasses.is_dataclass(logprobs) else logprobs
        results.append(result)
    return results


def _append_jsonl(path: str, rows: list[dict]) -> None:
    with open(path, 'a', encoding='utf-8') as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=str) + '\n')


def metric(name: str, results: list[dict]) -> float:
    """--metric acc: the share of answers equal to their label (ms-swift's exact-match accuracy)."""
    scored = [r for r in results if r.get('labels') is not None]
    if not scored:
        raise SwiftError(f'--metric {name} needs labels: the rows have no assistant answer to compare with')
    return sum(r['response'] == r['labels'] for r in scored) / len(scored)


def _scores(engine: InferEngine, rows: list[dict]) -> list[dict]:
    """A reward model's score of each row, and of its rejected answer where the row has one (a preference pair)."""
    results = []
    for row in rows:
        result = {'messages': row['messages'], 'score': engine.score(InferRequest(messages=row['messages']))}
        if row.get('rejected_response'):
            rejected = [*row['messages'][:-1], {'role': 'assistant', 'content': row['rejected_response']}]
            result['rejected_score'] = engine.score(InferRequest(messages=rejected))
        results.append(result)
    pairs = [r for r in results if 'rejected_score' in r]
    if pairs:
        accuracy = sum(r['score'] > r['rejected_score'] for r in pairs) / len(pairs)
        logger.info(f'the chosen answer scores higher in {accuracy:.1%} of {len(pairs)} pairs')
    return results


def _write_results(args: InferArguments, results: list[dict]) -> list[dict]:
    path = args.result_path or _default_result_path(args)
    write_jsonl(path, results)
    logger.info(f'{len(results)} results written to {path}')
    return results


def _validation_rows(args: InferArguments) -> list[dict]:
    if args.val_dataset:
        val = load_dataset_rows(args, args.val_dataset)
    else:
        rows = load_dataset_rows(args, args.dataset)
        _, val = split_rows(rows, args.split_dataset_ratio, args.data_seed, args.dataset_shuffle)
        if not val:
            raise SwiftError('--load_data_args true found no validation split in the run; pass --val_dataset FILE')
    return sample_rows(val, args.val_dataset_sample, args.dataset_shuffle, args.data_seed)


def sample_rows(rows: list[dict], n: int | None, shuffle: bool, seed: int) -> list[dict]:
    """--val_dataset_sample, as ms-swift's sample_dataset: whole copies of the rows, then the remainder drawn at
    random (--dataset_shuffle, --data_seed) or taken from the start."""
    if n is None or not rows:
        return rows
    repeats, remainder = divmod(n, len(rows))
    order = list(range(len(rows)))
    if shuffle:
        random.Random(seed).shuffle(order)
    return rows * repeats + [rows[i] for i in order[:remainder]]


def _media(row: dict, paths_only: bool = False) -> dict[str, list]:
    """The row's images, videos and audios; for the results file only those given by path or URL (as ms-swift
    writes them), not bytes or pixels."""
    media = {key: row[key] for key in ('images', 'videos', 'audios') if row.get(key)}
    if paths_only:
        media = {key: items for key, items in media.items() if all(isinstance(item, str) for item in items)}
    return media


def _prompt_messages(messages: list[dict]) -> list[dict]:
    return messages[:-1] if messages[-1]['role'] == 'assistant' else messages


def _default_result_path(args: InferArguments) -> str:
    """``result/<name>/infer_result/<time>.jsonl`` under the current folder, as ms-swift names it; never inside the
    model or checkpoint folder being read. The name is the model's last path part, or the adapter's run and
    checkpoint (``v0-20260101-120000-checkpoint-8``)."""
    if args.adapters:
        checkpoint = os.path.abspath(args.adapters[0])
        name = f'{os.path.basename(os.path.dirname(checkpoint))}-{os.path.basename(checkpoint)}'
    else:
        name = os.path.basename(os.path.normpath(args.model))
    stamp = dt.datetime.now().strftime('%Y%m%d-%H%M%S')
    return os.path.join('result', name, 'infer_result', f'{stamp}.jsonl')
