"""``swift sample``: N completions per prompt, optionally filtered by an outcome reward and a reward model, written
as jsonl that ``swift sft --dataset`` trains on (rejection sampling, ms-swift's RFT loop).

    swift sample --model Qwen/Qwen2.5-0.5B-Instruct --dataset math.jsonl --num_return_sequences 8 \\
        --orm_model accuracy --n_best_to_keep 2 --output_file math_rft.jsonl
    swift sft --model Qwen/Qwen2.5-0.5B-Instruct --dataset sample_output/math_rft.jsonl

Each line is the prompt's row with its answer replaced by one completion, plus ``id`` (the md5 of the row, shared
by the prompt's lines); with a reward, ``rejected_response`` holds the prompt's lowest-scored completion when it
failed the reward, as in ms-swift.
"""
import copy
import datetime as dt
import hashlib
import json
import os
from contextlib import nullcontext

import torch

from ..arguments.sample_args import SampleArguments
from ..infer import InferEngine
from ..protocol import InferRequest, RequestConfig
from ..rlhf.rewards import make_reward
from ..utils import SwiftError, get_logger
from ..utils.packages import lmdeploy_missing, vllm_missing
from .common import apply_checkpoint_args, load_dataset_rows, to_arguments
from .infer import build_engine

logger = get_logger()
# Columns that describe the prompt's media or answer, not settings for a reward.
NOT_REWARD_COLUMNS = {'messages', 'images', 'videos', 'audios', 'id', 'rejected_response'}


def sample_main(args: SampleArguments | list[str] | None = None) -> str | None:
    """The path of the written jsonl (None when --output_file exists and --override_exist_file is false)."""
    args = to_arguments(SampleArguments, args)
    if args.sampler_engine not in ('client', 'no'):
        args = apply_checkpoint_args(args)
    output_file = args.output_file or dt.datetime.now().strftime('%Y-%m-%d-%H-%M-%S') + '.jsonl'
    path = os.path.join(args.output_dir, output_file)
    if os.path.exists(path) and not args.override_exist_file:
        logger.warning(f'{path} exists: nothing sampled (--override_exist_file true writes over it)')
        return None
    rows = _shard(args, load_dataset_rows(args, args.dataset))
    cache = read_cache(args.cache_files)
    orm = _orm(args)
    with _prm_engine(args) as prm, _sampler(args) as engine:
        os.makedirs(args.output_dir, exist_ok=True)
        written = 0
        with open(path + '.tmp', 'w', encoding='utf-8') as f:
            for batch in _batches(args, rows):
                completions = generate(engine, args, batch, cache)
                for row, choices in zip(batch, completions):
                    for line in select(args, row, choices, orm, prm):
                        f.write(json.dumps(line, ensure_ascii=False) + '\n')
                        written += 1
    os.replace(path + '.tmp', path)
    logger.info(f'{written} samples of {len(rows)} prompts written to {path}')
    return path


def _shard(args: SampleArguments, rows: list[dict]) -> list[dict]:
    if not args.data_range:
        return rows
    shard, shards = args.data_range
    size = len(rows) // shards
    return rows[size * shard:size * (shard + 1)]


def _batches(args: SampleArguments, rows: list[dict]) -> list[list[dict]]:
    size = args.num_sampling_batch_size
    batches = [rows[i:i + size] for i in range(0, len(rows), size)]
    return batches[:args.num_sampling_batches] if args.num_sampling_batches is not None else batches


def row_id(row: dict) -> str:
    """ms-swift's id of a prompt's row: the md5 of the row as sorted JSON."""
    return hashlib.md5(json.dumps(row, sort_keys=True).encode('utf-8')).hexdigest()


def read_cache(paths: list[str]) -> dict[str, list[str]]:
    """Completions of earlier sample files by row id (--cache_files)."""
    cache: dict[str, list[str]] = {}
    for path in paths:
        if not os.path.isfile(path):
            raise SwiftError(f'--cache_files {path}: no such file')
        with open(path, encoding='utf-8') as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    cache.setdefault(row['id'], []).append(row['messages'][-1]['content'])
                except (ValueError, KeyError, IndexError, TypeError):
                    raise SwiftError(f'{path}:{number}: not a line of swift sample (id, messages)') from None
    return cache


def prompt_messages(args: SampleArguments, row: dict) -> list[dict]:
    """The row's conversation without its final answer, with --system in place of the row's system message."""
    messages = copy.deepcopy(row['messages'])
    if messages and messages[-1]['role'] == 'assistant':
        messages = messages[:-1]
    if args.system:
        if messages and messages[0]['role'] == 'system':
            messages[0]['content'] = args.system
        else:
            messages.insert(0, {'role': 'system', 'content': args.system})
    return messages


def generate(engine, args: SampleArguments, batch: list[dict], cache: dict) -> list[list[str]]:
    """--num_return_sequences completions for each row: from --cache_files where they hold enough, else sampled."""
    n = args.num_return_sequences
    todo = [row for row in batch if len(cache.get(row_id(row), [])) < n]
    if todo and engine is None:
        raise SwiftError(f'--sampler_engine no: --cache_files hold fewer than {n} completions for {len(todo)} '
                         'prompts of the dataset')
    requests = [InferRequest(messages=prompt_messages(args, row), **_media(row)) for row in todo for _ in range(n)]
    config = RequestConfig(max_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                           top_k=args.top_k, repetition_penalty=args.repetition_penalty, stop=args.stop_words)
    answers = iter(engine.infer(requests, config) if requests else [])
    out = []
    for row in batch:
        cached = cache.get(row_id(row), [])
        out.append(cached[:n] if len(cached) >= n else [_text(next(answers)) for _ in range(n)])
    return out


def _media(row: dict) -> dict:
    return {key: row[key] for key in ('images', 'videos', 'audios') if row.get(key)}


def _text(response) -> str:
    return response if isinstance(response, str) else response.choices[0].message.content


def select(args: SampleArguments, row: dict, choices: list[str], orm, prm) -> list[dict]:
    """The lines to write for one prompt: every completion without a reward; with one, the --n_best_to_keep best of
    those that pass it, each carrying the lowest-scored completion as ``rejected_response`` when that one failed."""
    if orm is None and prm is None:
        return [_line(row, choice) for choice in choices]
    orm_scores = orm_rewards(orm, args, row, choices) if orm else [1.0] * len(choices)
    prm_scores = prm_rewards(prm, args, row, choices) if prm else [1.0] * len(choices)
    passed = [o > 0 and (prm is None or p > args.prm_threshold) for o, p in zip(orm_scores, prm_scores)]
    if orm and args.easy_query_threshold is not None:
        if sum(o > 0 for o in orm_scores) >= int(len(choices) * args.easy_query_threshold):
            return []  # too easy to teach anything
    score = [p + 10 * o for o, p in zip(_normalised(orm_scores), _normalised(prm_scores))]
    order = sorted(range(len(choices)), key=lambda i: -score[i])
    worst = order[-1]
    rejected = None if passed[worst] else choices[worst]
    kept = [i for i in order if passed[i]][:args.n_best_to_keep]
    return [_line(row, choices[i], rejected) for i in kept]


def _line(row: dict, completion: str, rejected: str | None = None) -> dict:
    line = copy.deepcopy(row)
    messages = line['messages']
    if messages and messages[-1]['role'] == 'assistant':
        messages[-1]['content'] = completion
    else:
        messages.append({'role': 'assistant', 'content': completion})
    line['id'] = row_id(row)
    if rejected is not None:
        line['rejected_response'] = rejected
    return line


def _normalised(values: list[float]) -> list[float]:
    """Min-max scaled into [0, 1], as ms-swift ranks completions; equal values stay at min(value, 1) (0 if 0)."""
    low, high = min(values), max(values)
    if low == high:
        return [0.0 if low == 0 else min(1.0, low)] * len(values)
    return [(v - low) / (high - low + 1e-5) for v in values]


def orm_rewards(orm, args: SampleArguments, row: dict, choices: list[str]) -> list[float]:
    """The reward function on each completion, given the row's columns (``solution`` defaults to the row's own
    answer, ms-swift's ground truth); an unscorable completion (None) counts as 0."""
    columns = {key: value for key, value in row.items() if key not in NOT_REWARD_COLUMNS}
    answer = row['messages'][-1]['content'] if row['messages'][-1]['role'] == 'assistant' else None
    columns.setdefault('solution', answer)
    n = len(choices)
    prompt = prompt_messages(args, row)
    rewards = orm(prompts=[prompt] * n, completions=list(choices), **{k: [v] * n for k, v in columns.items()})
    return [float(r) if r is not None else 0.0 for r in rewards]


def prm_rewards(prm: InferEngine, args: SampleArguments, row: dict, choices: list[str]) -> list[float]:
    prompt = prompt_messages(args, row)
    return [prm.score(InferRequest(messages=prompt + [{'role': 'assistant', 'content': c}])) for c in choices]


def _orm(args: SampleArguments):
    if args.orm_model is None:
        return None
    return make_reward(args.orm_model)


def _prm_engine(args: SampleArguments):
    """--prm_model as a scoring engine: the folder loaded as a one-label sequence classifier (a reward model)."""
    if args.prm_model is None:
        return nullcontext()
    prm_args = copy.copy(args)
    prm_args.model, prm_args.adapters, prm_args.model_type = args.prm_model, [], None
    prm_args.task_type, prm_args.num_labels, prm_args.infer_backend = 'seq_cls', 1, 'pt'
    return build_engine(prm_args)


def _sampler(args: SampleArguments):
    """The engine --sampler_engine names; 'no' samples nothing (--cache_files)."""
    if args.sampler_engine == 'no':
        return nullcontext()
    if args.sampler_engine == 'client':
        return ClientEngine(args.model, **args.engine_kwargs)
    missing = vllm_missing() if args.sampler_engine == 'vllm' else (
        lmdeploy_missing() if args.sampler_engine == 'lmdeploy' else None)
    if missing:
        raise SwiftError(f'--sampler_engine {args.sampler_engine}: {missing}')
    torch.manual_seed(args.seed)  # the same --seed samples the same completions
    return build_engine(args)


class ClientEngine:
    """An OpenAI-compatible API as the sampler (``--sampler_engine client``, e.g. ``swift deploy`` or a hosted
    model): one chat request per completion; a reasoning model's thinking is kept as ms-swift keeps it."""

    def __init__(self, model: str, base_url: str, api_key: str | None = None, **client_kwargs):
        from openai import OpenAI
        self.model = model
        self.client = OpenAI(base_url=base_url, api_key=api_key or os.environ.get('OPENAI_API_KEY') or 'EMPTY',
                             **client_kwargs)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.client.close()

    def infer(self, requests: list[InferRequest], config: RequestConfig) -> list[str]:
        return [self._one(request, config) for request in requests]

    def _one(self, request: InferRequest, config: RequestConfig) -> str:
        import openai
        try:
            completion = self.client.chat.completions.create(
                model=self.model, messages=request.messages, temperature=config.temperature, top_p=config.top_p,
                max_tokens=config.max_tokens)
        except openai.OpenAIError as err:
            raise SwiftError(f'--sampler_engine client: {type(err).__name__}: {str(err).splitlines()[0]}') from None
        message = completion.choices[0].message
        reasoning = getattr(message, 'reasoning_content', None)
        content = message.content or ''
        return f'<think>{reasoning}</think>\n\n<answer>{content}</answer>' if reasoning else content
