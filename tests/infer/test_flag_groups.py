"""The engines' flags are declared once (``swift/infer/arguments.py``): the commands compose the groups, the engines
take them whole or flag by flag under ms-swift's keyword names, and ``swift rollout`` shares vLLM's."""
import dataclasses

import pytest

from swift.arguments import InferArguments, RolloutArguments, group, parse_args
from swift.infer.arguments import LmdeployArguments, SglangArguments, VllmArguments, VllmEngineArguments
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


def test_rollout_declares_no_vllm_flag_of_its_own():
    own = {f.name for f in dataclasses.fields(RolloutArguments)} - {
        f.name for f in dataclasses.fields(VllmEngineArguments)}
    assert not {name for name in own if name.startswith('vllm_')}
    assert RolloutArguments(model='m').vllm_enable_prefix_caching is None  # ms-swift's default: vLLM's choice


def test_rollout_passes_the_engine_options_that_differ_from_vllms():
    # ms-swift's default turns vLLM's custom all-reduce off; vLLM's server keeps its own max_num_seqs
    assert extra_serve_arguments(VllmEngineArguments()) == ['--disable-custom-all-reduce']
    quiet = dict(vllm_disable_custom_all_reduce=False)
    assert extra_serve_arguments(VllmEngineArguments(vllm_max_num_seqs=32, **quiet)) == ['--max-num-seqs', '32']
    options = extra_serve_arguments(VllmEngineArguments(
        vllm_pipeline_parallel_size=2, vllm_enable_expert_parallel=True, vllm_quantization='fp8',
        vllm_speculative_config='{"method": "ngram", "num_speculative_tokens": 3}',
        vllm_engine_kwargs='{"max_num_batched_tokens": 512, "enable_chunked_prefill": false}', **quiet))
    assert options == ['--pipeline-parallel-size', '2', '--enable-expert-parallel', '--quantization', 'fp8',
                       '--speculative-config', '{"method": "ngram", "num_speculative_tokens": 3}',
                       '--max-num-batched-tokens', '512', '--no-enable-chunked-prefill']


def test_the_vllm_engine_gets_the_pass_through_flags_with_engine_kwargs_last():
    args = InferArguments(model='m', infer_backend='vllm', vllm_quantization='awq', vllm_data_parallel_size=2,
                          vllm_engine_kwargs='{"quantization": "fp8", "max_num_batched_tokens": 512}')
    options = group(args, VllmEngineArguments).engine_options()
    assert options['quantization'] == 'fp8' and options['max_num_batched_tokens'] == 512
    assert options['data_parallel_size'] == 2 and options['disable_custom_all_reduce'] is True


@pytest.mark.parametrize('flag', ['--vllm_engine_kwargs', '--vllm_speculative_config'])
def test_a_json_flag_that_is_not_an_object_is_one_line(flag):
    with pytest.raises(SwiftError, match=f'^{flag} must be a JSON object'):
        parse_args(InferArguments, ['--model', 'm', flag, '{"a": '])
    with pytest.raises(SwiftError, match=f'^{flag} must be a JSON object'):
        parse_args(InferArguments, ['--model', 'm', flag, '[1, 2]'])


def test_sglang_speculative_flags_reach_the_engine():
    from swift.infer.sglang_engine import engine_kwargs
    settings = SglangArguments(sglang_speculative_algorithm='EAGLE', sglang_speculative_num_steps=3,
                               sglang_speculative_eagle_topk=1, sglang_speculative_num_draft_tokens=4)
    kwargs = engine_kwargs('m', settings, {})
    assert (kwargs['speculative_algorithm'], kwargs['speculative_num_steps'], kwargs['speculative_eagle_topk'],
            kwargs['speculative_num_draft_tokens']) == ('EAGLE', 3, 1, 4)
