"""``swift web-ui`` in a real headless chromium: the real command serves the page on 127.0.0.1; the tests fill
the training page, start a short training and watch its command, log and loss curve appear, stop a long run from
the jobs list, and see a bad flag refused without starting anything. Every tab is screenshotted."""
import json
import os
import re

import psutil
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from ..browser import browser_page, screenshot  # noqa: F401  (fixture)
from ..deploy.support import free_port, running_swift

TABS = {'train': 'LLM PT/SFT', 'rlhf': 'LLM RLHF', 'infer': 'LLM Inference', 'export': 'LLM Export',
        'eval': 'LLM Evaluation'}


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    return tmp_path_factory.mktemp('web_ui')


@pytest.fixture(scope='module')
def web_ui(work):
    """The page's address and the folder where the server keeps its jobs' logs."""
    port = free_port()
    log_path = work / 'web-ui.log'
    with running_swift(['web-ui', '--server_port', str(port), '--lang', 'en'], f'http://127.0.0.1:{port}/',
                       str(log_path), env={'GRADIO_ANALYTICS_ENABLED': 'False'}):
        yield f'http://127.0.0.1:{port}/', re.search(r'job logs in (\S+)\)', log_path.read_text()).group(1)
    _kill_leftover_jobs(str(work))


def _kill_leftover_jobs(marker: str) -> None:
    """A failed test may leave a training it started: end those (their flags name this module's folder)."""
    for proc in psutil.process_iter(['cmdline']):
        if any(marker in part for part in proc.info['cmdline'] or []):
            proc.kill()


@pytest.fixture(scope='module')
def page(browser_page, web_ui):
    browser_page.goto(web_ui[0])
    return browser_page


@pytest.fixture(scope='module')
def dataset(work) -> str:
    path = work / 'rows.jsonl'
    rows = [{'messages': [{'role': 'user', 'content': f'what is {i} plus {i}?'},
                          {'role': 'assistant', 'content': f'{i} plus {i} is {2 * i}.'}]} for i in range(8)]
    path.write_text(''.join(json.dumps(row) + '\n' for row in rows))
    return str(path)


def _box(page, elem_id: str):
    return page.locator(f'#{elem_id} textarea, #{elem_id} input').first


def _fill_training(page, model: str, dataset: str, output_dir: str, other: str) -> None:
    page.get_by_role('tab', name=TABS['train']).click()
    _box(page, 'train-model').fill(model)
    _box(page, 'train-dataset').fill(dataset)
    _box(page, 'train-output_dir').fill(output_dir)
    _box(page, 'train-other').fill(other)


def _wait_for_text(page, elem_id: str, pattern: str, timeout: float = 60_000) -> str:
    box = _box(page, elem_id)
    try:
        page.wait_for_function('([el, re]) => new RegExp(re).test(el.value)', arg=[box.element_handle(), pattern],
                               timeout=timeout)
    except PlaywrightTimeout:
        pytest.fail(f'#{elem_id} never matched {pattern!r}; it shows:\n{box.input_value()[-3000:]}')
    return box.input_value()


def test_a_training_started_from_the_page_shows_its_command_log_and_loss_curve(page, qwen2_dir, dataset, work):
    out = str(work / 'short')
    _fill_training(page, qwen2_dir, dataset, out, '--max_steps 4 --logging_steps 1 --max_length 64')
    page.locator('#train-run').click()
    status = _wait_for_text(page, 'train-status', 'started job')
    shown = _box(page, 'train-shown').input_value()
    assert shown == (f'swift sft --model {qwen2_dir} --dataset {dataset} --train_type lora --output_dir {out} '
                     '--max_steps 4 --logging_steps 1 --max_length 64'), status
    log = _wait_for_text(page, 'train-log', 'last_model_checkpoint', timeout=180_000)  # a loaded CI machine
    assert "'loss'" in log or '"loss"' in log
    page.locator('#train-plot img, #train-plot svg, #train-plot canvas').first.wait_for(state='visible')
    run_dirs = os.listdir(out)
    assert len(run_dirs) == 1 and os.path.isfile(os.path.join(out, run_dirs[0], 'logging.jsonl'))
    screenshot(page, work, 'train-finished')


def test_a_long_run_stops_from_the_jobs_list(page, qwen2_dir, dataset, work):
    _fill_training(page, qwen2_dir, dataset, str(work / 'long'), '--max_steps 100000 --logging_steps 1')
    page.locator('#train-run').click()
    pid = int(re.search(r'started job 2 \(pid (\d+)\)', _wait_for_text(page, 'train-status', 'started job 2')).group(1))
    assert psutil.pid_exists(pid)
    page.locator('#train-jobs input').click()  # the running-jobs list: pick the long run there
    page.get_by_role('option', name='2: swift sft [running]').click()
    page.locator('#train-stop').click()
    _wait_for_text(page, 'train-status', 'job 2: stopped')
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    page.wait_for_function("() => document.querySelector('#train-jobs input').value.includes('[stopped]')")


def test_a_bad_flag_shows_the_error_and_starts_nothing(page, qwen2_dir, dataset, work, web_ui):
    jobs_before = sorted(os.listdir(web_ui[1]))
    _fill_training(page, qwen2_dir, dataset, str(work / 'bad'), '--max_steps 2 --no_such_flag 1')
    page.locator('#train-run').click()
    status = _wait_for_text(page, 'train-status', 'error')
    assert status.startswith('swift sft: error: ') and '--no_such_flag' in status and '\n' not in status
    assert sorted(os.listdir(web_ui[1])) == jobs_before and not os.path.exists(work / 'bad')


def test_every_page_builds_its_command_and_is_screenshotted(page, qwen2_dir, work):
    for key, title in TABS.items():
        page.get_by_role('tab', name=title).click()
        _box(page, f'{key}-model').fill(qwen2_dir)
        shown = _wait_for_text(page, f'{key}-shown', re.escape(qwen2_dir))
        assert re.match(rf'swift (sft|rlhf|deploy|export|eval) .*--model {re.escape(qwen2_dir)}', shown), shown
        screenshot(page, work, key)
