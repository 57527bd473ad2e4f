"""A tiny model trained in a second to give one fixed answer, so evaluation and sampling have something to find.

The answer, ``\\boxed{1} ANSWER: A``, is read by EvalScope's multiple-choice parser as A and by the accuracy reward
(math_verify) as 1: one model serves the eval and the sample tests.
"""
import torch

ANSWER = '\\boxed{1} ANSWER: A'
PROMPTS = ['What is 1+1?', 'Pick one: A, B, C or D.', '回答下面的单项选择题，请选出其中的正确答案。', 'Say something.',
           'Which option is right?\nA) red\nB) blue', '2+2=?', 'Tell me a joke about cats and dogs.', 'x']


_BUILT: dict[str, str] = {}


def fixed_answer_model(base_dir: str, tmp_path_factory) -> str:
    """The trained model, built once per test session (tests/eval and tests/sample share it)."""
    if base_dir not in _BUILT:
        _BUILT[base_dir] = train_fixed_answer_model(base_dir, str(tmp_path_factory.mktemp('fixed_answer')))
    return _BUILT[base_dir]


def train_fixed_answer_model(base_dir: str, out_dir: str, steps: int = 60) -> str:
    """``base_dir``'s model trained (all weights, Adam) to answer ANSWER after any prompt; saved to ``out_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    ids, labels, mask = _batch([_example(tokenizer, prompt) for prompt in PROMPTS], tokenizer.pad_token_id or 0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def _batch(examples: list, pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, labels (-100 on padding) and attention mask of the examples."""
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id)
    labels = torch.full((len(examples), width), -100)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (row_ids, row_labels) in enumerate(examples):
        ids[i, :len(row_ids)], labels[i, :len(row_ids)], mask[i, :len(row_ids)] = row_ids, row_labels, 1
    return ids, labels, mask


def _example(tokenizer, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
    messages = [{'role': 'user', 'content': prompt}]
    prefix = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(messages + [{'role': 'assistant', 'content': ANSWER}], tokenize=False)
    prefix_len = len(tokenizer(prefix)['input_ids'])
    ids = torch.tensor(tokenizer(full.rstrip('\n'))['input_ids'])
    labels = ids.clone()
    labels[:prefix_len] = -100
    return ids, labels
