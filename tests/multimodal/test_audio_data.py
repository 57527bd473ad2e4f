"""The audios column: every form an audio can take, its decoding and resampling, and the file:line errors of bad
rows."""
import base64

import numpy as np
import pytest

from swift.dataset import load_rows, normalize_row
from swift.utils import SwiftError
from swift.utils.media import load_audio

from .audio_helpers import pitch_row, tone
from .helpers import write_jsonl


@pytest.fixture
def sounds(tmp_path):
    (tmp_path / 'sounds').mkdir()
    (tmp_path / 'sounds' / 'a.wav').write_bytes(tone(440.0))
    (tmp_path / 'sounds' / 'broken.wav').write_bytes(b'RIFF' + b'garbage' * 10)
    return tmp_path


def _load(folder, rows, **kwargs):
    return load_rows([write_jsonl(str(folder / 'data.jsonl'), rows)], **kwargs)


def test_every_form_of_an_audio_decodes_resampled(sounds, monkeypatch):
    monkeypatch.chdir('/')
    data = tone(440.0, seconds=0.5, rate=22050)
    b64 = base64.b64encode(data).decode()
    row, = _load(sounds, [pitch_row('sounds/a.wav', 'low')]).rows
    assert row['audios'] == [str(sounds / 'sounds' / 'a.wav')]
    assert row['messages'][0]['content'] == '<audio>Is the tone high or low?'
    parts = [{'type': 'input_audio', 'input_audio': {'data': b64, 'format': 'wav'}}, {'type': 'text', 'text': 'Hi'}]
    for audio, content in ((b64, None), (f'data:audio/wav;base64,{b64}', None), (data, None),
                           ({'bytes': data, 'path': 'x.wav'}, None), (None, parts)):
        row = (normalize_row({'messages': [{'role': 'user', 'content': content}, {'role': 'assistant', 'content': 'x'}]})
               if content else normalize_row(pitch_row(audio, 'low')))
        wave = load_audio(row['audios'][0], 16000)
        assert wave.dtype == np.float32 and wave.ndim == 1 and len(wave) == 8000  # 0.5 s at 16 kHz
        # the tone's pitch survives resampling: its strongest frequency is still 440 Hz
        assert abs(np.argmax(np.abs(np.fft.rfft(wave))) * 16000 / len(wave) - 440) < 4
    assert normalize_row({'messages': [{'role': 'user', 'content': parts}]})['messages'][0]['content'] == '<audio>Hi'


@pytest.mark.parametrize('audio, reason', [
    ('sounds/missing.wav', "audios[0] 'sounds/missing.wav': no such file"),
    ('sounds/broken.wav', "broken.wav': not a readable audio file (Format not recognised"),
    (['sounds/a.wav', 'sounds/a.wav'], '1 <audio> placeholder but 2 audios'),
    ('https://example.com/a.wav', 'cannot fetch https://example.com/a.wav: HF_HUB_OFFLINE=1'),
])
def test_bad_rows_name_file_line_and_reason(sounds, audio, reason):
    good, bad = pitch_row('sounds/a.wav', 'low'), pitch_row('', 'low')
    bad['audios'] = audio if isinstance(audio, list) else [audio]
    with pytest.raises(SwiftError) as err:
        _load(sounds, [good, bad])
    message = str(err.value)
    assert message.startswith(f"{sounds / 'data.jsonl'}:2: ") and reason in message and '\n' not in message
    loaded = _load(sounds, [good, bad, good], strict=False)
    assert (len(loaded.rows), loaded.skipped) == (2, 1)
