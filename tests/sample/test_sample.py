"""swift sample: N completions per prompt in ms-swift's layout; with the accuracy reward only correct ones are kept;
the file trains with swift sft."""
import json

import pytest

from swift.pipelines.sample import row_id, sample_main
from swift.rlhf.rewards.accuracy import answer_score
from swift.utils import SwiftError
from tests.eval.toy_model import fixed_answer_model

# The model answers \boxed{1}: right for the first two prompts, never for the third.
ROWS = [{'messages': [{'role': 'user', 'content': 'What is 3-2?'}, {'role': 'assistant', 'content': '1'}],
         'solution': '1'},
        {'messages': [{'role': 'user', 'content': 'What is 1*1?'}, {'role': 'assistant', 'content': '1'}],
         'solution': '1'},
        {'messages': [{'role': 'user', 'content': 'What is 1+1?'}, {'role': 'assistant', 'content': '2'}],
         'solution': '2'}]
N = 4


@pytest.fixture(scope='module')
def model(qwen2_dir, tmp_path_factory) -> str:
    return fixed_answer_model(qwen2_dir, tmp_path_factory)


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp('sample_data') / 'math.jsonl'
    path.write_text(''.join(json.dumps(row) + '\n' for row in ROWS), encoding='utf-8')
    return str(path)


def _sample(model: str, data: str, out, *flags: str) -> list[dict]:
    path = sample_main(['--model', model, '--dataset', data, '--num_return_sequences', str(N), '--max_new_tokens',
                        '32', '--temperature', '0.7', '--max_batch_size', '12', '--num_sampling_batch_size', '3',
                        '--output_dir', str(out), '--output_file', 'out.jsonl', *flags])
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f]


def test_sample_writes_n_completions_per_prompt_in_ms_swifts_layout(model, data, tmp_path):
    lines = _sample(model, data, tmp_path)
    assert len(lines) == N * len(ROWS)
    for i, row in enumerate(ROWS):
        mine = lines[i * N:(i + 1) * N]
        assert {line['id'] for line in mine} == {row_id(row)}
        for line in mine:
            assert line['messages'][0] == row['messages'][0] and line['messages'][1]['role'] == 'assistant'
            assert line['solution'] == row['solution'] and 'rejected_response' not in line
    assert any('\\boxed{1}' in line['messages'][1]['content'] for line in lines)


def test_with_the_accuracy_reward_only_correct_completions_are_kept(model, data, tmp_path):
    lines = _sample(model, data, tmp_path, '--orm_model', 'accuracy', '--n_best_to_keep', str(N))
    assert lines, 'the model answers \\boxed{1}: some completions must be correct'
    for line in lines:
        assert answer_score(line['messages'][-1]['content'], line['solution']) == 1.0
    assert {line['id'] for line in lines} <= {row_id(ROWS[0]), row_id(ROWS[1])}
    for line in lines:  # a rejected response is one that failed the reward
        if 'rejected_response' in line:
            assert answer_score(line['rejected_response'], line['solution']) != 1.0
    best = _sample(model, data, tmp_path / 'best', '--orm_model', 'accuracy', '--n_best_to_keep', '1')
    assert len(best) <= 2 and all(len([b for b in best if b['id'] == i]) == 1 for i in {b['id'] for b in best})

    from swift.pipelines.train import sft_main
    sft_main(['--model', model, '--dataset', str(tmp_path / 'out.jsonl'), '--train_type', 'lora', '--max_steps', '2',
              '--per_device_train_batch_size', '2', '--output_dir', str(tmp_path / 'sft'), '--save_steps', '2',
              '--split_dataset_ratio', '0', '--report_to', 'none'])
    assert list((tmp_path / 'sft').glob('v*/checkpoint-2/adapter_model.safetensors'))


def test_an_existing_file_is_kept_unless_overridden(model, data, tmp_path):
    (tmp_path / 'out.jsonl').write_text('keep\n')
    assert sample_main(['--model', model, '--dataset', data, '--output_dir', str(tmp_path),
                        '--output_file', 'out.jsonl']) is None
    assert (tmp_path / 'out.jsonl').read_text() == 'keep\n'


@pytest.mark.parametrize('flags, needle', [
    (['--sampler_type', 'mcts'], '--sampler_type mcts: not built yet'),
    (['--sampler_type', 'distill'], 'give --sampler_engine client'),
    (['--sampler_engine', 'vllm'], '--sampler_engine vllm: vLLM is not installed'),
    (['--sampler_engine', 'client'], 'needs the API address'),
    (['--output_file', 'a/b.jsonl'], 'without a folder'),
    (['--orm_model', 'nope'], "unknown reward function 'nope'"),
])
def test_bad_sample_flags_are_one_line(model, data, tmp_path, flags, needle):
    with pytest.raises(SwiftError, match=needle):
        sample_main(['--model', model, '--dataset', data, '--output_dir', str(tmp_path), *flags])


def test_ms_swift3_pt_engine_name_is_transformers():
    from swift.arguments import SampleArguments, parse_args
    args = parse_args(SampleArguments, ['--model', 'm', '--dataset', 'd.jsonl', '--sampler_engine', 'pt'])
    assert args.sampler_engine == 'transformers' and args.infer_backend == 'pt'


def test_a_reward_model_scores_the_completions_and_its_threshold_filters(model, data, qwen2_dir, tmp_path):
    from tests.deploy.support import make_reward_model
    prm = make_reward_model(qwen2_dir, str(tmp_path / 'prm'))
    kept = _sample(model, data, tmp_path / 'low', '--prm_model', prm, '--prm_threshold=-1e9', '--n_best_to_keep',
                   '2')
    assert len(kept) == 2 * len(ROWS)  # every completion passes; the best two of each prompt are kept
    assert not _sample(model, data, tmp_path / 'high', '--prm_model', prm, '--prm_threshold', '1e9')


def test_distill_samples_from_an_openai_compatible_server(model, data, tmp_path):
    from swift.arguments import DeployArguments, parse_args
    from swift.pipelines.deploy import serve_in_thread
    from tests.deploy.support import free_port
    served = parse_args(DeployArguments, ['--model', model, '--served_model_name', 'teacher', '--verbose', 'false'])
    with serve_in_thread(served, host='127.0.0.1', port=free_port()) as (url, name):
        lines = _sample(name, data, tmp_path, '--sampler_type', 'distill', '--sampler_engine', 'client',
                        '--engine_kwargs', json.dumps({'base_url': url}), '--num_return_sequences', '2')
    assert len(lines) == 2 * len(ROWS) and any('\\boxed{1}' in line['messages'][-1]['content'] for line in lines)
