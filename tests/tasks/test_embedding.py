"""--task_type embedding: InfoNCE training lifts held-out recall@1; the engine, swift infer and /v1/embeddings (through
the real openai client) return the model's unit vectors; ms-swift's example command trains; bad rows stop in one
line."""
import base64
import json
import math
import os
import struct

import pytest
import torch

from swift.cli.main import cli_main
from swift.infer import PtEngine
from swift.infer.server import create_app
from swift.llm import sft_main
from swift.pipelines.infer import infer_main
from swift.trainers.retrieval_losses import (contrastive_loss, cosine_similarity_loss, infonce_loss,
                                             split_groups)
from swift.utils import SwiftError
from tests.conftest import run_swift
from tests.deploy.support import serving
from tests.tasks.retrieval_support import embedding_rows, recall_at_1, write_jsonl

TRAIN = ['--task_type', 'embedding', '--loss_type', 'infonce', '--per_device_train_batch_size', '12',
         '--num_train_epochs', '2', '--logging_steps', '6', '--save_strategy', 'no', '--report_to', 'none']


@pytest.fixture(scope='module')
def trained(qwen2_dir, tmp_path_factory):
    """(recall@1 before, the full-trained checkpoint) of the toy task."""
    folder = tmp_path_factory.mktemp('embedding')
    data = write_jsonl(folder / 'train.jsonl', embedding_rows())
    before = recall_at_1(PtEngine(qwen2_dir, task_type='embedding', max_batch_size=32))
    result = sft_main(['--model', qwen2_dir, '--dataset', data, '--output_dir', str(folder / 'out'),
                       '--train_type', 'full', '--learning_rate', '3e-3', *TRAIN])
    return before, result['last_model_checkpoint']


def test_infonce_training_lifts_held_out_recall(trained):
    before, checkpoint = trained
    engine = PtEngine(checkpoint, task_type='embedding', max_batch_size=32)
    after = recall_at_1(engine)
    assert after >= before + 0.25, (before, after)


def test_engine_returns_unit_vectors_as_ms_swift_does(trained):
    engine = PtEngine(trained[1], task_type='embedding')
    from swift.protocol import InferRequest
    response, = engine.infer([InferRequest(messages=[{'role': 'user', 'content': 'hello world'}])])
    vector = response.data[0].embedding
    assert response.object == 'list' and len(vector) == engine.model.config.hidden_size
    assert math.isclose(sum(x * x for x in vector), 1.0, rel_tol=1e-4)
    assert response.usage.prompt_tokens > 0


def test_openai_client_gets_embeddings_float_and_base64(trained):
    from openai import OpenAI
    engine = PtEngine(trained[1], task_type='embedding', max_batch_size=4)
    texts = ['model hello', 'model name', 'robot think']
    expected, _ = engine.retrieval.embed([[{'role': 'user', 'content': t}] for t in texts])
    with serving(create_app(engine, 'emb', [])) as url:
        client = OpenAI(base_url=f'{url}/v1', api_key='EMPTY')
        as_floats = client.embeddings.create(model='emb', input=texts, encoding_format='float')
        as_default = client.embeddings.create(model='emb', input=texts)  # the client asks for base64 and decodes it
        single = client.embeddings.create(model='emb', input='robot think')
        import httpx
        raw = httpx.post(f'{url}/v1/embeddings', json={'model': 'emb', 'input': texts[:1],
                                                        'encoding_format': 'base64'}).json()
        chat = httpx.post(f'{url}/v1/chat/completions', json={
            'model': 'emb', 'messages': [{'role': 'user', 'content': texts[0]}]}).json()
        wrong = httpx.post(f'{url}/v1/rerank', json={'model': 'emb', 'query': 'q', 'documents': ['d']})
    for response in (as_floats, as_default):
        assert [d.index for d in response.data] == [0, 1, 2]
        for got, want in zip(response.data, expected):
            assert torch.allclose(torch.tensor(got.embedding), torch.tensor(want), atol=1e-5)
    assert torch.allclose(torch.tensor(single.data[0].embedding), torch.tensor(expected[2]), atol=1e-5)
    decoded = struct.unpack(f'<{len(expected[0])}f', base64.b64decode(raw['data'][0]['embedding']))
    assert torch.allclose(torch.tensor(decoded), torch.tensor(expected[0]), atol=1e-6)
    assert as_floats.usage.prompt_tokens > 0
    # ms-swift's client reads an embedding model's chat answer as resp.data[0]['embedding']
    assert torch.allclose(torch.tensor(chat['data'][0]['embedding']), torch.tensor(expected[0]), atol=1e-5)
    assert wrong.status_code == 400 and 'embedding model' in wrong.json()['error']['message']


def test_swift_infer_writes_each_rows_embedding(trained, tmp_path):
    data = write_jsonl(tmp_path / 'val.jsonl', embedding_rows(repeats=1)[:3])
    results = infer_main(['--model', trained[1], '--val_dataset', data, '--result_path', str(tmp_path / 'r.jsonl')])
    assert len(results) == 3 and all(math.isclose(sum(x * x for x in r['embedding']), 1, rel_tol=1e-4)
                                     for r in results)
    assert [json.loads(line)['messages'] for line in open(tmp_path / 'r.jsonl')] == [r['messages'] for r in results]


def test_ms_swift_example_trains_lora_from_the_cli(qwen2_dir, tmp_path):
    """examples/train/embedding/qwen3/qwen3_emb.sh with the model, data and step counts swapped (and one process)."""
    data = write_jsonl(tmp_path / 'train.jsonl', embedding_rows(repeats=4))
    out = tmp_path / 'output'
    result = run_swift(
        'sft', '--model', qwen2_dir, '--task_type', 'embedding', '--tuner_type', 'lora', '--lora_rank', '8',
        '--lora_alpha', '32', '--learning_rate', '5e-5', '--target_modules', 'all-linear', '--dataset', data,
        '--attn_impl', 'flash_attn', '--padding_free', 'true', '--torch_dtype', 'bfloat16',
        '--load_from_cache_file', 'true', '--split_dataset_ratio', '0.2', '--eval_strategy', 'steps',
        '--output_dir', str(out), '--save_steps', '2', '--eval_steps', '2', '--save_total_limit', '2',
        '--logging_steps', '5', '--num_train_epochs', '5', '--max_steps', '2', '--max_length', '8192',
        '--per_device_train_batch_size', '8', '--per_device_eval_batch_size', '8',
        '--gradient_accumulation_steps', '1', '--dataloader_num_workers', '4', '--dataset_num_proc', '4',
        '--warmup_ratio', '0.05', '--loss_type', 'infonce', '--dataloader_drop_last', 'true', '--deepspeed', 'zero2',
        env={'INFONCE_TEMPERATURE': '0.1'})
    assert result.returncode == 0, result.stderr[-3000:]
    run = next(out.iterdir())
    assert (run / 'checkpoint-2' / 'adapter_model.safetensors').is_file()
    logs = [json.loads(line) for line in open(run / 'logging.jsonl')]
    assert any('eval_loss' in log and math.isfinite(log['eval_loss']) for log in logs)
    args = json.load(open(run / 'checkpoint-2' / 'args.json'))
    assert args['task_type'] == 'embedding' and args['loss_type'] == 'infonce'


@pytest.mark.parametrize('row, reason', [
    ({'messages': [{'role': 'user', 'content': 'anchor'}]}, 'an embedding row needs a positive'),
    ({'messages': [{'role': 'user', 'content': 'a'}], 'positive_messages': [{'role': 'user', 'content': 'p'}]},
     'each a non-empty list of messages'),
])
def test_a_row_without_a_positive_stops_with_its_line(qwen2_dir, tmp_path, capsys, row, reason):
    good = embedding_rows(repeats=1)[0]
    data = write_jsonl(tmp_path / 'bad.jsonl', [good, row])
    assert cli_main(['sft', '--model', qwen2_dir, '--dataset', data, '--output_dir', str(tmp_path), *TRAIN]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # the one error line (see the reranker's test)
    assert last.startswith('swift sft: error: ') and f'{data}:2' in last and reason in last


def test_pair_losses_need_a_label(qwen2_dir, tmp_path):
    data = write_jsonl(tmp_path / 'pairs.jsonl', embedding_rows(repeats=1)[:2])
    with pytest.raises(SwiftError, match=r"pairs.jsonl:1.*numeric 'label'"):
        sft_main(['--model', qwen2_dir, '--dataset', data, '--output_dir', str(tmp_path), *TRAIN[:2],
                  '--loss_type', 'cosine_similarity'])


# ---- the losses, against hand computation ------------------------------------------------------------------------
def _unit(*rows):
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


def test_infonce_in_batch_and_hard_negatives_match_hand_computation():
    # two rows: (anchor, positive, one hard negative) and (anchor, positive)
    e = _unit([1, 0], [1, 0.2], [0, 1], [0, 1], [0.3, 1])
    labels = torch.tensor([1., 0., 1.])
    groups = split_groups(e, labels)
    assert [len(g) for g in groups] == [3, 2]
    docs = torch.stack([e[1], e[2], e[4]])
    expected = (torch.nn.functional.cross_entropy((e[0] @ docs.T / 0.1)[None], torch.tensor([0])) +
                torch.nn.functional.cross_entropy((e[3] @ docs.T / 0.1)[None], torch.tensor([2]))) / 2
    assert torch.isclose(infonce_loss(e, labels), expected)
    own = torch.nn.functional.cross_entropy((e[0] @ e[1:3].T / 0.1)[None], torch.tensor([0]))
    alone = torch.nn.functional.cross_entropy((e[3] @ e[4:5].T / 0.1)[None], torch.tensor([0]))
    assert torch.isclose(infonce_loss(e, labels, use_batch=False), (own + alone) / 2)


def test_pair_losses_match_hand_computation():
    e = _unit([1, 0], [0.6, 0.8], [1, 0], [0, 1])
    cos = torch.tensor([0.6, 0.0])
    labels = torch.tensor([1.0, 0.0])
    assert torch.isclose(cosine_similarity_loss(e, labels), ((cos - labels) ** 2).mean())
    distance = 1 - cos
    expected = 0.5 * (distance[0] ** 2 + torch.relu(0.5 - distance[1]) ** 2) / 2
    assert torch.isclose(contrastive_loss(e, torch.tensor([1.0, 0.0])), expected)


def test_infonce_environment_settings_are_read(monkeypatch):
    from swift.utils.env import infonce_settings
    monkeypatch.setenv('INFONCE_TEMPERATURE', '0.05')
    monkeypatch.setenv('INFONCE_USE_BATCH', 'false')
    monkeypatch.setenv('INFONCE_HARD_NEGATIVES', '3')
    settings = infonce_settings()
    assert settings['temperature'] == 0.05 and settings['use_batch'] is False and settings['hard_negatives'] == 3
    assert os.environ['INFONCE_TEMPERATURE'] == '0.05'


def test_mrl_dims_sums_the_loss_over_each_prefix(qwen2_dir):
    from swift.arguments import TrainArguments
    from swift.arguments.parser import parse_args
    from swift.trainers.retrieval import matryoshka_loss
    args = parse_args(TrainArguments, ['--model', qwen2_dir, '--dataset', 'x.jsonl', '--task_type', 'embedding',
                                       '--mrl_dims', '{"2": 1.0, "4": 0.5}'])
    assert args.mrl_dims == {2: 1.0, 4: 0.5}
    e, labels = torch.randn(4, 8), torch.tensor([1., 1.])
    prefix = lambda d: infonce_loss(torch.nn.functional.normalize(e[:, :d], dim=-1), labels)  # noqa: E731
    assert torch.isclose(matryoshka_loss('infonce', e, labels, args.mrl_dims), prefix(2) + 0.5 * prefix(4))
    reranker = parse_args(TrainArguments, ['--model', qwen2_dir, '--dataset', 'x.jsonl', '--task_type', 'reranker',
                                           '--mrl_dims', '{"2": 1.0}'])
    assert reranker.mrl_dims is None  # ignored there, with a warning
    with pytest.raises(SwiftError, match='--mrl_dims'):
        parse_args(TrainArguments, ['--model', qwen2_dir, '--dataset', 'x.jsonl', '--task_type', 'embedding',
                                    '--mrl_dims', '{"a": 1.0}'])
