"""A tiny Qwen2-Audio through the real pipeline: the encoding equals its processor's, labels cover the answer
only, LoRA on the language model learns the pitch of a tone (the answers become right), swift infer answers a
dataset of audio rows, the merged export loads in plain transformers with its processor, and swift deploy takes
OpenAI's input_audio parts from the real openai client."""
import base64
import json
import os
import pickle

import pytest
import torch
from safetensors import safe_open
from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration

from swift.dataset import pack_rows
from swift.infer import PtEngine
from swift.llm import export_main, infer_main, sft_main
from swift.pipelines.infer import chat
from swift.pipelines.rlhf import rlhf_main
from swift.model import get_model_tokenizer
from swift.protocol import InferRequest, RequestConfig
from swift.template import get_template
from swift.template.base import IGNORE_INDEX
from swift.template.collator import DataCollator
from swift.tuners import TunerArguments
from swift.tuners.multimodal import apply_freeze_flags
from swift.utils import SwiftError
from swift.utils.media import load_audio
from swift.utils.tiny_audio import build_tiny_audio_model

from ..deploy.support import serving
from .audio_helpers import PITCHES, QUESTION, pitch_row, save_tones, tone
from .helpers import write_jsonl

GREEDY = RequestConfig(max_tokens=3, temperature=0)
# tones the model never heard: other lengths, loudness and frequencies within each pitch's band
UNSEEN = [(pitch, tone(frequency * ratio, seconds, amplitude=loud)) for pitch, frequency in PITCHES.items()
          for ratio, seconds, loud in ((0.85, 0.45, 0.3), (1.2, 0.85, 0.7))]


@pytest.fixture(scope='module')
def audio_model_dir(tmp_path_factory) -> str:
    """Text width 128 (at 64 LoRA cannot lift the random head's flat logits far enough); 'high' and 'low' are
    single tokens of the tiny tokenizer."""
    return build_tiny_audio_model(str(tmp_path_factory.mktemp('qwen2_audio')), hidden_size=128,
                                  extra_texts=['high', 'low', QUESTION] * 20)


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp('tones')
    tones = save_tones(str(folder / 'sounds'), count=8)
    write_jsonl(str(folder / 'train.jsonl'), [pitch_row(f'sounds/{name}', pitch) for name, pitch in tones])
    write_jsonl(str(folder / 'val.jsonl'), [pitch_row(f'sounds/{name}', pitch) for name, pitch in tones[:4]])
    return str(folder)


@pytest.fixture(scope='module')
def toy_checkpoint(audio_model_dir, data_dir, tmp_path_factory) -> str:
    """The pitch toy task: 128 steps of LoRA on 'all-linear' (the language model's, as in ms-swift)."""
    result = sft_main(['--model', audio_model_dir, '--dataset', os.path.join(data_dir, 'train.jsonl'),
                       '--train_type', 'lora', '--target_modules', 'all-linear', '--num_train_epochs', '8',
                       '--learning_rate', '2e-3', '--split_dataset_ratio', '0', '--logging_steps', '16',
                       '--save_strategy', 'no', '--dataloader_num_workers', '0', '--report_to', 'none',
                       '--output_dir', str(tmp_path_factory.mktemp('toy_audio'))])
    return result['last_model_checkpoint']


def test_encoding_equals_the_processor_and_labels_are_the_answer(audio_model_dir):
    model, processor = get_model_tokenizer(audio_model_dir)
    assert model.model_meta.model_type == 'qwen2_audio' and model.model_meta.media == ('audio',)
    template = get_template(model.model_meta.template, processor)
    wav = tone(2500.0, seconds=0.7)
    row = {'messages': [{'role': 'user', 'content': f'<audio>{QUESTION}'}, {'role': 'assistant', 'content': 'high'},
                        {'role': 'user', 'content': 'And <audio>?'}, {'role': 'assistant', 'content': 'low'}],
           'audios': [wav, tone(300.0, seconds=0.4)]}
    encoded = template.encode(row)
    chat = [{'role': 'user', 'content': [{'type': 'audio', 'audio': 'x'}, {'type': 'text', 'text': QUESTION}]},
            {'role': 'assistant', 'content': 'high'},
            {'role': 'user', 'content': [{'type': 'text', 'text': 'And '}, {'type': 'audio', 'audio': 'y'},
                                         {'type': 'text', 'text': '?'}]}, {'role': 'assistant', 'content': 'low'}]
    reference = processor(text=processor.apply_chat_template(chat, tokenize=False),
                          audio=[load_audio(audio, 16000) for audio in row['audios']], sampling_rate=16000,
                          return_tensors='pt')
    assert encoded['input_ids'] == reference['input_ids'][0].tolist()
    assert torch.allclose(encoded['input_features'], reference['input_features'])
    assert torch.equal(encoded['feature_attention_mask'], reference['feature_attention_mask'])
    # exactly the two answers and their end-of-turn tokens carry loss; no audio token ever does
    trained = [token for token, label in zip(encoded['input_ids'], encoded['labels']) if label != IGNORE_INDEX]
    im_end = processor.convert_tokens_to_ids('<|im_end|>')
    assert trained == [*processor.encode('high'), im_end, *processor.encode('low'), im_end]
    assert all(label == IGNORE_INDEX or label == token for token, label in zip(encoded['input_ids'], encoded['labels']))
    audio_tokens = encoded['input_ids'].count(model.config.audio_token_id)
    assert audio_tokens == int(reference['input_ids'].eq(model.config.audio_token_id).sum()) > 10
    assert model(**{key: torch.as_tensor([value]) if isinstance(value, list) else value
                    for key, value in encoded.items()}).loss.isfinite()


def test_parts_are_real_modules_and_the_freeze_flags_apply_to_the_audio_tower(audio_model_dir):
    model, processor = get_model_tokenizer(audio_model_dir)
    assert type(processor).__name__ == 'Qwen2AudioProcessor' and processor.pad_token_id is not None
    assert pickle.loads(pickle.dumps(processor)).audio_token == '<|AUDIO|>'
    parts, modules = model.model_meta.parts, dict(model.named_modules())
    assert all(name in modules for name in parts.language_model + parts.aligner + parts.vision_tower)
    # as ms-swift: the defaults adapt the language model alone; --freeze_vit false adds the audio tower's layers,
    # --freeze_aligner false the projector
    targets = apply_freeze_flags(model, 'lora', TunerArguments(target_modules=['all-linear'])).target_modules
    assert targets and all(name.startswith('model.language_model.') for name in targets)
    opened = apply_freeze_flags(model, 'lora', TunerArguments(target_modules=['all-linear'], freeze_vit=False,
                                                              freeze_aligner=False)).target_modules
    assert {name.split('.')[1] for name in opened} == {'language_model', 'audio_tower', 'multi_modal_projector'}


def test_pretraining_rows_keep_the_audio_tokens_out_of_the_loss(audio_model_dir):
    _, processor = get_model_tokenizer(audio_model_dir)
    template = get_template('qwen2_audio', processor, use_chat_template=False)
    encoded = template.encode({'messages': [{'role': 'assistant', 'content': '<audio>a low tone'}],
                               'audios': [tone(300.0)]})
    text = processor.decode(encoded['input_ids'])
    assert text.startswith('<|audio_bos|><|AUDIO|>') and text.endswith('<|audio_eos|>\na low tone<|im_end|>')
    trained = [token for token, label in zip(encoded['input_ids'], encoded['labels']) if label != IGNORE_INDEX]
    assert processor.decode(trained) == '\na low tone<|im_end|>'


def test_packed_and_padding_free_audio_rows_give_the_padded_loss(audio_model_dir):
    model, processor = get_model_tokenizer(audio_model_dir)
    template = get_template('qwen2_audio', processor)
    rows = [template.encode(pitch_row(tone(frequency, seconds), pitch))
            for frequency, seconds, pitch in ((300.0, 0.4, 'low'), (2500.0, 0.9, 'high'), (400.0, 0.6, 'low'))]
    rows.append(template.encode({'messages': [{'role': 'user', 'content': 'Say hi.'},
                                              {'role': 'assistant', 'content': 'hi'}]}))
    collate = DataCollator(processor.pad_token_id, padding_free=True)
    with torch.no_grad():
        padded = model(**DataCollator(processor.pad_token_id)(rows)).loss.item()
        padding_free = model(**collate(rows)).loss.item()
        packed = model(**collate(pack_rows(rows, max_length=1024))).loss.item()
    assert abs(padding_free - padded) < 1e-5 and abs(packed - padded) < 1e-5


def test_dpo_on_audio_rows_learns_with_the_reference_hearing_the_same_audio(audio_model_dir, data_dir, tmp_path):
    rows = [json.loads(line) for line in open(os.path.join(data_dir, 'train.jsonl'))][:8]
    for row in rows:  # a preference the tiny model learns in a few steps: a sentence over a bare word
        row['messages'][-1]['content'] = f"It is {row['messages'][-1]['content']}."
        row['rejected_response'] = 'no'
        row['audios'] = [os.path.join(data_dir, row['audios'][0])]
    result = rlhf_main(['--rlhf_type', 'dpo', '--model', audio_model_dir, '--dataset',
                        write_jsonl(str(tmp_path / 'pairs.jsonl'), rows), '--learning_rate', '1e-2', '--max_steps',
                        '6', '--per_device_train_batch_size', '2', '--train_type', 'lora', '--target_modules',
                        'all-linear', '--split_dataset_ratio', '0', '--logging_steps', '1', '--save_strategy', 'no',
                        '--report_to', 'none', '--dataloader_num_workers', '0', '--output_dir', str(tmp_path)])
    history = [record for record in result['log_history'] if 'loss' in record and 'rewards/margins' in record]
    # step 1: the adapter is zero, so the policy equals the reference: both read the same audio features
    assert history[0]['rewards/margins'] == 0 and history[0]['rewards/chosen'] == 0
    assert history[-1]['loss'] < history[0]['loss'] - 0.2, [record['loss'] for record in history]


def test_sampling_rate_other_than_the_extractor_s_says_so(audio_model_dir, monkeypatch):
    _, processor = get_model_tokenizer(audio_model_dir, model_type='qwen2_audio')
    monkeypatch.setenv('SAMPLING_RATE', '8000')
    with pytest.raises(SwiftError, match='SAMPLING_RATE=8000: the feature extractor of this model takes 16000 Hz'):
        get_template('qwen2_audio', processor).encode(pitch_row(tone(300.0), 'low'))


def _ask(engine: PtEngine) -> list[str]:
    requests = [InferRequest([{'role': 'user', 'content': f'<audio>{QUESTION}'}], audios=[wav]) for _, wav in UNSEEN]
    return [response.choices[0].message.content for response in engine.infer(requests, GREEDY)]


def test_lora_learns_the_pitch_on_the_language_model_only(audio_model_dir, toy_checkpoint):
    log = [json.loads(line) for line in open(os.path.join(os.path.dirname(toy_checkpoint), 'logging.jsonl'))]
    losses = [record['loss'] for record in log if 'loss' in record]
    assert losses[-1] < losses[0] - 2, losses
    targets = json.load(open(os.path.join(toy_checkpoint, 'adapter_config.json')))['target_modules']
    assert targets and all(name.startswith('model.language_model.') for name in targets)
    with safe_open(os.path.join(toy_checkpoint, 'adapter_model.safetensors'), 'pt') as weights:
        assert weights.keys() and not [key for key in weights.keys() if 'audio_tower' in key or 'projector' in key]
    engine = PtEngine(audio_model_dir, max_batch_size=4)
    expected = [pitch for pitch, _ in UNSEEN]
    assert _ask(engine) != expected
    engine.add_adapter(toy_checkpoint)
    assert _ask(engine) == expected


def test_swift_infer_answers_a_dataset_of_audio_rows(toy_checkpoint, data_dir, tmp_path):
    results = infer_main(['--adapters', toy_checkpoint, '--val_dataset', os.path.join(data_dir, 'val.jsonl'),
                          '--temperature', '0', '--max_new_tokens', '3', '--result_path', str(tmp_path / 'out.jsonl')])
    assert [r['response'] for r in results] == [r['labels'] for r in results] == ['low', 'high'] * 2
    assert all(os.path.isabs(r['audios'][0]) for r in results)


@pytest.fixture(scope='module')
def merged(toy_checkpoint) -> str:
    export_main(['--adapters', toy_checkpoint, '--merge_lora', 'true'])
    return toy_checkpoint + '-merged'


def test_merged_export_loads_in_plain_transformers(merged):
    assert json.load(open(os.path.join(merged, 'processor_config.json')))['processor_class'] == 'Qwen2AudioProcessor'
    model = Qwen2AudioForConditionalGeneration.from_pretrained(merged)
    processor = AutoProcessor.from_pretrained(merged)
    for pitch, wav in UNSEEN:
        chat = [{'role': 'user', 'content': [{'type': 'audio', 'audio': 'x'}, {'type': 'text', 'text': QUESTION}]}]
        text = processor.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        inputs = processor(text=text, audio=[load_audio(wav, 16000)], sampling_rate=16000, return_tensors='pt')
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
        assert processor.decode(out[0, inputs['input_ids'].shape[1]:], skip_special_tokens=True) == pitch


def test_terminal_chat_asks_for_each_audio_as_ms_swift_does(merged, tmp_path, monkeypatch, capsys):
    for name, (_, wav) in zip(('low', 'high'), UNSEEN[::2]):
        (tmp_path / f'{name}.wav').write_bytes(wav)
    lines = iter([f'<audio>{QUESTION}', str(tmp_path / 'low.wav'), 'clear',
                  f'<audio>{QUESTION}', str(tmp_path / 'missing.wav'),  # an error line; the chat goes on
                  f'<audio>{QUESTION}', str(tmp_path / 'high.wav')])
    prompts = []

    def fake_input(prompt: str = '') -> str:
        prompts.append(prompt)
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr('builtins.input', fake_input)
    chat(PtEngine(merged), RequestConfig(max_tokens=3, temperature=0))
    out = capsys.readouterr().out.splitlines()
    assert prompts.count('Input an audio path or URL <<< ') == 3
    assert out[1:] == ['low', out[2], 'high', ''] and 'missing.wav' in out[2] and out[2].startswith('[ERROR]')


def test_deploy_takes_openai_input_audio_parts(merged):
    from openai import BadRequestError, OpenAI
    from swift.infer.server import create_app
    with serving(create_app(PtEngine(merged, max_batch_size=4), 'toy', [])) as url:
        client = OpenAI(api_key='EMPTY', base_url=f'{url}/v1')

        def ask(data: bytes) -> str:
            content = [{'type': 'input_audio', 'input_audio': {'data': base64.b64encode(data).decode(), 'format': 'wav'}},
                       {'type': 'text', 'text': QUESTION}]
            response = client.chat.completions.create(model='toy', messages=[{'role': 'user', 'content': content}],
                                                      max_tokens=3, temperature=0)
            return response.choices[0].message.content

        assert [ask(wav) for _, wav in UNSEEN[::2]] == ['low', 'high']
        with pytest.raises(BadRequestError, match='not a readable audio file'):
            ask(b'RIFF' + b'not a wav' * 10)
        assert ask(UNSEEN[1][1]) == 'low'  # still serving
