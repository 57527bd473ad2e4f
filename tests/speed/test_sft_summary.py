"""The closing training summary: transformers' train_runtime and samples/s, plus real tokens/s and peak memory,
printed as a block and written as the last record of logging.jsonl."""
import json
import os

import pytest
from transformers import AutoTokenizer

from swift.llm import get_template, sft_main


def _rows(path, n: int = 8) -> str:
    with open(path, 'w') as f:
        for i in range(n):
            answer = ' '.join(['and'] * i)  # rows of different lengths: padding would show in the count
            f.write(json.dumps({'messages': [{'role': 'user', 'content': f'what is {i} plus {i}?'},
                                             {'role': 'assistant', 'content': f'{i} plus {i} is {2 * i} {answer}.'}]})
                    + '\n')
    return str(path)


def _real_tokens(run_dir: str, model_dir: str, data: str) -> int:
    """Tokens of the encoded rows, as the run's template encodes them (no padding)."""
    with open(os.path.join(run_dir, 'args.json')) as f:
        saved = json.load(f)
    template = get_template(saved['template'], AutoTokenizer.from_pretrained(model_dir),
                            default_system=saved['system'])
    with open(data) as f:
        return sum(len(template.encode(json.loads(line))['input_ids']) for line in f)


def test_a_run_ends_with_the_summary_in_stdout_and_logging_jsonl(qwen2_dir, tmp_path, capsys):
    data = _rows(tmp_path / 'rows.jsonl')
    result = sft_main(['--model', qwen2_dir, '--dataset', data, '--output_dir', str(tmp_path / 'out'),
                       '--num_train_epochs', '1', '--logging_steps', '2', '--split_dataset_ratio', '0',
                       '--per_device_train_batch_size', '4', '--save_steps', '1000',
                       '--dataloader_num_workers', '0'])
    with open(os.path.join(result['run_dir'], 'logging.jsonl')) as f:
        last = [json.loads(line) for line in f][-1]
    runtime = last['train_runtime']
    assert 0 < runtime < 300
    assert last['train_samples_per_second'] == pytest.approx(8 / runtime, rel=2e-3)  # runtime is rounded
    assert last['train_steps_per_second'] == pytest.approx(2 / runtime, rel=2e-3)
    tokens = _real_tokens(result['run_dir'], qwen2_dir, data)
    assert abs(last['train_tokens_per_second'] * runtime - tokens) <= 0.01 * tokens
    assert 0.05 < last['train_peak_memory(GiB)'] < 64  # the pytest process's peak RSS
    assert last['global_step'] == 2
    out = capsys.readouterr().out
    assert '***** training summary *****' in out
    for key in ('train_runtime', 'train_samples_per_second', 'train_steps_per_second', 'train_tokens_per_second',
                'peak memory', 'train_loss'):
        assert f'  {key}' in out, key
