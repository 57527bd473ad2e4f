"""``swift deploy`` under a mixed load (issue 12): 200 requests from 32 threads, about 10% of them malformed in
varied ways and half of the valid ones streamed, through ``run_soak`` of ``bench/soak.py`` (which runs the same soak
on 1000 requests). The server runs the tiny model with a random LoRA, so greedy answers differ from prompt to prompt
and an answer mixed up with a batch neighbour's would show.
"""
import importlib.util
import os

import pytest

from .support import free_port, make_adapter, running_swift

BENCH_SOAK = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'bench',
                          'soak.py')
MAX_TOKENS = 8


def _soak_module():
    spec = importlib.util.spec_from_file_location('bench_soak', BENCH_SOAK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def soaked(qwen2_dir, tmp_path_factory) -> dict:
    soak = _soak_module()
    work = tmp_path_factory.mktemp('soak')
    adapter = make_adapter(qwen2_dir, str(work / 'lora'), seed=0)
    port = free_port()
    argv = ['deploy', '--model', qwen2_dir, '--adapters', adapter, '--served_model_name', 'tiny', '--infer_backend',
            'pt', '--temperature', '0', '--host', '127.0.0.1', '--port', str(port)]
    with running_swift(argv, f'http://127.0.0.1:{port}/health', str(work / 'server.log')) as proc:
        result = soak.run_soak(port, proc.pid, 'tiny', requests=200, threads=32, max_tokens=MAX_TOKENS)
    result['kinds_expected'] = sorted([*soak.MALFORMED, soak.DISCONNECT, 'greedy', 'stream'])
    result['rss_limit'] = soak.RSS_GROWTH_LIMIT
    return result


def test_every_kind_of_request_ran(soaked):
    assert soaked['kinds'] == soaked['kinds_expected']
    assert soaked['requests'] == 200 and 15 <= soaked['malformed'] <= 25


def test_no_server_errors_and_no_dropped_connections(soaked):
    assert soaked['server_errors'] == [] and soaked['dropped'] == []
    assert soaked['warm_up_problems'] == []  # the warm-up sends the same mix


def test_every_valid_request_is_answered_as_alone(soaked):
    assert soaked['valid_failed'] == [] and soaked['mismatched'] == []


def test_every_malformed_request_gets_an_openai_4xx(soaked):
    assert soaked['malformed_not_4xx'] == [] and soaked['disconnects_failed'] == []


def test_memory_stays_bounded_and_the_server_still_serves(soaked):
    assert soaked['rss_after_kb'] <= soaked['rss_limit'] * soaked['rss_warm_kb'], soaked
    assert soaked['still_serving']
