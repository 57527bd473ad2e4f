"""swift eval on EvalScope: a local multiple-choice folder scored through the model served by swift itself and through
swift deploy (--eval_url) gives the same accuracy; a benchmark that needs a download fails offline in one line."""
import json
import os

import pytest

from swift.cli.main import cli_main
from swift.pipelines.eval import eval_main
from swift.utils import SwiftError
from tests.deploy.support import free_port, running_swift
from tests.eval.toy_model import fixed_answer_model

# The model always answers A: right on rows 1 and 3, wrong on 2 and 4.
MCQ = """id,question,A,B,C,D,answer
1,What is 1+1?,2,3,4,5,A
2,What is 2+2?,3,4,5,6,B
3,What color is grass?,green,red,blue,black,A
4,What is the capital of France?,Berlin,Rome,Paris,Madrid,C
"""


@pytest.fixture(scope='module')
def model(qwen2_dir, tmp_path_factory) -> str:
    return fixed_answer_model(qwen2_dir, tmp_path_factory)


@pytest.fixture(scope='module')
def mcq_flags(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp('mcq')
    (folder / 'example_val.csv').write_text(MCQ, encoding='utf-8')
    dataset_args = {'general_mcq': {'local_path': str(folder), 'subset_list': ['example']}}
    return ['--eval_dataset', 'general_mcq', '--eval_dataset_args', json.dumps(dataset_args),
            '--eval_generation_config', '{"max_tokens": 32}', '--eval_num_proc', '4']


def _accuracy(record: dict) -> float:
    return record['scores']['general_mcq']['Accuracy']['subsets']['example']['score']


def test_eval_serves_the_model_scores_it_and_writes_the_report(model, mcq_flags, tmp_path, capsys):
    out = tmp_path / 'eval_output'
    record = eval_main(['--model', model, '--max_batch_size', '4', '--eval_output_dir', str(out), *mcq_flags])
    assert _accuracy(record) == 0.5
    assert record['scores']['general_mcq']['Accuracy']['num'] == 4
    lines = (out / 'eval_result.jsonl').read_text().splitlines()
    assert len(lines) == 1 and _accuracy(json.loads(lines[0])) == 0.5
    assert os.path.isfile(os.path.join(record['report_dir'], 'reports', os.path.basename(model), 'general_mcq.json'))
    table = capsys.readouterr().out
    assert '| general_mcq | Accuracy | example | 4   | 0.5000 |' in table


def test_eval_of_the_same_model_through_swift_deploy_gives_the_same_accuracy(model, mcq_flags, tmp_path):
    port = free_port()
    url = f'http://127.0.0.1:{port}/v1'
    argv = ['deploy', '--model', model, '--host', '127.0.0.1', '--port', str(port), '--served_model_name', 'toy',
            '--temperature', '0', '--verbose', 'false']
    with running_swift(argv, f'{url}/models', str(tmp_path / 'deploy.log')):
        record = eval_main(['--model', 'toy', '--eval_url', url, '--eval_output_dir', str(tmp_path / 'out'),
                            *mcq_flags])
    assert _accuracy(record) == 0.5


def test_a_benchmark_that_needs_a_download_fails_offline_in_one_line(model, capsys):
    assert cli_main(['eval', '--model', model, '--eval_dataset', 'gsm8k', '--eval_limit', '2']) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith('swift eval: error: --eval_dataset gsm8k: its data must be downloaded') and 'local_path' in err


@pytest.mark.parametrize('argv, needle', [
    (['--eval_dataset', 'gsm8kk'], "Benchmark 'gsm8kk' not found"),
    (['--eval_dataset', 'general_mcq'], 'give --eval_dataset_args'),
    (['--eval_dataset', 'general_mcq', '--eval_backend', 'OpenCompass'], 'needs the opencompass package'),
    (['--eval_dataset', 'general_mcq', '--eval_dataset_args', '[1]'], '--eval_dataset_args must be a JSON object'),
])
def test_bad_eval_flags_are_one_line(model, argv, needle):
    with pytest.raises(SwiftError, match=needle.replace('[', r'\[')):
        eval_main(['--model', model, *argv])


def test_without_evalscope_the_extra_is_named(model, monkeypatch):
    import importlib.util
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'evalscope' else find_spec(name, *a))
    with pytest.raises(SwiftError, match=r"pip install 'swift\[eval\]'"):
        eval_main(['--model', model, '--eval_dataset', 'general_mcq'])
