"""A tiny Qwen2.5-VL through the real commands: seed 001's sft command, the colour toy task, swift infer, swift
export and swift deploy, each on images drawn with PIL."""
import base64
import glob
import json
import os

import pytest
from safetensors import safe_open
from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

from swift.infer import PtEngine
from swift.protocol import InferRequest, RequestConfig

from ..conftest import run_swift
from ..deploy.support import free_port, running_swift
from ..deploy.test_deploy import _request
from .helpers import COLOURS, colour_rows, save_squares, square, write_jsonl

QUESTION = 'What colour is the square?'
GREEDY = RequestConfig(max_tokens=5, temperature=0)
# Seed 001's command with only the model, the dataset and the step counts changed.
SEED_001 = ['--train_type', 'lora', '--torch_dtype', 'bfloat16', '--num_train_epochs', '1',
            '--per_device_train_batch_size', '1', '--learning_rate', '1e-4', '--lora_rank', '8', '--lora_alpha', '32',
            '--target_modules', 'all-linear', '--freeze_vit', 'true', '--gradient_accumulation_steps', '2',
            '--eval_steps', '2', '--save_steps', '2', '--save_total_limit', '5', '--logging_steps', '1',
            '--max_length', '2048', '--output_dir', 'output', '--warmup_ratio', '0.05', '--dataloader_num_workers', '4']


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory) -> str:
    """PNG squares in pics/ and datasets that name them by relative path."""
    folder = tmp_path_factory.mktemp('colours')
    names = {colour: f'pics/{name}' for colour, name in save_squares(str(folder / 'pics')).items()}
    write_jsonl(str(folder / 'train.jsonl'), colour_rows(names, repeats=8))
    write_jsonl(str(folder / 'seed.jsonl'), colour_rows(names, repeats=2))
    return str(folder)


@pytest.fixture(scope='module')
def toy_checkpoint(qwen2_5_vl_dir, data_dir, tmp_path_factory) -> str:
    """The toy task: 128 steps of LoRA on naming the colour of a filled square."""
    out = str(tmp_path_factory.mktemp('toy'))
    result = run_swift('sft', '--model', qwen2_5_vl_dir, '--dataset', os.path.join(data_dir, 'train.jsonl'),
                       '--train_type', 'lora', '--target_modules', 'all-linear', '--num_train_epochs', '4',
                       '--learning_rate', '2e-3', '--split_dataset_ratio', '0', '--logging_steps', '16',
                       '--save_steps', '1000', '--dataloader_num_workers', '0', '--output_dir', out)
    assert result.returncode == 0, result.stderr[-3000:]
    return glob.glob(os.path.join(out, 'v*', 'checkpoint-128'))[0]


def _picture(data_dir: str, colour: str) -> str:
    return os.path.join(data_dir, 'pics', f'{colour}.png')


def test_seed_001_command_trains_the_language_model_only(qwen2_5_vl_dir, data_dir, tmp_path):
    result = run_swift('sft', '--model', qwen2_5_vl_dir, '--dataset', os.path.join(data_dir, 'seed.jsonl'), *SEED_001,
                       cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = sorted(glob.glob(str(tmp_path / 'output' / 'v*' / 'checkpoint-*')))[-1]
    targets = json.load(open(os.path.join(checkpoint, 'adapter_config.json')))['target_modules']
    assert targets and all(name.startswith('model.language_model.') for name in targets)
    with safe_open(os.path.join(checkpoint, 'adapter_model.safetensors'), 'pt') as weights:
        assert weights.keys() and not [key for key in weights.keys() if 'visual' in key]
    # the processor travels with the checkpoint
    assert {'preprocessor_config.json', 'processor_config.json', 'tokenizer.json'} <= set(os.listdir(checkpoint))


def test_colour_toy_task_loss_falls_and_answers_become_right(qwen2_5_vl_dir, data_dir, toy_checkpoint):
    log = [json.loads(line) for line in open(os.path.join(os.path.dirname(toy_checkpoint), 'logging.jsonl'))]
    losses = [record['loss'] for record in log if 'loss' in record]
    assert losses[-1] < losses[0] - 2
    engine = PtEngine(qwen2_5_vl_dir, max_batch_size=4)
    before = engine.infer([InferRequest([{'role': 'user', 'content': f'<image>{QUESTION}'}],
                                        images=[square(colour)]) for colour in COLOURS], GREEDY)
    assert [r.choices[0].message.content for r in before] != list(COLOURS)
    engine.add_adapter(toy_checkpoint)
    # the Python API, with PIL images, paths and OpenAI content parts in one batch
    requests = [InferRequest([{'role': 'user', 'content': f'<image>{QUESTION}'}], images=[square('red')]),
                InferRequest([{'role': 'user', 'content': QUESTION}], images=[_picture(data_dir, 'green')]),
                InferRequest([{'role': 'user', 'content': [
                    {'type': 'image_url', 'image_url': {'url': _picture(data_dir, 'blue')}},
                    {'type': 'text', 'text': QUESTION}]}]),
                InferRequest([{'role': 'user', 'content': f'<image>{QUESTION}'}], images=[square('yellow')])]
    assert [r.choices[0].message.content for r in engine.infer(requests, GREEDY)] == list(COLOURS)


def test_swift_infer_answers_about_an_image(toy_checkpoint, data_dir):
    chat = f'<img>{_picture(data_dir, "blue")}</img>{QUESTION}\nclear\n<img>{_picture(data_dir, "red")}</img>{QUESTION}\n'
    result = run_swift('infer', '--adapters', toy_checkpoint, '--temperature', '0', '--max_new_tokens', '5',
                       input=chat + 'exit\n')
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count('<<< blue') == 1 and result.stdout.count('<<< red') == 1, result.stdout


def test_swift_infer_answers_a_dataset_of_images(toy_checkpoint, data_dir, tmp_path):
    result_path = str(tmp_path / 'result.jsonl')
    result = run_swift('infer', '--adapters', toy_checkpoint, '--val_dataset', os.path.join(data_dir, 'seed.jsonl'),
                       '--temperature', '0', '--max_new_tokens', '5', '--max_batch_size', '4', '--result_path',
                       result_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in open(result_path)]
    assert len(rows) == 8 and all(row['response'] == row['labels'] for row in rows)
    assert rows[0]['images'] == [_picture(data_dir, rows[0]['labels'])]


def test_merged_export_loads_in_plain_transformers_with_its_processor(toy_checkpoint, data_dir):
    result = run_swift('export', '--adapters', toy_checkpoint, '--merge_lora', 'true')
    assert result.returncode == 0, result.stderr[-3000:]
    merged = toy_checkpoint + '-merged'
    assert json.load(open(os.path.join(merged, 'processor_config.json')))['processor_class'] == 'Qwen2_5_VLProcessor'
    model = AutoModelForImageTextToText.from_pretrained(merged)
    image_processor, tokenizer = AutoImageProcessor.from_pretrained(merged), AutoTokenizer.from_pretrained(merged)
    for colour in COLOURS:  # the processor's steps by hand: AutoProcessor also wants torchvision's video processor
        pixels = image_processor(square(colour), return_tensors='pt')
        text = tokenizer.apply_chat_template([{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text',
                                                                                               'text': QUESTION}]}],
                                             tokenize=False, add_generation_prompt=True)
        text = text.replace('<|image_pad|>', '<|image_pad|>' * (int(pixels['image_grid_thw'].prod()) // 4))
        ids = tokenizer(text, return_tensors='pt')
        types = (ids['input_ids'] == model.config.image_token_id).long()
        out = model.generate(**ids, **pixels, mm_token_type_ids=types, max_new_tokens=5, do_sample=False)
        assert tokenizer.decode(out[0, ids['input_ids'].shape[1]:], skip_special_tokens=True) == colour


def _image_chat(url: str, image_url: str) -> tuple[int, dict]:
    content = [{'type': 'image_url', 'image_url': {'url': image_url}}, {'type': 'text', 'text': QUESTION}]
    status, raw = _request(url, '/v1/chat/completions', {'model': 'toy', 'max_tokens': 5, 'temperature': 0,
                                                         'messages': [{'role': 'user', 'content': content}]})
    return status, json.loads(raw)


def test_deploy_takes_openai_image_url_parts(toy_checkpoint, data_dir, tmp_path):
    port = free_port()
    url = f'http://127.0.0.1:{port}'
    argv = ['deploy', '--adapters', toy_checkpoint, '--served_model_name', 'toy', '--port', str(port)]
    with open(_picture(data_dir, 'green'), 'rb') as f:
        green = 'data:image/png;base64,' + base64.b64encode(f.read()).decode()
    with running_swift(argv, f'{url}/health', str(tmp_path / 'server.log')):
        assert _image_chat(url, green)[1]['choices'][0]['message']['content'] == 'green'
        assert _image_chat(url, _picture(data_dir, 'yellow'))[1]['choices'][0]['message']['content'] == 'yellow'
        status, body = _image_chat(url, 'https://example.com/red.png')
        assert status == 400 and 'https://example.com/red.png' in body['error']['message']
        status, body = _image_chat(url, 'data:image/png;base64,' + base64.b64encode(b'not a png').decode())
        assert status == 400 and 'not a readable image' in body['error']['message']
        assert _image_chat(url, _picture(data_dir, 'red'))[1]['choices'][0]['message']['content'] == 'red'
