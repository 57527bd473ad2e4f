"""--template_backend jinja (issue 13): the tokenizer's own chat template renders prompts and training rows;
--is_binary_loss_scale is accepted (loss scales here are 0/1 labels either way)."""
import pytest

from swift.arguments import InferArguments, TrainArguments, parse_args
from swift.model import get_model_tokenizer
from swift.pipelines.common import build_template
from swift.utils import SwiftError

ROW = [{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': 'hello there'}]


def _args(*flags):
    return parse_args(InferArguments, ['--model', 'm', *flags])


def test_jinja_uses_the_tokenizers_chat_template(qwen2_dir):
    tokenizer = get_model_tokenizer(qwen2_dir)[1]
    # the chat template with a different system prompt than ours proves the text comes from the jinja template
    tokenizer.chat_template = tokenizer.chat_template.replace('You are a helpful assistant.', 'JINJA SYSTEM')
    swift = build_template(_args(), tokenizer, 'qwen')
    jinja = build_template(_args('--template_backend', 'jinja'), tokenizer, 'qwen')
    assert (swift.template_type, jinja.template_type) == ('qwen', 'hf')
    prompt = tokenizer.decode(jinja.encode_prompt(ROW[:1]))
    assert prompt == tokenizer.apply_chat_template(ROW[:1], tokenize=False, add_generation_prompt=True)
    assert 'JINJA SYSTEM' in prompt and 'JINJA SYSTEM' not in tokenizer.decode(swift.encode_prompt(ROW[:1]))
    encoded = jinja.encode({'messages': ROW})  # training rows too: the answer carries the loss
    labelled = tokenizer.decode([t for t in encoded['labels'] if t != -100])
    assert labelled.startswith('hello there')


def test_jinja_refusals(qwen2_dir, base_dir):
    with pytest.raises(SwiftError, match='--template_backend jinja needs a tokenizer with a chat template'):
        build_template(_args('--template_backend', 'jinja'), get_model_tokenizer(base_dir)[1], 'qwen')
    with pytest.raises(SwiftError, match='--template_backend jinja: the qwen2_5_vl template'):
        build_template(_args('--template_backend', 'jinja', '--template', 'qwen2_5_vl'),
                       get_model_tokenizer(qwen2_dir)[1], 'qwen')
    with pytest.raises(SwiftError, match='template_backend'):
        _args('--template_backend', 'tera')


def test_is_binary_loss_scale_accepted():
    for value in ('true', 'false'):
        args = parse_args(TrainArguments, ['--model', 'm', '--dataset', 'd.jsonl', '--is_binary_loss_scale', value])
        assert args.is_binary_loss_scale is (value == 'true')
