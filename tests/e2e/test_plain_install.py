"""A plain ``pip install .`` (no extras) in a fresh venv runs every command once on a tiny model; the optional
features name their extra in one line. No command writes under a folder it was given as --model or --adapters."""
import json
import os
import subprocess
import sys
import urllib.request

import pytest
import torch

from ..conftest import REPO, folder_hashes
from ..deploy.support import free_port, wait_until_up


@pytest.fixture(scope='module')
def plain_venv(tmp_path_factory) -> str:
    """A venv with torch (the CPU wheel of the running version) and this package, nothing else."""
    venv = str(tmp_path_factory.mktemp('plain') / 'venv')
    subprocess.run([sys.executable, '-m', 'venv', venv], check=True)
    pip = [os.path.join(venv, 'bin', 'python'), '-m', 'pip', 'install', '-q', '--disable-pip-version-check']
    for target in (f"torch=={torch.__version__.split('+')[0]}", REPO):
        done = subprocess.run([*pip, target], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    return os.path.join(venv, 'bin', 'swift')


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    folder = tmp_path_factory.mktemp('plain-work')
    rows = [{'messages': [{'role': 'user', 'content': f'what is {i} plus {i}?'},
                          {'role': 'assistant', 'content': f'{2 * i}'}], 'solution': f'{2 * i}',
             'rejected_response': 'no idea'} for i in range(8)]
    (folder / 'rows.jsonl').write_text(''.join(json.dumps(row) + '\n' for row in rows))
    return folder


def _swift(swift: str, cwd, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([swift, *argv], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, 'HF_HUB_OFFLINE': '1'})


def _run_leaving_inputs_alone(swift: str, cwd, inputs: list[str], *argv: str) -> subprocess.CompletedProcess:
    """Run a command and check it succeeded and that every input folder has the same files, byte for byte."""
    before = [folder_hashes(folder) for folder in inputs]
    done = _swift(swift, cwd, *argv)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [folder_hashes(folder) for folder in inputs] == before, f'swift {argv[0]} wrote into an input folder'
    return done


def _train(swift, work, model, command: str, *flags: str) -> str:
    out = work / f'out-{command}-{len(flags)}'
    done = _run_leaving_inputs_alone(swift, work, [model], command, '--model', model, '--dataset', 'rows.jsonl',
                                     '--max_steps', '2', '--save_steps', '2', '--split_dataset_ratio', '0',
                                     '--output_dir', str(out), *flags)
    # peft imports bitsandbytes for every LoRA when it is installed; a plain install has none, and prints nothing
    assert 'bitsandbytes' not in done.stderr and 'kernels-community' not in done.stderr
    (checkpoint,) = out.glob('v*/checkpoint-2')
    return str(checkpoint)


def test_every_command_runs_from_a_plain_install(plain_venv, work, qwen2_dir):
    swift, model = plain_venv, qwen2_dir
    checkpoint = _train(swift, work, model, 'sft', '--train_type', 'lora')
    _train(swift, work, model, 'pt', '--train_type', 'full')
    _train(swift, work, model, 'rlhf', '--rlhf_type', 'dpo')
    _train(swift, work, model, 'rlhf', '--rlhf_type', 'grpo', '--reward_funcs', 'accuracy', '--num_generations', '2',
           '--per_device_train_batch_size', '2', '--max_completion_length', '4')
    inputs = [model, checkpoint]

    _run_leaving_inputs_alone(swift, work, inputs, 'infer', '--adapters', checkpoint, '--val_dataset',
                              'rows.jsonl#2', '--max_new_tokens', '4')
    (result,) = work.glob('result/*/infer_result/*.jsonl')  # under the current folder, as ms-swift
    assert len(result.read_text().splitlines()) == 2

    _run_leaving_inputs_alone(swift, work, inputs, 'export', '--adapters', checkpoint, '--merge_lora', 'true')
    assert os.path.isfile(checkpoint + '-merged/model.safetensors')

    _deploy_answers(swift, work, inputs, checkpoint)


def _deploy_answers(swift: str, work, inputs: list[str], checkpoint: str) -> None:
    before = [folder_hashes(folder) for folder in inputs]
    port = free_port()
    log = work / 'deploy.log'
    with open(log, 'w') as out:
        server = subprocess.Popen([swift, 'deploy', '--adapters', checkpoint, '--port', str(port)], cwd=work,
                                  stdout=out, stderr=subprocess.STDOUT, env={**os.environ, 'HF_HUB_OFFLINE': '1'})
    try:
        wait_until_up(f'http://127.0.0.1:{port}/health', server, str(log))
        models = json.load(urllib.request.urlopen(f'http://127.0.0.1:{port}/v1/models', timeout=60))
        body = json.dumps({'model': models['data'][0]['id'], 'max_tokens': 4,
                           'messages': [{'role': 'user', 'content': 'hi'}]}).encode()
        request = urllib.request.Request(f'http://127.0.0.1:{port}/v1/chat/completions', data=body,
                                         headers={'Content-Type': 'application/json'})
        answer = json.load(urllib.request.urlopen(request, timeout=60))
        assert answer['choices'][0]['message']['role'] == 'assistant'
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert [folder_hashes(folder) for folder in inputs] == before


@pytest.mark.parametrize('argv, extra', [
    (['app', '--model', '{model}'], 'app'),
    (['sft', '--model', '{model}', '--dataset', 'rows.jsonl', '--train_type', 'qlora'], 'qlora'),
    (['export', '--model', '{model}', '--quant_method', 'bnb', '--quant_bits', '4'], 'qlora'),
    (['sft', '--model', '{model}', '--dataset', 'rows.jsonl', '--train_type', 'full', '--use_galore', 'true'],
     'galore'),
])
def test_an_optional_feature_names_its_extra(plain_venv, work, qwen2_dir, argv, extra):
    done = _swift(plain_venv, work, *[arg.format(model=qwen2_dir) for arg in argv])
    assert done.returncode == 2 and 'Traceback' not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.endswith(f"pip install 'swift[{extra}]'"), line
