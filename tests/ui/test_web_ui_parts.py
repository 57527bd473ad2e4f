"""The web UI's parts in-process: the command a page builds and checks, the curves it draws from logging.jsonl,
the run folder it reads them from, its flags, and the tab names in both languages."""
import json
import os
import subprocess
import sys
import time

import pytest

from swift.arguments import parse_args
from swift.arguments.webui_args import WebUIArguments
from swift.cli.main import cli_main
from swift.pipelines.web_ui.command import build_flags, shown_command, validate
from swift.pipelines.web_ui.jobs import Job, logging_jsonl, read_log
from swift.pipelines.web_ui.plots import metric_figure, read_records
from swift.utils import SwiftError


def test_the_page_builds_the_command_a_user_would_type():
    flags = build_flags({'model': 'Qwen/Qwen2.5-0.5B', 'dataset': 'a.jsonl b.jsonl#100', 'learning_rate': '',
                         'train_type': 'lora'}, "--system 'You are a helpful assistant.' --max_steps 5")
    assert flags == ['--model', 'Qwen/Qwen2.5-0.5B', '--dataset', 'a.jsonl', 'b.jsonl#100', '--train_type', 'lora',
                     '--system', 'You are a helpful assistant.', '--max_steps', '5']
    assert shown_command('sft', flags) == ("swift sft --model Qwen/Qwen2.5-0.5B --dataset a.jsonl 'b.jsonl#100' "
                                           "--train_type lora --system 'You are a helpful assistant.' --max_steps 5")
    args = validate('sft', flags)
    assert (args.dataset, args.max_steps, args.system) == (['a.jsonl', 'b.jsonl#100'], 5,
                                                           'You are a helpful assistant.')


@pytest.mark.parametrize('command, flags, message', [
    ('sft', ['--model', 'm', '--dataset', 'd.jsonl', '--no_such_flag', '1'], 'swift sft: error: .*--no_such_flag'),
    ('rlhf', ['--model', 'm', '--dataset', 'd.jsonl', '--rlhf_type', 'nope'], 'swift rlhf: error: --rlhf_type'),
    ('deploy', ['--model', 'm', '--port', '70000'], 'swift deploy: error: --port'),
    ('sh', ['-c', 'true'], 'cannot run swift sh'),
])
def test_only_swift_commands_with_flags_that_parse_are_accepted(command, flags, message):
    with pytest.raises(SwiftError, match=message) as err:
        validate(command, flags)
    assert '\n' not in str(err.value)


def test_an_unclosed_quote_in_other_flags_is_one_line():
    with pytest.raises(SwiftError, match='other flags: No closing quotation'):
        build_flags({}, "--system 'oops")


def test_curves_show_each_logged_metric_and_skip_the_others(tmp_path):
    path = tmp_path / 'logging.jsonl'
    rows = [{'loss': 1.0 / step, 'learning_rate': 1e-4, 'reward': step / 10, 'global_step': step} for step in (1, 2, 3)]
    path.write_text(''.join(json.dumps(r) + '\n' for r in rows) + '{"loss": 0.2, "glo')  # a line being written
    records = read_records(str(path))
    assert [r['global_step'] for r in records] == [1, 2, 3]
    figure = metric_figure(records, ('loss', 'learning_rate', 'reward', 'rewards/margins'))
    assert [ax.get_title() for ax in figure.axes] == ['loss', 'learning_rate', 'reward']
    assert list(figure.axes[2].lines[0].get_ydata()) == [0.1, 0.2, 0.3]
    assert metric_figure(records, ('grad_norm',)) is None


def _job(tmp_path, output_dir) -> Job:
    log = tmp_path / 'job.log'
    log.write_text('start\nTrain:  0%| 0/4\rTrain: 50%| 2/4\rTrain: 100%| 4/4\ndone\n')
    process = subprocess.Popen([sys.executable, '-c', 'pass'])
    process.wait()
    return Job(1, 'sft', [], process, str(log), output_dir, started=time.time())


def test_the_log_shows_progress_bars_at_their_latest_state(tmp_path):
    assert read_log(_job(tmp_path, None)) == 'start\nTrain: 100%| 4/4\ndone\n'


def test_the_curves_come_from_the_run_the_job_started(tmp_path):
    out = tmp_path / 'output'
    old, new = out / 'v0-20260101-000000', out / 'v1-20260101-000100'
    for run in (old, new):
        run.mkdir(parents=True)
        (run / 'logging.jsonl').write_text('{}\n')
    job = _job(tmp_path, str(out))
    os.utime(old / 'logging.jsonl', (job.started - 3600, job.started - 3600))  # an earlier run's
    assert logging_jsonl(job) == str(new / 'logging.jsonl')
    os.utime(new / 'logging.jsonl', (job.started - 3600, job.started - 3600))
    assert logging_jsonl(job) is None  # nothing written since the job started: no curves of an older run


def test_web_ui_flags_follow_ms_swift(capsys):
    args = parse_args(WebUIArguments, [])
    assert (args.server_name, args.server_port, args.lang, args.share) == ('127.0.0.1', 7860, 'zh', False)
    assert cli_main(['web-ui', '--server_port', '0']) == 2
    assert capsys.readouterr().err.startswith('swift web-ui: error: --server_port')


def test_tabs_carry_ms_swifts_names_in_both_languages():
    # the browser test opens each English tab by name; gradio is not imported here (seconds of the suite's budget)
    from swift.pipelines.web_ui.pages import PAGES
    assert [(page.en, page.zh) for page in PAGES] == [
        ('LLM PT/SFT', 'LLM预训练/微调'), ('LLM RLHF', 'LLM人类对齐'), ('LLM Inference', 'LLM推理'),
        ('LLM Export', 'LLM导出'), ('LLM Evaluation', 'LLM评测')]
