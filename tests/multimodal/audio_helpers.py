"""Tones generated with numpy and written by soundfile, for the audio tests: the pitch toy task's rows."""
import io
import os

import numpy as np

QUESTION = 'Is the tone high or low?'
PITCHES = {'low': 300.0, 'high': 2500.0}


def tone(frequency: float, seconds: float = 0.6, rate: int = 22050, amplitude: float = 0.4) -> bytes:
    """A sine tone as WAV bytes; 22050 Hz so that the 16 kHz feature extractor's resampling is exercised."""
    import soundfile
    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    soundfile.write(buffer, amplitude * np.sin(2 * np.pi * frequency * t), rate, format='WAV')
    return buffer.getvalue()


def save_tones(folder: str, count: int, seed: int = 0) -> list[tuple[str, str]]:
    """``count`` tones per pitch of random length, loudness and exact frequency, as (file name, pitch)."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    saved = []
    for i in range(count):
        for pitch, frequency in PITCHES.items():
            name = f'{pitch}{i}.wav'
            with open(os.path.join(folder, name), 'wb') as f:
                f.write(tone(frequency * rng.uniform(0.8, 1.25), rng.uniform(0.3, 0.9), amplitude=rng.uniform(0.2, 0.8)))
            saved.append((name, pitch))
    return saved


def pitch_row(audio, pitch: str) -> dict:
    return {'messages': [{'role': 'user', 'content': f'<audio>{QUESTION}'}, {'role': 'assistant', 'content': pitch}],
            'audios': [audio]}
