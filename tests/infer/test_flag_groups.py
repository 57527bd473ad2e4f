"""The engines' flags are declared once (``swift/infer/arguments.py``): the commands compose the groups, the engines
take them whole or flag by flag under ms-swift's keyword names, and ``swift rollout`` shares vLLM's."""
import dataclasses

import pytest

from swift.arguments import InferArguments, RolloutArguments, group
from swift.infer.arguments import LmdeployArguments, SglangArguments, VllmArguments
from swift.infer.loop_engine import flag_group
from swift.pipelines.rollout import extra_serve_arguments
from swift.utils import SwiftError


def test_ms_swift_keywords_and_flag_names_set_the_group():
    flags = flag_group(VllmArguments, None, {'max_model_len': 8192, 'vllm_enforce_eager': True}, 'VllmEngine')
    assert flags == VllmArguments(vllm_max_model_len=8192, vllm_enforce_eager=True)
    assert flag_group(SglangArguments, None, {'tp_size': 2}, 'SglangEngine').sglang_tp_size == 2
    assert flag_group(LmdeployArguments, None, {'tp': 2}, 'LmdeployEngine').lmdeploy_tp == 2
    # a group given whole, with single flags over it
    base = VllmArguments(vllm_max_num_seqs=8)
    assert flag_group(VllmArguments, base, {'max_lora_rank': 32}, 'VllmEngine') == VllmArguments(
        vllm_max_num_seqs=8, vllm_max_lora_rank=32)
    assert flag_group(VllmArguments, base, {}, 'VllmEngine') is base


def test_engine_keywords_are_checked_as_the_flags_are():
    with pytest.raises(TypeError, match="VllmEngine\\(\\) got an unexpected keyword argument 'max_model_length'"):
        flag_group(VllmArguments, None, {'max_model_length': 8}, 'VllmEngine')
    with pytest.raises(SwiftError, match='--vllm_gpu_memory_utilization'):
        flag_group(VllmArguments, None, {'gpu_memory_utilization': 1.5}, 'VllmEngine')


def test_the_commands_compose_the_groups_and_hand_them_over():
    args = InferArguments(model='m', vllm_max_model_len=512, sglang_tp_size=2, lmdeploy_session_len=64)
    assert group(args, VllmArguments) == VllmArguments(vllm_max_model_len=512)
    assert group(args, SglangArguments) == SglangArguments(sglang_tp_size=2)
    assert group(args, LmdeployArguments) == LmdeployArguments(lmdeploy_session_len=64)
    rollout = RolloutArguments(model='m', vllm_enforce_eager=True)
    assert group(rollout, VllmArguments) == VllmArguments(vllm_enforce_eager=True)


def test_rollout_declares_only_its_own_vllm_flags():
    own = {f.name for f in dataclasses.fields(RolloutArguments)} - {f.name for f in dataclasses.fields(VllmArguments)}
    assert {name for name in own if name.startswith('vllm_')} == {'vllm_data_parallel_size'}
    assert RolloutArguments(model='m').vllm_enable_prefix_caching is None  # ms-swift's default: vLLM's choice


def test_rollout_passes_max_num_seqs_when_set():
    assert extra_serve_arguments(VllmArguments()) == []  # vLLM's server keeps its own choice
    assert extra_serve_arguments(VllmArguments(vllm_max_num_seqs=32)) == ['--max-num-seqs', '32']
