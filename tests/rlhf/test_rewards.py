"""The GRPO reward functions on fixed strings, each against a value worked out by hand in the test."""
import math

import pytest

from swift.rlhf.rewards import REWARD_FUNCS, get_reward_funcs, make_reward
from swift.utils.plugins import import_plugins
from swift.rlhf.rewards.completions import completion_lengths
from swift.utils import SwiftError


def _ids(length: int) -> list[int]:
    """Token ids of a completion ``length`` tokens long: only their count matters to length rewards."""
    return [7] * length


@pytest.fixture
def registry_snapshot():
    """Plugins register into the process-wide table; put it back so other tests see only the built-ins."""
    saved = dict(REWARD_FUNCS)
    yield
    REWARD_FUNCS.clear()
    REWARD_FUNCS.update(saved)


def test_accuracy_compares_the_boxed_answer_with_the_solution():
    accuracy = make_reward('accuracy')
    completions = ['So x = \\boxed{1/2}.', 'So x = \\boxed{3}.', '<think>halve it</think><answer>0.5</answer>']
    solution = ['$\\frac{1}{2}$'] * 3
    assert accuracy(prompts=['p'] * 3, completions=completions, solution=solution) == [1.0, 0.0, 1.0]


def test_accuracy_reads_a_numeric_solution_as_text():
    assert make_reward('accuracy')(prompts=['p'], completions=['\\boxed{42}'], solution=[42]) == [1.0]


def test_accuracy_is_none_when_the_solution_cannot_be_parsed():
    accuracy = make_reward('accuracy')
    assert accuracy(prompts=['p'], completions=['\\boxed{1}'], solution=['no number here']) == [None]


def test_accuracy_without_a_solution_column_is_a_swift_error():
    with pytest.raises(SwiftError, match="'solution' column"):
        make_reward('accuracy')(prompts=['p'], completions=['\\boxed{1}'])


def test_format_wants_think_then_answer_and_nothing_else():
    completions = ['<think>a\nb</think>\n<answer>c</answer>', 'just c', '<think>a</think><answer>c</answer> and more',
                   '<answer>c</answer>']
    assert make_reward('format')(prompts=['p'] * 4, completions=completions) == [1.0, 0.0, 0.0, 0.0]


def test_conversational_completions_are_read_from_the_last_message():
    completions = [[{'role': 'assistant', 'content': '<think>t</think><answer>\\boxed{1/2}</answer>'}]]
    assert make_reward('format')(prompts=[[{'role': 'user', 'content': 'q'}]], completions=completions) == [1.0]
    assert make_reward('accuracy')(prompts=['q'], completions=completions, solution=['$\\frac{1}{2}$']) == [1.0]


def test_repetition_penalises_a_repeated_sentence():
    # "the cat sat the cat sat": trigrams (the cat sat) (cat sat the) (sat the cat) (the cat sat):
    # 4 in all, 3 distinct, so -1.0 * (1 - 3/4) = -0.25.
    repetition = make_reward('repetition')
    texts = ['The cat sat the cat sat', 'one two three four', 'too short']
    assert repetition(prompts=['p'] * 3, completions=texts) == [-0.25, 0.0, 0.0]


def test_repetition_settings_come_from_flags():
    # bigrams of "a b a b": (a b) (b a) (a b): 3 in all, 2 distinct, so -0.6 * (1 - 2/3) = -0.2.
    repetition = make_reward('repetition', repetition_n_grams=2, repetition_max_penalty=-0.6)
    assert repetition(prompts=['p'], completions=['a b a b']) == [pytest.approx(-0.2)]


def test_soft_overlong_at_three_lengths():
    # L = 100, C = 20: no penalty up to 80; at 90, (80 - 90) / 20 = -0.5; beyond 100, -1.
    soft = make_reward('soft_overlong', soft_max_length=100, soft_cache_length=20)
    rewards = soft(prompts=['p'] * 3, completions=['x'] * 3, completion_ids=[_ids(80), _ids(90), _ids(120)])
    assert rewards == [0.0, -0.5, -1.0]


def test_soft_overlong_defaults_to_max_completion_length_and_needs_a_cache_length():
    soft = make_reward('soft_overlong', soft_cache_length=10, max_completion_length=50)
    assert soft(prompts=['p'], completions=['x'], completion_ids=[_ids(45)]) == [-0.5]  # (40 - 45) / 10
    with pytest.raises(SwiftError, match='--soft_cache_length'):
        make_reward('soft_overlong', max_completion_length=50)


def test_cosine_follows_the_formula_for_correct_and_wrong_answers():
    cosine = make_reward('cosine', cosine_max_len=100)
    completions = ['\\boxed{1/2}', '\\boxed{3}', '\\boxed{1/2}', '\\boxed{3}', '\\boxed{3}']
    lengths = [25, 50, 0, 100, 300]
    rewards = cosine(prompts=['p'] * 5, completions=completions, solution=['1/2'] * 5,
                     completion_ids=[_ids(n) for n in lengths])
    # value(L) = v_max + (v_0 - v_max) * (1 + cos(pi * min(L, 100) / 100)) / 2, defaults
    # correct: v_0 = 1.0, v_max = 0.5; wrong: v_0 = -0.5, v_max = 0.0.
    correct_at_25 = 0.5 + (1.0 - 0.5) * (1 + math.cos(math.pi * 25 / 100)) / 2  # 0.9268
    wrong_at_50 = 0.0 + (-0.5 - 0.0) * (1 + 0.0) / 2  # cos(pi / 2) = 0
    assert rewards == pytest.approx([correct_at_25, wrong_at_50, 1.0, 0.0, 0.0])


def test_cosine_needs_a_max_length():
    with pytest.raises(SwiftError, match='--cosine_max_len'):
        make_reward('cosine')


def test_lengths_fall_back_to_words_without_token_ids():
    assert completion_lengths(['a b  c\nd', '']) == [4, 0]
    assert completion_lengths(['a b'], completion_ids=[_ids(5)]) == [5]


def test_get_reward_funcs_names_each_reward_and_ignores_foreign_settings():
    names = ['accuracy', 'format', 'cosine', 'repetition', 'soft_overlong']
    rewards = get_reward_funcs(names, max_completion_length=64, soft_cache_length=16, repetition_n_grams=2,
                               learning_rate=1e-6)
    assert [reward.__name__ for reward in rewards] == names  # what trl logs as rewards/<name>/mean


def test_unknown_reward_name_is_a_one_line_swift_error():
    with pytest.raises(SwiftError) as error:
        get_reward_funcs(['format', 'nope'])
    message = str(error.value)
    assert "'nope'" in message and 'accuracy' in message and 'soft_overlong' in message and '\n' not in message


def test_external_plugin_registers_rewards_by_name(tmp_path, registry_snapshot):
    plugin = tmp_path / 'my_rewards.py'
    plugin.write_text(
        'from swift.rlhf.rewards import register_reward\n'
        '\n'
        "@register_reward('short')\n"
        'def short_reward(prompts, completions, **kwargs):\n'
        '    return [1.0 if len(c) < 5 else 0.0 for c in completions]\n'
        '\n'
        "@register_reward('bonus')\n"
        'class Bonus:\n'
        '    def __init__(self, bonus=1.0):\n'
        '        self.bonus = bonus\n'
        '\n'
        '    def __call__(self, prompts, completions, **kwargs):\n'
        '        return [self.bonus] * len(completions)\n')
    import_plugins([str(plugin)])
    short, bonus = get_reward_funcs(['short', 'bonus'], bonus=2.5, soft_cache_length=3)
    assert short.__name__ == 'short' and bonus.__name__ == 'bonus'
    assert short(prompts=['p', 'p'], completions=['hi', 'a long one']) == [1.0, 0.0]
    assert bonus(prompts=['p'], completions=['x']) == [2.5]


def test_external_plugin_errors_name_the_file(tmp_path):
    missing = tmp_path / 'absent.py'
    with pytest.raises(SwiftError, match='not found: .*absent.py'):
        import_plugins([str(missing)])
    broken = tmp_path / 'broken.py'
    broken.write_text('import a_module_that_does_not_exist\n')
    with pytest.raises(SwiftError) as error:
        import_plugins([str(broken)])
    assert 'broken.py' in str(error.value) and 'ModuleNotFoundError' in str(error.value)
    assert '\n' not in str(error.value)
