"""A tiny Qwen3-VL built offline: detected from config.json, encoded as its processor encodes, packed exactly, and
through training, inference and a merged export: the colour toy task learnt with LoRA on the language model only."""
import json
import os

import pytest
import torch
from safetensors import safe_open
from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

from swift.dataset import pack_rows
from swift.infer import PtEngine
from swift.model import get_model_tokenizer
from swift.llm import export_main, sft_main
from swift.protocol import InferRequest, RequestConfig
from swift.template import DataCollator, get_template
from swift.template.base import IGNORE_INDEX
from swift.utils.tiny_models import build_tiny_model

from .helpers import COLOURS, colour_rows, save_squares, square, write_jsonl

QUESTION = 'What colour is the square?'
GREEDY = RequestConfig(max_tokens=5, temperature=0)


@pytest.fixture(scope='module')
def qwen3_vl_dir(tmp_path_factory) -> str:
    return build_tiny_model(str(tmp_path_factory.mktemp('qwen3_vl')), 'qwen3_vl', hidden_size=128)


@pytest.fixture(scope='module')
def loaded(qwen3_vl_dir):
    return get_model_tokenizer(qwen3_vl_dir)


@pytest.fixture(scope='module')
def template(loaded):
    return get_template('qwen3_vl', loaded[1])


def _row(question: str, answer: str, images=(), videos=()) -> dict:
    return {'messages': [{'role': 'user', 'content': question}, {'role': 'assistant', 'content': answer}],
            'images': list(images), 'videos': list(videos)}


def test_family_and_template_come_from_config_json(loaded):
    model, processor = loaded
    assert model.model_meta.model_type == 'qwen3_vl' and model.model_meta.template == 'qwen3_vl'
    assert type(model).__name__ == 'Qwen3VLForConditionalGeneration'
    assert type(processor).__name__ == 'Qwen3VLProcessor'
    assert 'model.visual.deepstack_merger_list' in model.model_meta.parts.aligner


def test_an_image_row_encodes_as_the_processor_does_with_exact_labels(loaded, template):
    _, processor = loaded
    encoded = template.encode(_row(f'<image>{QUESTION}', 'red', images=[square('red')]))
    chat = [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': QUESTION}]},
            {'role': 'assistant', 'content': [{'type': 'text', 'text': 'red'}]}]
    reference = processor(text=[processor.apply_chat_template(chat, tokenize=False)], images=[square('red')],
                          return_tensors='pt')
    assert encoded['input_ids'] == reference['input_ids'][0].tolist()  # no default system prompt, unlike Qwen2-VL
    assert torch.equal(encoded['pixel_values'], reference['pixel_values'])
    trained = [token for token, label in zip(encoded['input_ids'], encoded['labels']) if label != IGNORE_INDEX]
    assert processor.decode(trained) == 'red<|im_end|>'
    assert encoded['mm_token_type_ids'].count(1) == 4  # 56 px -> 64 px: 4x4 patches of 16, merged 2x2


def test_a_video_is_timed_frame_pair_by_frame_pair(loaded, template, monkeypatch):
    monkeypatch.setenv('VIDEO_MAX_PIXELS', str(64 * 64))
    monkeypatch.setenv('VIDEO_MIN_PIXELS', str(64 * 64))
    monkeypatch.setenv('FPS', '2')
    frames = [square(colour) for colour in ('red', 'blue', 'green', 'yellow')]
    encoded = template.encode(_row('In <video>, what follows red?', 'blue', videos=[frames]))
    text = loaded[1].decode(encoded['input_ids'])
    pads = '<|video_pad|>' * 4
    # frames at 0, 0.5, 1, 1.5 s: pairs timed at their middles, as Qwen3-VL's processor writes them
    assert (f'In <0.2 seconds><|vision_start|>{pads}<|vision_end|><1.2 seconds><|vision_start|>{pads}'
            f'<|vision_end|>, what follows red?') in text
    assert encoded['video_grid_thw'].tolist() == [[2, 4, 4]] and 'second_per_grid_ts' not in encoded


def test_packed_and_padding_free_losses_equal_the_padded_loss(loaded, template, monkeypatch):
    monkeypatch.setenv('VIDEO_MAX_PIXELS', str(64 * 64))
    monkeypatch.setenv('VIDEO_MIN_PIXELS', str(64 * 64))
    model, processor = loaded
    rows = [template.encode(row) for row in (
        _row(f'<image>{QUESTION}', 'red', images=[square('red')]),
        _row('In <video>, what follows red?', 'blue', videos=[[square('red'), square('blue'), square('green')]]),
        _row('Which is larger, <image> or <image>?', 'the second', images=[square('blue'), square('green', 112)]),
        _row('Say hi.', 'hi'))]
    collate = DataCollator(processor.pad_token_id, padding_free=True)
    with torch.no_grad():
        padded = model(**DataCollator(processor.pad_token_id)(rows)).loss.item()
        padding_free = model(**collate(rows)).loss.item()
        packed = model(**collate(pack_rows(rows, max_length=1024))).loss.item()
    assert abs(padding_free - padded) < 1e-5 and abs(packed - padded) < 1e-5


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp('colours3')
    names = {colour: f'pics/{name}' for colour, name in save_squares(str(folder / 'pics')).items()}
    write_jsonl(str(folder / 'train.jsonl'), colour_rows(names, repeats=8))
    return str(folder)


@pytest.fixture(scope='module')
def toy_checkpoint(qwen3_vl_dir, data_dir, tmp_path_factory) -> str:
    """The colour toy task: LoRA on all linear layers (the language model's, as in ms-swift), images frozen."""
    result = sft_main(['--model', qwen3_vl_dir, '--dataset', os.path.join(data_dir, 'train.jsonl'),
                       '--train_type', 'lora', '--target_modules', 'all-linear', '--num_train_epochs', '4',
                       '--learning_rate', '2e-3', '--split_dataset_ratio', '0', '--logging_steps', '16',
                       '--save_strategy', 'no', '--dataloader_num_workers', '0', '--report_to', 'none',
                       '--output_dir', str(tmp_path_factory.mktemp('toy3'))])
    return result['last_model_checkpoint']


def _ask(engine: PtEngine) -> list[str]:
    requests = [InferRequest([{'role': 'user', 'content': f'<image>{QUESTION}'}], images=[square(colour)])
                for colour in COLOURS]
    return [response.choices[0].message.content for response in engine.infer(requests, GREEDY)]


def test_lora_learns_the_colours_on_the_language_model_only(qwen3_vl_dir, toy_checkpoint):
    log = [json.loads(line) for line in open(os.path.join(os.path.dirname(toy_checkpoint), 'logging.jsonl'))]
    losses = [record['loss'] for record in log if 'loss' in record]
    assert losses[-1] < losses[0] - 2, losses
    targets = json.load(open(os.path.join(toy_checkpoint, 'adapter_config.json')))['target_modules']
    assert targets and all(name.startswith('model.language_model.') for name in targets)
    with safe_open(os.path.join(toy_checkpoint, 'adapter_model.safetensors'), 'pt') as weights:
        assert weights.keys() and not [key for key in weights.keys() if 'visual' in key]
    engine = PtEngine(qwen3_vl_dir, max_batch_size=4)
    assert _ask(engine) != list(COLOURS)
    engine.add_adapter(toy_checkpoint)
    assert _ask(engine) == list(COLOURS)


def test_merged_export_loads_in_plain_transformers(toy_checkpoint):
    export_main(['--adapters', toy_checkpoint, '--merge_lora', 'true'])
    merged = toy_checkpoint + '-merged'
    assert json.load(open(os.path.join(merged, 'processor_config.json')))['processor_class'] == 'Qwen3VLProcessor'
    model = AutoModelForImageTextToText.from_pretrained(merged)
    image_processor, tokenizer = AutoImageProcessor.from_pretrained(merged), AutoTokenizer.from_pretrained(merged)
    for colour in COLOURS:  # the processor's steps by hand: AutoProcessor also wants torchvision's video processor
        pixels = image_processor(square(colour), return_tensors='pt')
        chat = [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': QUESTION}]}]
        text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        text = text.replace('<|image_pad|>', '<|image_pad|>' * (int(pixels['image_grid_thw'].prod()) // 4))
        ids = tokenizer(text, return_tensors='pt')
        types = (ids['input_ids'] == model.config.image_token_id).long()
        out = model.generate(**ids, **pixels, mm_token_type_ids=types, max_new_tokens=5, do_sample=False)
        assert tokenizer.decode(out[0, ids['input_ids'].shape[1]:], skip_special_tokens=True) == colour


def test_the_mixture_of_experts_model_loads_as_its_own_family(tmp_path):
    """Qwen3-VL-30B-A3B's layout: config model_type qwen3_vl_moe, the same template; a packed batch's loss equals
    the padded one's."""
    model, processor = get_model_tokenizer(build_tiny_model(str(tmp_path), 'qwen3_vl_moe', hidden_size=64))
    assert type(model).__name__ == 'Qwen3VLMoeForConditionalGeneration'
    assert (model.model_meta.model_type, model.model_meta.template) == ('qwen3_vl_moe', 'qwen3_vl')
    template = get_template('qwen3_vl', processor)
    rows = [template.encode(_row(f'<image>{QUESTION}', 'red', images=[square('red')])),
            template.encode(_row('Say hi.', 'hello there'))]
    with torch.no_grad():
        padded = model(**DataCollator(processor.pad_token_id)(rows)).loss.item()
        packed = model(**DataCollator(processor.pad_token_id, padding_free=True)(pack_rows(rows, 512))).loss.item()
    assert abs(packed - padded) < 1e-5
