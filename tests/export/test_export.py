"""swift export: an Ollama Modelfile whose Go template renders what our template renders, and bitsandbytes
quantized folders that transformers loads."""
import re

import bitsandbytes as bnb
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from swift.arguments import ExportArguments, parse_args
from swift.model import bnb_config
from swift.pipelines.export import export_main
from swift.template import get_template
from swift.utils import SwiftError

CONVERSATION = [{'role': 'user', 'content': 'who are you?'}, {'role': 'assistant', 'content': 'a robot'},
                {'role': 'user', 'content': 'hello'}]


def _render_go(template: str, system: str | None, messages: list[dict]) -> str:
    """Ollama's evaluation of the subset of Go templates write_modelfile produces."""
    prefix, system_part, body, tail = re.fullmatch(
        r'(.*?)\{\{ if \.System \}\}(.*?)\{\{ end \}\}\{\{ range \.Messages \}\}(.*)\{\{ end \}\}\{\{ end \}\}(.*)',
        template, re.S).groups()
    branches = dict(re.findall(r'\{\{ (?:else )?if eq \.Role "(\w+)" \}\}(.*?)(?=\{\{ else if |$)', body, re.S))
    text = prefix + (system_part.replace('{{ .System }}', system) if system else '')
    text += ''.join(branches[m['role']].replace('{{ .Content }}', m['content']) for m in messages)
    return text + tail


@pytest.mark.parametrize('fixture', ['qwen2_dir', 'llama_dir'])
def test_ollama_modelfile_renders_like_the_template(fixture, request, tmp_path):
    model_dir = request.getfixturevalue(fixture)
    path = export_main(['--model', model_dir, '--to_ollama', 'true', '--output_dir', str(tmp_path)])['modelfile']
    text = open(path, encoding='utf-8').read()
    assert text.startswith(f'FROM {model_dir}\nTEMPLATE """')
    go_template = re.search(r'TEMPLATE """(.*?)"""', text, re.S).group(1)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    template_type = {'qwen2_dir': 'qwen', 'llama_dir': 'llama3'}[fixture]
    template = get_template(template_type, tokenizer)
    for system in ('Be brief.', template.default_system):
        messages = ([{'role': 'system', 'content': system}] if system else []) + CONVERSATION
        expected = template.render(messages, add_generation_prompt=True).text
        expected = expected.removeprefix(tokenizer.bos_token or '')  # llama.cpp adds the BOS token itself
        assert _render_go(go_template, system, CONVERSATION) == expected
    for word in template.stop_words:
        assert f'PARAMETER stop "{word}"' in text
    assert ('SYSTEM """' in text) == bool(template.default_system)


def test_bnb_export_writes_a_folder_transformers_loads_quantized(qwen2_dir, tmp_path):
    out = tmp_path / 'int4'
    export_main(['--model', qwen2_dir, '--quant_method', 'bnb', '--quant_bits', '4', '--output_dir', str(out)])
    model = AutoModelForCausalLM.from_pretrained(out)
    assert isinstance(model.model.layers[0].mlp.down_proj, bnb.nn.Linear4bit)
    ids = torch.tensor([[3, 14, 15, 92, 65]])
    in_memory = AutoModelForCausalLM.from_pretrained(qwen2_dir, quantization_config=bnb_config(4))
    with torch.no_grad():
        quantized = model(ids).logits
        torch.testing.assert_close(quantized, in_memory(ids).logits)  # the saved 4-bit weights are the same
        base = AutoModelForCausalLM.from_pretrained(qwen2_dir)(ids).logits
    assert not torch.allclose(quantized, base, atol=1e-4)


@pytest.mark.parametrize('argv, message', [
    (['--quant_method', 'gptq', '--quant_bits', '4'], 'gptq calibrates on data: give --dataset'),
    (['--to_ollama', 'true', '--quant_bits', '4'], 'Ollama does not import'),
])
def test_export_refusals_are_one_line(argv, message):
    with pytest.raises(SwiftError, match=message):
        parse_args(ExportArguments, ['--model', 'some/model', *argv])


def test_ollama_needs_a_registered_template(zephyr_dir, tmp_path):
    with pytest.raises(SwiftError, match='registered chat template'):  # a tokenizer's Jinja has no turn formats
        export_main(['--model', zephyr_dir, '--to_ollama', 'true', '--output_dir', str(tmp_path)])
    path = export_main(['--model', zephyr_dir, '--to_ollama', 'true', '--template', 'chatml',
                        '--output_dir', str(tmp_path)])['modelfile']
    assert 'PARAMETER stop "<|im_end|>"' in open(path, encoding='utf-8').read()
