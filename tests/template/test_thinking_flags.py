"""ms-swift's thinking flags on the qwen3 template: --enable_thinking, --response_prefix, --preserve_thinking,
--add_non_thinking_prefix (issue 13). enable_thinking is checked against the tokenizer's own chat template."""
import pytest

from swift.arguments import InferArguments, parse_args
from swift.model import get_model_tokenizer
from swift.pipelines.common import build_template
from swift.template import get_template

U = lambda text: {'role': 'user', 'content': text}  # noqa: E731
A = lambda text: {'role': 'assistant', 'content': text}  # noqa: E731
THINK_MULTI = [U('what is 2 plus 2'), A('<think>\nreason one\n</think>\n\nanswer one'),
               U('and 3 plus 3'), A('<think>\nreason two\n</think>\n\nanswer two')]


@pytest.fixture(scope='module')
def tokenizer(qwen3_dir):
    return get_model_tokenizer(qwen3_dir)[1]


def _prompt(template, messages) -> str:
    return template.tokenizer.decode(template.encode_prompt(messages))


@pytest.mark.parametrize('enable', [True, False])
def test_enable_thinking_matches_chat_template(tokenizer, enable):
    messages = [U('hi')]
    template = get_template('qwen3', tokenizer, enable_thinking=enable)
    expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                             enable_thinking=enable)
    assert _prompt(template, messages) == expected
    assert expected.endswith('<think>\n\n</think>\n\n') != enable


def test_enable_thinking_through_arguments(tokenizer):
    args = parse_args(InferArguments, ['--model', 'm', '--enable_thinking', 'false'])
    assert _prompt(build_template(args, tokenizer, 'qwen3'), [U('hi')]).endswith('assistant\n<think>\n\n</think>\n\n')
    # the hf template passes it to the tokenizer's chat template
    hf = build_template(parse_args(InferArguments, ['--model', 'm', '--template', 'hf', '--enable_thinking', 'false']),
                        tokenizer, 'qwen3')
    assert _prompt(hf, [U('hi')]).endswith('<think>\n\n</think>\n\n')


def test_response_prefix_wins(tokenizer):
    args = parse_args(InferArguments, ['--model', 'm', '--enable_thinking', 'false', '--response_prefix',
                                       '<think>\\nLet me see.'])
    assert args.response_prefix == '<think>\nLet me see.'
    assert _prompt(build_template(args, tokenizer, 'qwen3'), [U('hi')]).endswith('assistant\n<think>\nLet me see.')
    qwen = get_template('qwen', tokenizer, response_prefix='Sure: ')
    assert _prompt(qwen, [U('hi')]).endswith('<|im_start|>assistant\nSure: ')


def test_preserve_thinking(tokenizer):
    default = tokenizer.decode(get_template('qwen3', tokenizer).encode({'messages': THINK_MULTI})['input_ids'])
    kept = tokenizer.decode(get_template('qwen3', tokenizer, preserve_thinking=True)
                            .encode({'messages': THINK_MULTI})['input_ids'])
    assert 'reason one' not in default
    assert '<think>\nreason one\n</think>\n\nanswer one<|im_end|>' in kept and 'reason two' in kept


def test_add_non_thinking_prefix(tokenizer):
    row = {'messages': [U('hi'), A('hello')]}
    with_prefix = tokenizer.decode(get_template('qwen3', tokenizer).encode(row)['input_ids'])
    without = tokenizer.decode(get_template('qwen3', tokenizer, add_non_thinking_prefix=False).encode(row)['input_ids'])
    assert with_prefix.endswith('assistant\n<think>\n\n</think>\n\nhello<|im_end|>\n')
    assert without.endswith('assistant\nhello<|im_end|>\n')
