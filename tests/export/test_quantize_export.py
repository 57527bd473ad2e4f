"""swift export --quant_method gptq|awq|fp8: llm-compressor quantizes, and the folder it writes (compressed-tensors
format) loads back in transformers with the quantized weights. Real llmcompressor, transformers and
compressed-tensors; GPTQ and FP8 run on this CPU, AWQ needs a GPU."""
import json
import os
import re

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from swift.arguments import ExportArguments, parse_args
from swift.pipelines.common import load_model_and_template
from swift.pipelines.export import calibration_samples, export_main
from swift.utils import SwiftError
from swift.utils.tiny_models import build_tiny_model
from tests.conftest import run_swift

IDS = torch.tensor([[3, 14, 15, 92, 65, 35, 89, 79]])
HAS_ACCELERATOR = torch.accelerator.is_available()


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory) -> str:
    """hidden 128: llm-compressor's int schemes quantize in groups of 128 input features."""
    return build_tiny_model(str(tmp_path_factory.mktemp('qwen2-128')), 'qwen2', hidden_size=128)


@pytest.fixture(scope='module')
def calib_jsonl(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp('calib') / 'calib.jsonl'
    with open(path, 'w', encoding='utf-8') as f:
        for i in range(12):
            messages = [{'role': 'user', 'content': f'what is {i} plus {i}?'},
                        {'role': 'assistant', 'content': f'{i} plus {i} is {2 * i}, said the quick brown fox.'}]
            f.write(json.dumps({'messages': messages}) + '\n')
    return str(path)


def _logits(model_dir: str) -> torch.Tensor:
    with torch.no_grad():
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)(IDS).logits


def _tensors(folder: str) -> dict[str, torch.Tensor]:
    with safe_open(os.path.join(folder, 'model.safetensors'), 'pt') as f:
        return {key: f.get_tensor(key) for key in f.keys()}


def _quantization_config(folder: str) -> dict:
    with open(os.path.join(folder, 'config.json'), encoding='utf-8') as f:
        return json.load(f)['quantization_config']


@pytest.mark.parametrize('bits, tolerance', [(4, 0.5), (8, 0.05)])
def test_gptq_export_writes_packed_int_weights_that_transformers_loads(model_dir, calib_jsonl, tmp_path, bits,
                                                                       tolerance):
    out = str(tmp_path / 'gptq')
    export_main(['--model', model_dir, '--quant_method', 'gptq', '--quant_bits', str(bits), '--dataset', calib_jsonl,
                 '--quant_n_samples', '8', '--output_dir', out])
    config = _quantization_config(out)
    assert config['quant_method'] == 'compressed-tensors' and config['format'] == 'pack-quantized'
    assert config['config_groups']['group_0']['weights']['num_bits'] == bits
    tensors = _tensors(out)
    packed = tensors['model.layers.0.mlp.down_proj.weight_packed']
    assert packed.dtype == torch.int32 and packed.shape == (128, 512 * bits // 32)  # 32 // bits weights per int32
    assert 'model.layers.0.mlp.down_proj.weight' not in tensors
    base, quantized = _logits(model_dir), _logits(out)
    error = (quantized - base).abs().max() / base.abs().max()
    assert 0 < error < tolerance, error  # quantized, and still the same model
    with open(os.path.join(out, 'args.json'), encoding='utf-8') as f:
        assert json.load(f)['model'] == out  # swift infer --model OUT loads it as a plain model


def test_fp8_export_needs_no_data_and_stores_float8_weights(model_dir, tmp_path):
    out = str(tmp_path / 'fp8')
    export_main(['--model', model_dir, '--quant_method', 'fp8', '--output_dir', out])
    config = _quantization_config(out)
    assert config['format'] == 'float-quantized'
    assert config['config_groups']['group_0']['input_activations']['dynamic'] is True  # FP8_DYNAMIC
    tensors = _tensors(out)
    assert tensors['model.layers.0.self_attn.q_proj.weight'].dtype == torch.float8_e4m3fn
    assert tensors['model.layers.0.self_attn.q_proj.weight_scale'].shape == (128, 1)  # one scale per channel
    assert tensors['model.embed_tokens.weight'].dtype == torch.float32  # only Linear layers, not lm_head
    base, quantized = _logits(model_dir), _logits(out)
    error = (quantized - base).abs().max() / base.abs().max()
    assert 0 < error < 0.2, error


def _calibration(model_dir: str, calib_jsonl: str, *extra: str) -> list[list[int]]:
    args = parse_args(ExportArguments, ['--model', model_dir, '--quant_method', 'gptq', '--quant_bits', '4',
                                        '--dataset', calib_jsonl, *extra])
    return calibration_samples(args, load_model_and_template(args)[2])


def test_calibration_rows_are_the_template_encodings(model_dir, calib_jsonl):
    args = parse_args(ExportArguments, ['--model', model_dir])
    template = load_model_and_template(args)[2]
    with open(calib_jsonl, encoding='utf-8') as f:
        encoded = [template.encode(json.loads(line))['input_ids'] for line in f]
    assert _calibration(model_dir, calib_jsonl) == encoded  # all 12 rows: fewer than --quant_n_samples 256
    assert len(encoded[0]) > 20
    cut = _calibration(model_dir, calib_jsonl, '--quant_n_samples', '5', '--max_length', '20',
                       '--truncation_strategy', 'right')
    assert cut == [ids[:20] for ids in encoded[:5]]


def test_no_calibration_row_left_is_an_error(model_dir, calib_jsonl, tmp_path):
    with pytest.raises(SwiftError, match='no calibration rows left'):  # --truncation_strategy delete drops all
        export_main(['--model', model_dir, '--quant_method', 'gptq', '--quant_bits', '4', '--dataset', calib_jsonl,
                     '--max_length', '5', '--output_dir', str(tmp_path / 'o')])
    assert not (tmp_path / 'o').exists()


@pytest.mark.skipif(HAS_ACCELERATOR, reason='checks the refusal on a machine without a GPU')
def test_awq_on_a_cpu_is_refused_in_one_line(model_dir, calib_jsonl, tmp_path):
    with pytest.raises(SwiftError) as refused:
        export_main(['--model', model_dir, '--quant_method', 'awq', '--dataset', calib_jsonl,
                     '--output_dir', str(tmp_path / 'awq')])
    assert str(refused.value) == ('--quant_method awq needs a GPU (llm-compressor pins AWQ calibration activations '
                                  'for one); on a CPU, --quant_method gptq or fp8 quantize')
    assert not (tmp_path / 'awq').exists()


@pytest.mark.skipif(not HAS_ACCELERATOR, reason='llm-compressor AWQ needs a GPU')
def test_awq_export_on_a_gpu_loads_in_transformers(model_dir, calib_jsonl, tmp_path):
    out = str(tmp_path / 'awq')
    export_main(['--model', model_dir, '--quant_method', 'awq', '--dataset', calib_jsonl, '--output_dir', out])
    config = _quantization_config(out)
    assert config['format'] == 'pack-quantized'
    assert config['config_groups']['group_0']['weights']['symmetric'] is False
    base, quantized = _logits(model_dir), _logits(out)
    assert 0 < ((quantized - base).abs().max() / base.abs().max()) < 0.5


def test_gptq_without_data_is_one_cli_line():
    result = run_swift('export', '--model', 'some/model', '--quant_method', 'gptq', '--quant_bits', '4')
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [
        'swift export: error: --quant_method gptq calibrates on data: give --dataset (e.g. a jsonl of chat rows; '
        '--quant_n_samples rows are used)']


@pytest.mark.parametrize('argv, message', [
    (['--quant_method', 'awq', '--quant_bits', '8', '--dataset', 'x.jsonl'],
     '--quant_method awq takes --quant_bits 4, got 8'),
    (['--quant_method', 'fp8', '--quant_bits', '4'], '--quant_method fp8 takes --quant_bits 8, got 4'),
    (['--quant_method', 'gptq', '--dataset', 'x.jsonl'], '--quant_method gptq needs --quant_bits 4|8'),
    (['--quant_method', 'gptq', '--quant_bits', '4', '--dataset', 'x.jsonl', '--quant_n_samples', '0'],
     '--quant_n_samples and --quant_batch_size must be positive'),
    (['--quant_method', 'fp8', '--adapters', 'ckpt'], '--quant_method fp8 quantizes a whole model: merge first'),
])
def test_quantize_argument_errors(argv, message):
    with pytest.raises(SwiftError, match=re.escape(message)):
        parse_args(ExportArguments, ['--model', 'some/model', *argv])


def test_fp8_and_awq_default_to_their_only_bit_width():
    assert parse_args(ExportArguments, ['--model', 'm', '--quant_method', 'fp8']).quant_bits == 8
    assert parse_args(ExportArguments, ['--model', 'm', '--quant_method', 'awq', '--dataset', 'x']).quant_bits == 4


def test_missing_llmcompressor_names_the_install(model_dir, tmp_path):
    """A folder on PYTHONPATH whose llmcompressor fails to import, as a venv without the package does."""
    shadow = tmp_path / 'shadow' / 'llmcompressor'
    shadow.mkdir(parents=True)
    (shadow / '__init__.py').write_text("raise ModuleNotFoundError(\"No module named 'llmcompressor'\")\n")
    result = run_swift('export', '--model', model_dir, '--quant_method', 'fp8', '--output_dir', str(tmp_path / 'o'),
                       env={'PYTHONPATH': str(tmp_path / 'shadow'), 'OMP_NUM_THREADS': '1'})
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "needs llmcompressor (No module named 'llmcompressor')" in last
    assert 'pip install --no-deps llmcompressor==0.14.0.1' in last and 'Traceback' not in result.stderr


def test_a_width_the_groups_do_not_divide_is_one_line(qwen2_dir, calib_jsonl, tmp_path):
    """The tiny test model is 64 wide; GPTQ's int schemes quantize in groups of 128 inputs."""
    with pytest.raises(SwiftError, match=r'groups of 128 inputs, but model\.layers\.0\.self_attn\.q_proj has 64'):
        export_main(['--model', qwen2_dir, '--quant_method', 'gptq', '--quant_bits', '8', '--dataset', calib_jsonl,
                     '--output_dir', str(tmp_path / 'o')])
    assert not (tmp_path / 'o').exists()
