"""ms-swift's model flags that act here: --new_special_tokens, --problem_type (issue 13)."""
import pytest
import torch

from swift.arguments import InferArguments, RolloutArguments, TrainArguments, parse_args
from swift.model import get_model_tokenizer
from swift.pipelines.common import load_model
from swift.utils import SwiftError


def test_new_special_tokens_are_single_tokens_the_model_embeds(qwen2_dir, tmp_path):
    words = tmp_path / 'tokens.txt'
    words.write_text('<tool_a> <tool_b>\n<tool_c>\n')
    args = parse_args(InferArguments, ['--model', qwen2_dir, '--new_special_tokens', '<act>', str(words)])
    assert args.new_special_tokens == ['<act>', '<tool_a>', '<tool_b>', '<tool_c>']
    base_model, base_tokenizer = get_model_tokenizer(qwen2_dir)
    assert len(base_tokenizer('<tool_a>', add_special_tokens=False)['input_ids']) > 1
    model, tokenizer = load_model(args)
    ids = [tokenizer.convert_tokens_to_ids(t) for t in args.new_special_tokens]
    assert tokenizer('x <act> y<tool_c>', add_special_tokens=False)['input_ids'].count(ids[0]) == 1
    assert min(ids) >= len(base_tokenizer) and tokenizer.decode(ids) == '<act><tool_a><tool_b><tool_c>'
    rows = model.get_input_embeddings().weight.shape[0]
    assert rows >= len(tokenizer) and rows % 128 == 0
    with torch.no_grad():
        assert model(torch.tensor([ids])).logits.shape[-1] == model.get_output_embeddings().weight.shape[0]


def test_new_special_tokens_refused_where_they_cannot_act(tmp_path):
    with pytest.raises(SwiftError, match='--new_special_tokens .*missing.txt'):
        parse_args(InferArguments, ['--model', 'm', '--new_special_tokens', str(tmp_path / 'missing.txt')])
    with pytest.raises(SwiftError, match='--new_special_tokens'):
        parse_args(InferArguments, ['--model', 'm', '--new_special_tokens', '<a>', '--infer_backend', 'vllm'])
    with pytest.raises(SwiftError, match='--new_special_tokens'):
        parse_args(RolloutArguments, ['--model', 'm', '--new_special_tokens', '<a>'])


@pytest.mark.parametrize('problem_type,labels,loss', [
    ('regression', torch.tensor([[0.5, -1.0]]), torch.nn.functional.mse_loss),
    ('multi_label_classification', torch.tensor([[1.0, 0.0]]), torch.nn.functional.binary_cross_entropy_with_logits),
    ('single_label_classification', torch.tensor([1]), torch.nn.functional.cross_entropy)])
def test_problem_type_picks_the_seq_cls_loss(qwen2_dir, problem_type, labels, loss):
    args = parse_args(InferArguments, ['--model', qwen2_dir, '--task_type', 'seq_cls', '--num_labels', '2',
                                       '--problem_type', problem_type])
    model, _ = load_model(args)
    assert model.config.problem_type == problem_type
    with torch.no_grad():
        out = model(torch.tensor([[1, 5, 9]]), labels=labels)
    torch.testing.assert_close(out.loss, loss(out.logits.view(labels.shape[0], -1) if labels.dim() > 1
                                             else out.logits, labels))


def test_problem_type_needs_seq_cls(qwen2_dir):
    with pytest.raises(SwiftError, match='--problem_type regression is for --task_type seq_cls'):
        load_model(parse_args(InferArguments, ['--model', qwen2_dir, '--problem_type', 'regression']))
    with pytest.raises(SwiftError, match='problem_type'):
        parse_args(TrainArguments, ['--model', 'm', '--dataset', 'd.jsonl', '--problem_type', 'ranking'])


def _logits(model, n=64):
    with torch.no_grad():
        return model(torch.arange(1, n + 1).unsqueeze(0) % 50 + 1).logits


@pytest.mark.parametrize('flags,rope_type,factor', [
    (['--rope_scaling', 'linear'], 'linear', 2.0),  # factor from --max_model_len / the original context
    (['--rope_scaling', '{"type": "dynamic", "factor": 3}'], 'dynamic', 3.0)])
def test_rope_scaling(qwen2_dir, flags, rope_type, factor):
    base, _ = get_model_tokenizer(qwen2_dir)
    origin = base.config.max_position_embeddings
    args = parse_args(InferArguments, ['--model', qwen2_dir, '--max_model_len', str(2 * origin - 1), *flags])
    model, _ = load_model(args)
    rope = model.config.rope_parameters
    assert (rope['rope_type'], rope['factor'], rope['original_max_position_embeddings']) == (rope_type, factor, origin)
    assert rope['rope_theta'] == base.config.rope_parameters['rope_theta']
    assert model.config.max_position_embeddings == 2 * origin - 1
    if rope_type == 'linear':  # positions are divided by the factor: the logits change
        assert not torch.allclose(_logits(model), _logits(base), atol=1e-4)


def test_rope_scaling_bad_values(qwen2_dir):
    with pytest.raises(SwiftError, match='--rope_scaling must be'):
        parse_args(InferArguments, ['--model', 'm', '--rope_scaling', 'ntk'])
    with pytest.raises(SwiftError, match='--rope_scaling without a factor needs --max_model_len'):
        load_model(parse_args(InferArguments, ['--model', qwen2_dir, '--rope_scaling', 'yarn']))
    with pytest.raises(SwiftError, match='--rope_scaling'):
        parse_args(InferArguments, ['--model', 'm', '--rope_scaling', 'linear', '--infer_backend', 'vllm'])


def test_init_strategy_initialises_what_the_checkpoint_lacks(qwen2_dir):
    base, _ = get_model_tokenizer(qwen2_dir)
    flags = ['--model', qwen2_dir, '--task_type', 'seq_cls', '--num_labels', '2']
    plain, _ = load_model(parse_args(InferArguments, flags))
    zero, _ = load_model(parse_args(InferArguments, [*flags, '--init_strategy', 'zero']))
    normal, _ = load_model(parse_args(InferArguments, [*flags, '--init_strategy', 'normal']))
    assert plain.score.weight.abs().sum() > 0 and zero.score.weight.abs().sum() == 0
    assert 0.005 < normal.score.weight.std() < 0.02
    # what the checkpoint has is loaded, not re-initialised
    torch.testing.assert_close(zero.model.embed_tokens.weight, base.model.embed_tokens.weight)
    with pytest.raises(SwiftError, match='init_strategy'):
        parse_args(InferArguments, [*flags, '--init_strategy', 'ones'])


def test_max_memory_reaches_from_pretrained(qwen2_dir, tmp_path):
    args = parse_args(InferArguments, ['--model', qwen2_dir, '--max_memory', '{"cpu": "2GB"}'])
    assert args.max_memory == {'cpu': '2GB'} and args.device_map == 'auto'
    model, _ = load_model(args)
    assert 'disk' not in set(getattr(model, 'hf_device_map', {}).values())
    # a budget too small for any layer is enforced: accelerate offloads the weights to disk
    tiny, _ = load_model(parse_args(InferArguments, ['--model', qwen2_dir, '--max_memory', '{"cpu": "1KB"}']))
    assert set(tiny.hf_device_map.values()) == {'disk'}
    with pytest.raises(SwiftError, match='--max_memory needs --device_map auto'):
        parse_args(InferArguments, ['--model', 'm', '--max_memory', '{"cpu": "1GB"}', '--device_map', 'cpu'])


def test_experts_impl(qwen2_dir):
    model, _ = load_model(parse_args(InferArguments, ['--model', qwen2_dir, '--experts_impl', 'batched_mm']))
    assert model.config._experts_implementation == 'batched_mm'
    with pytest.raises(SwiftError, match='--experts_impl grouped_mm: .*does not support'):
        load_model(parse_args(InferArguments, ['--model', qwen2_dir, '--experts_impl', 'grouped_mm']))


def test_bnb_4bit_quant_storage(qwen2_dir):
    pytest.importorskip('bitsandbytes')
    flags = ['--model', qwen2_dir, '--quant_method', 'bnb', '--quant_bits', '4']
    plain, _ = load_model(parse_args(InferArguments, flags))
    stored, _ = load_model(parse_args(InferArguments, [*flags, '--bnb_4bit_quant_storage', 'bfloat16']))
    assert plain.model.layers[0].self_attn.q_proj.weight.dtype == torch.uint8
    assert stored.model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16
    with pytest.raises(SwiftError, match='--bnb_4bit_quant_storage is for --quant_bits 4'):
        load_model(parse_args(InferArguments, ['--model', qwen2_dir, '--quant_method', 'bnb', '--quant_bits', '8',
                                               '--bnb_4bit_quant_storage', 'bfloat16']))
