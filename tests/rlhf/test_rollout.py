"""``swift rollout``: the vLLM server for GRPO's --vllm_mode server. This environment has no vLLM (tests/vllm run it,
in .venv-vllm), so these check the one-line refusal and the server command built through trl's own ``vllm_serve``
script."""
import pytest
from trl.scripts.vllm_serve import build_command

from swift.arguments import RolloutArguments, parse_args
from swift.pipelines.rollout import serve_arguments
from swift.utils import SwiftError

from ..conftest import run_swift


def test_without_vllm_rollout_exits_2_with_one_line(qwen2_dir):
    result = run_swift('rollout', '--model', qwen2_dir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        'swift rollout: error: swift rollout serves generation with vLLM: vLLM is not installed (bash '
        'scripts/setup_vllm.sh, or pip install vllm on a GPU machine)']


def test_bad_flags_are_refused_before_anything_loads():
    with pytest.raises(SwiftError, match=r'--vllm_gpu_memory_utilization must be in \(0, 1\], got 1.5'):
        parse_args(RolloutArguments, ['--model', 'some/model', '--vllm_gpu_memory_utilization', '1.5'])
    with pytest.raises(SwiftError, match='--vllm_tensor_parallel_size must be at least 1'):
        parse_args(RolloutArguments, ['--model', 'some/model', '--vllm_tensor_parallel_size', '0'])


def test_ms_swift_flags_reach_the_vllm_server_command():
    args = RolloutArguments(model='Qwen/Qwen2.5-7B-Instruct', vllm_tensor_parallel_size=2, vllm_data_parallel_size=2,
                            port=8123, host='127.0.0.1', torch_dtype='bf16', vllm_max_model_len=4096,
                            vllm_gpu_memory_utilization=0.7, vllm_enforce_eager=True)
    command = build_command(serve_arguments(args, '/models/qwen'))
    served = command[command.index('serve') + 1:]
    assert served[0] == '/models/qwen'  # the hub id resolved to its local folder
    pairs = dict(zip(served[1::2], served[2::2]))
    assert {'--host': '127.0.0.1', '--port': '8123', '--tensor-parallel-size': '2', '--data-parallel-size': '2',
            '--gpu-memory-utilization': '0.7', '--dtype': 'bfloat16', '--max-model-len': '4096'}.items() <= pairs.items()
    assert '--enforce-eager' in served and '--trust-remote-code' not in served  # remote code only when asked
    assert '--weight-transfer-config' in served  # the endpoint trl's GRPOTrainer pushes new weights through
