"""Packed and padding-free batches of image rows give the loss of the padded batch: each sequence keeps its own
3-D (M-RoPE) positions and attends only to itself."""
import torch

from swift.dataset import pack_rows
from swift.model import get_model_tokenizer
from swift.template import DataCollator, get_template

from .helpers import square


def _rows(template):
    questions = [('<image>What colour is the square?', 'red', [square('red', 56)], []),
                 ('Which is larger, <image> or <image>?', 'the second', [square('blue', 56), square('green', 112)], []),
                 ('Say hi.', 'hi', [], []),
                 ('In <video>, what follows red?', 'blue', [], [[square('red'), square('blue'), square('green')]])]
    return [template.encode({'messages': [{'role': 'user', 'content': q}, {'role': 'assistant', 'content': a}],
                             'images': images, 'videos': videos}) for q, a, images, videos in questions]


def _loss(model, batch) -> float:
    with torch.no_grad():
        return model(**batch).loss.item()


def test_packed_and_padding_free_losses_equal_the_padded_loss(qwen2_5_vl_dir, monkeypatch):
    monkeypatch.setenv('VIDEO_MAX_PIXELS', str(56 * 56))
    monkeypatch.setenv('VIDEO_MIN_PIXELS', str(56 * 56))
    model, processor = get_model_tokenizer(qwen2_5_vl_dir)
    rows = _rows(get_template('qwen2_5_vl', processor))
    padded = _loss(model, DataCollator(processor.pad_token_id)(rows))
    padding_free = _loss(model, DataCollator(processor.pad_token_id, padding_free=True)(rows))
    packed, = pack_rows(rows, max_length=512)
    packed_loss = _loss(model, DataCollator(processor.pad_token_id, padding_free=True)([packed]))
    assert abs(padding_free - padded) < 1e-5 and abs(packed_loss - padded) < 1e-5
    # the 3-D positions matter: 1-D ones (no token types to find the images by) give another loss
    batch = DataCollator(processor.pad_token_id, padding_free=True)(rows)
    del batch['mm_token_type_ids']
    assert abs(_loss(model, batch) - padded) > 1e-4
