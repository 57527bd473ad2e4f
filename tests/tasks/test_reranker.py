"""--task_type reranker (a one-output scoring head) and generative_reranker (the logit of "yes" minus "no"):
training improves the ordering of held-out (query, document) pairs; the engine and swift infer score pairs; deploy
serves /v1/rerank and ms-swift's chat shape; ms-swift's example command trains; bad rows stop in one line."""
import json
import math

import httpx
import pytest
import torch

from swift.cli.main import cli_main
from swift.infer import PtEngine
from swift.infer.server import create_app
from swift.llm import sft_main
from swift.pipelines.infer import infer_main
from swift.protocol import InferRequest
from swift.trainers.retrieval_losses import listwise_reranker_loss, pointwise_reranker_loss
from tests.conftest import run_swift
from tests.deploy.support import serving
from tests.tasks.retrieval_support import ordering_accuracy, reranker_rows, write_jsonl

TRAIN = ['--per_device_train_batch_size', '4', '--num_train_epochs', '1', '--logging_steps', '4',
         '--save_strategy', 'no', '--report_to', 'none']


@pytest.fixture(scope='module')
def rerank_data(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp('rerank') / 'train.jsonl', reranker_rows())


@pytest.mark.parametrize('task_type, loss_type, train_type', [
    ('reranker', 'pointwise_reranker', 'full'),
    ('generative_reranker', 'listwise_reranker', 'lora'),
])
def test_training_improves_held_out_ordering(qwen2_dir, rerank_data, tmp_path, task_type, loss_type, train_type):
    before = ordering_accuracy(PtEngine(qwen2_dir, task_type=task_type, max_batch_size=16))
    extra = (['--lora_rank', '8', '--lora_alpha', '32', '--learning_rate', '1e-2'] if train_type == 'lora'
             else ['--learning_rate', '3e-3'])
    result = sft_main(['--model', qwen2_dir, '--dataset', rerank_data, '--output_dir', str(tmp_path),
                       '--task_type', task_type, '--loss_type', loss_type, '--train_type', train_type, *TRAIN,
                       *extra])
    engine = PtEngine(qwen2_dir if train_type == 'lora' else result['last_model_checkpoint'], task_type=task_type,
                      max_batch_size=16)
    if train_type == 'lora':
        engine.add_adapter(result['last_model_checkpoint'])
    after = ordering_accuracy(engine)
    assert after >= max(before + 0.15, 0.8), (before, after)


@pytest.fixture(scope='module')
def generative(qwen2_dir):
    return PtEngine(qwen2_dir, task_type='generative_reranker', max_batch_size=4)


def test_generative_score_is_the_yes_minus_no_logit_at_the_last_token(generative):
    from swift.model.retrieval import yes_no_ids
    from swift.template.retrieval import pair_ids
    query, doc = [{'role': 'user', 'content': 'what is swift'}], [{'role': 'assistant', 'content': 'a model'}]
    ids = pair_ids(generative.template, query, doc)
    with torch.no_grad():
        logits = generative.model(input_ids=torch.tensor([ids])).logits[0, -1]
    yes, no = yes_no_ids(generative.tokenizer)
    (score,), _ = generative.retrieval.rerank(query, [doc])
    assert math.isclose(score, torch.sigmoid(logits[yes] - logits[no]).item(), rel_tol=1e-4)
    # padded next to a longer document, the score is the same (the last real token is read)
    scores, _ = generative.retrieval.rerank(query, [doc, [{'role': 'assistant', 'content': 'model ' * 20}]])
    assert math.isclose(scores[0], score, rel_tol=1e-4)
    # ms-swift's call: the query, then the document as the last message; the score is the content
    response, = generative.infer([InferRequest(messages=query + doc)])
    assert math.isclose(float(response.choices[0].message.content), score, rel_tol=1e-4)


def test_deploy_serves_rerank_and_ms_swifts_chat_shape(generative):
    from openai import OpenAI
    query, docs = 'what is swift', ['a model', 'hello there', 'the robot team']
    expected, _ = generative.retrieval.rerank([{'role': 'user', 'content': query}],
                                              [[{'role': 'assistant', 'content': d}] for d in docs])
    with serving(create_app(generative, 'rr', [])) as url:
        body = httpx.post(f'{url}/v1/rerank', json={'model': 'rr', 'query': query, 'documents': docs, 'top_n': 2,
                                                    'return_documents': True}).json()
        objects = httpx.post(f'{url}/rerank', json={'model': 'rr', 'query': query,
                                                    'documents': [{'text': d} for d in docs]}).json()
        chat = OpenAI(base_url=f'{url}/v1', api_key='EMPTY').chat.completions.create(
            model='rr', messages=[{'role': 'user', 'content': query}, {'role': 'assistant', 'content': docs[0]}])
        wrong = httpx.post(f'{url}/v1/embeddings', json={'model': 'rr', 'input': 'x'})
    order = sorted(range(3), key=lambda i: -expected[i])
    assert [r['index'] for r in body['results']] == order[:2]
    assert all(math.isclose(r['relevance_score'], expected[r['index']], rel_tol=1e-4) for r in body['results'])
    assert body['results'][0]['document'] == {'text': docs[order[0]]}
    assert [r['index'] for r in objects['results']] == order
    assert math.isclose(float(chat.choices[0].message.content), expected[0], rel_tol=1e-4)
    assert wrong.status_code == 400


def test_swift_infer_scores_each_document(generative, qwen2_dir, tmp_path):
    data = write_jsonl(tmp_path / 'val.jsonl', reranker_rows(repeats=1)[:2])
    results = infer_main(['--model', qwen2_dir, '--task_type', 'generative_reranker', '--val_dataset', data,
                          '--result_path', str(tmp_path / 'r.jsonl'), '--reranker_use_activation', 'false'])
    row = json.loads(open(data).readline())
    with_sigmoid, _ = generative.retrieval.rerank(row['messages'], row['negative_messages'])
    # --reranker_use_activation false: the raw logits, whose sigmoid is the engine's default score
    sig = [1 / (1 + math.exp(-x)) for x in results[0]['negative_scores']]
    assert len(results[0]['positive_scores']) == 1
    assert all(math.isclose(a, b, rel_tol=1e-4) for a, b in zip(sig, with_sigmoid))


def test_ms_swift_example_trains_from_the_cli(qwen2_dir, tmp_path):
    """examples/train/reranker/train_reranker.sh with the model, data and step counts swapped."""
    data = write_jsonl(tmp_path / 'train.jsonl', reranker_rows(repeats=5))
    out = tmp_path / 'output'
    result = run_swift(
        'sft', '--model', qwen2_dir, '--task_type', 'reranker', '--loss_type', 'pointwise_reranker',
        '--tuner_type', 'full', '--dataset', data, '--load_from_cache_file', 'true', '--split_dataset_ratio', '0.05',
        '--eval_strategy', 'steps', '--output_dir', str(out), '--eval_steps', '1', '--num_train_epochs', '1',
        '--max_steps', '1', '--save_steps', '1', '--per_device_train_batch_size', '64',
        '--per_device_eval_batch_size', '64', '--gradient_accumulation_steps', '1', '--dataset_num_proc', '8',
        '--learning_rate', '6e-6', '--label_names', 'labels', '--dataloader_drop_last', 'true')
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = next(out.iterdir()) / 'checkpoint-1'
    assert json.load(open(checkpoint / 'args.json'))['task_type'] == 'reranker'
    assert json.load(open(checkpoint / 'config.json'))['architectures'] == ['Qwen2ForSequenceClassification']


def test_a_row_without_a_relevant_document_stops_with_its_line(qwen2_dir, tmp_path, capsys):
    rows = reranker_rows(repeats=1)[:1] + [{'query': 'robot', 'negative': ['hello', 'name']}]
    data = write_jsonl(tmp_path / 'bad.jsonl', rows)
    assert cli_main(['sft', '--model', qwen2_dir, '--dataset', data, '--output_dir', str(tmp_path),
                     '--task_type', 'reranker', *TRAIN]) == 2
    # The last line is the one error line (a crash would end on its exception instead). The rest of stderr is not
    # checked: in-process, it also holds what other tests' server threads print.
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith('swift sft: error: ') and f'{data}:2' in last and 'needs a relevant document' in last


def test_simple_forms_become_ms_swifts_form():
    from swift.dataset.retrieval import retrieval_check
    row = {'messages': [{'role': 'user', 'content': 'q'}, {'role': 'assistant', 'content': 'd'}],
           'rejected_response': ['n1', 'n2']}
    retrieval_check('reranker', 'listwise_reranker')(row)
    assert row['messages'] == [{'role': 'user', 'content': 'q'}]
    assert row['positive_messages'] == [[{'role': 'assistant', 'content': 'd'}]]
    assert row['negative_messages'] == [[{'role': 'assistant', 'content': 'n1'}], [{'role': 'assistant',
                                                                                     'content': 'n2'}]]


def test_reranker_losses_match_hand_computation():
    logits, labels = torch.tensor([2.0, 1.0, 0.5, 0.3, -1.0]), torch.tensor([1., 0., 0., 1., 0.])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
    assert torch.isclose(pointwise_reranker_loss(logits, labels), bce)
    groups = [torch.tensor([2.0, 1.0, 0.5]), torch.tensor([0.3, -1.0])]
    expected = sum(-torch.log_softmax(g, 0)[0] for g in groups) / 2
    assert torch.isclose(listwise_reranker_loss(logits, labels), expected)
    # groups smaller than LISTWISE_RERANKER_MIN_GROUP_SIZE are left out
    assert torch.isclose(listwise_reranker_loss(logits, labels, min_group_size=3), -torch.log_softmax(groups[0], 0)[0])
