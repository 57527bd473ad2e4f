"""DataCollator: a padding-free (or packed) batch must give the same loss and logits as the rows run one by one."""
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from swift.dataset import pack_rows
from swift.template import DataCollator, get_template
from swift.template.collator import block_causal_mask

IGNORE = -100

CONVERSATIONS = [
    [{'role': 'user', 'content': 'hello'}, {'role': 'assistant', 'content': 'I am the model that can help'}],
    [{'role': 'user', 'content': 'what is your name and who train you'}, {'role': 'assistant', 'content': 'swift'},
     {'role': 'user', 'content': 'thanks'}, {'role': 'assistant', 'content': 'yes no and then the data'}],
    [{'role': 'system', 'content': 'be brief'}, {'role': 'user', 'content': '你好'},
     {'role': 'assistant', 'content': '我是一个人工智能助手'}],
]
TEXTS = ['the model can learn', 'hello world what is this data for and why', '你好世界 1234 5678']


@pytest.fixture(scope='module')
def qwen2(qwen2_dir):
    tokenizer = AutoTokenizer.from_pretrained(qwen2_dir)
    model = AutoModelForCausalLM.from_pretrained(qwen2_dir, dtype=torch.float32, attn_implementation='sdpa').eval()
    return model, tokenizer


@pytest.fixture(scope='module')
def chat_rows(qwen2):
    _, tokenizer = qwen2
    template = get_template('qwen', tokenizer)
    rows = [template.encode({'messages': c}) for c in CONVERSATIONS]
    assert len({len(r['input_ids']) for r in rows}) == 3  # three different lengths
    return rows


@pytest.fixture(scope='module')
def text_rows(qwen2):
    """Pre-training rows: every label is set, including each row's first token."""
    _, tokenizer = qwen2
    template = get_template('qwen', tokenizer, use_chat_template=False)
    rows = [template.encode({'messages': [{'role': 'assistant', 'content': t}]}) for t in TEXTS]
    assert len({len(r['input_ids']) for r in rows}) == 3
    return rows


def _alone(model, row):
    """Logits of one row run by itself, and the sum and count of its token losses (labels shifted by one)."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([row['input_ids']])).logits[0]
    labels = torch.tensor(row['labels'])[1:]
    loss_sum = torch.nn.functional.cross_entropy(logits[:-1].double(), labels, ignore_index=IGNORE, reduction='sum')
    return logits, loss_sum.item(), int((labels != IGNORE).sum())


def _reference_loss(model, rows):
    results = [_alone(model, r) for r in rows]
    return sum(r[1] for r in results) / sum(r[2] for r in results)


def _run(model, batch):
    with torch.no_grad():
        return model(**batch)


@pytest.mark.parametrize('kind', ['chat', 'text'])
def test_padding_free_loss_equals_row_by_row_mean(qwen2, chat_rows, text_rows, kind):
    model, tokenizer = qwen2
    rows = chat_rows if kind == 'chat' else text_rows
    batch = DataCollator(pad_token_id=tokenizer.pad_token_id, padding_free=True)(rows)
    total = sum(len(r['input_ids']) for r in rows)
    assert batch['input_ids'].shape == (1, total)
    assert batch['labels'].shape == (1, total)
    assert batch['attention_mask'].shape == (1, 1, total, total)
    loss = _run(model, batch).loss.item()
    assert loss == pytest.approx(_reference_loss(model, rows), rel=1e-5)


def test_padding_free_logits_match_each_row_alone(qwen2, chat_rows):
    model, tokenizer = qwen2
    batch = DataCollator(pad_token_id=tokenizer.pad_token_id, padding_free=True)(chat_rows)
    logits = _run(model, batch).logits[0]
    start = 0
    for row in chat_rows:
        n = len(row['input_ids'])
        alone, _, _ = _alone(model, row)
        torch.testing.assert_close(logits[start:start + n], alone, atol=1e-4, rtol=0)
        start += n


def test_without_the_block_mask_rows_would_leak(qwen2, chat_rows):
    """The check above can fail: with plain causal attention over the concatenation, later rows change."""
    model, tokenizer = qwen2
    batch = DataCollator(pad_token_id=tokenizer.pad_token_id, padding_free=True)(chat_rows)
    with torch.no_grad():
        leaky = model(input_ids=batch['input_ids'], position_ids=batch['position_ids']).logits[0]
    n0 = len(chat_rows[0]['input_ids'])
    second, _, _ = _alone(model, chat_rows[1])
    assert not torch.allclose(leaky[n0:n0 + len(chat_rows[1]['input_ids'])], second, atol=1e-4)


def test_padding_free_batch_layout(qwen2, text_rows):
    _, tokenizer = qwen2
    batch = DataCollator(pad_token_id=tokenizer.pad_token_id, padding_free=True)(text_rows)
    lengths = [len(r['input_ids']) for r in text_rows]
    assert batch['input_ids'][0].tolist() == [t for r in text_rows for t in r['input_ids']]
    assert batch['position_ids'][0].tolist() == [p for n in lengths for p in range(n)]
    # Each row's first label would be predicted from the previous row's last token: it is masked.
    expected_labels = [IGNORE if i == 0 else t for r in text_rows for i, t in enumerate(r['labels'])]
    assert batch['labels'][0].tolist() == expected_labels


def test_block_causal_mask():
    mask = block_causal_mask([2, 3], torch.float32)[0, 0]
    allowed = (mask == 0).int().tolist()
    assert allowed == [[1, 0, 0, 0, 0],
                       [1, 1, 0, 0, 0],
                       [0, 0, 1, 0, 0],
                       [0, 0, 1, 1, 0],
                       [0, 0, 1, 1, 1]]
    assert mask.min().item() == torch.finfo(torch.float32).min


@pytest.mark.parametrize('multiple', [1, 4])
def test_padded_batch_loss_and_logits(qwen2, chat_rows, multiple):
    """Also padded up to a multiple of 4 tokens (LongLoRA): the extra padding changes nothing."""
    model, tokenizer = qwen2
    batch = DataCollator(pad_token_id=tokenizer.pad_token_id, pad_to_multiple_of=multiple)(chat_rows)
    longest = max(len(r['input_ids']) for r in chat_rows)
    longest += -longest % multiple
    assert multiple == 1 or max(len(r['input_ids']) for r in chat_rows) % multiple != 0  # the rows do need padding
    assert batch['input_ids'].shape == batch['labels'].shape == batch['attention_mask'].shape == (3, longest)
    for i, row in enumerate(chat_rows):
        n = len(row['input_ids'])
        assert batch['input_ids'][i, n:].eq(tokenizer.pad_token_id).all()
        assert batch['labels'][i, n:].eq(IGNORE).all()
        assert batch['attention_mask'][i].tolist() == [1] * n + [0] * (longest - n)
    out = _run(model, batch)
    assert out.loss.item() == pytest.approx(_reference_loss(model, chat_rows), rel=1e-5)
    for i, row in enumerate(chat_rows):
        n = len(row['input_ids'])
        alone, _, _ = _alone(model, row)
        torch.testing.assert_close(out.logits[i, :n], alone, atol=1e-4, rtol=0)


@pytest.mark.parametrize('kind', ['chat', 'text'])
def test_packed_rows_collate_like_padding_free(qwen2, chat_rows, text_rows, kind):
    model, tokenizer = qwen2
    rows = chat_rows + text_rows if kind == 'chat' else text_rows
    longest = max(len(r['input_ids']) for r in rows)
    packed = pack_rows(rows, max_length=longest + 12)
    assert len(packed) < len(rows)  # some rows really share a pack
    assert any(len(p['lengths']) > 1 for p in packed)
    batch = DataCollator(pad_token_id=tokenizer.pad_token_id, padding_free=True)(packed)
    lengths = [n for p in packed for n in p['lengths']]
    assert batch['position_ids'][0].tolist() == [i for n in lengths for i in range(n)]
    out = _run(model, batch)
    assert out.loss.item() == pytest.approx(_reference_loss(model, rows), rel=1e-5)
    # Each packed piece gives the logits of its row run alone.
    by_ids = {tuple(r['input_ids']): r for r in rows}
    start = 0
    for n in lengths:
        piece = tuple(batch['input_ids'][0, start:start + n].tolist())
        alone, _, _ = _alone(model, by_ids[piece])
        torch.testing.assert_close(out.logits[0, start:start + n], alone, atol=1e-4, rtol=0)
        start += n
    assert start == sum(len(r['input_ids']) for r in rows)
