"""Qwen2-Audio: ChatML, with each audio as ``Audio N: <|audio_bos|>`` + one ``<|AUDIO|>`` per 40 ms of sound +
``<|audio_eos|>`` and a newline, as its chat template and processor write them (ms-swift's ``qwen2_audio``)."""
from dataclasses import replace

import torch

from ...utils import SwiftError, env
from ...utils.media import MediaError, describe, load_audio
from ..registry import register_template
from ..vision import VisionTemplate
from .qwen import CHATML

AUDIO_BOS, AUDIO_EOS, AUDIO_PAD = '<|audio_bos|>', '<|audio_eos|>', '<|AUDIO|>'


class Qwen2AudioTemplate(VisionTemplate):
    media = ('audios',)

    @property
    def token_types(self) -> dict[int, int]:
        return {}  # transformers' mm_token_type_ids know images and video only; Qwen2-Audio does not read them

    @property
    def vision_token_ids(self) -> set[int]:
        return set(self.tokenizer.convert_tokens_to_ids([AUDIO_BOS, AUDIO_EOS, AUDIO_PAD]))

    @property
    def sampling_rate(self) -> int:
        """SAMPLING_RATE, else the feature extractor's own (16000), which is the only rate it accepts."""
        own, asked = self.processor.feature_extractor.sampling_rate, env.audio_sampling_rate()
        if asked is not None and asked != own:
            raise SwiftError(f'SAMPLING_RATE={asked}: the feature extractor of this model takes {own} Hz audio; unset '
                             'it, and audio of any rate is resampled to that')
        return own

    def process_media(self, media: dict[str, list]) -> dict[str, torch.Tensor]:
        if not media['audios']:
            return {}
        rate = self.sampling_rate
        waves = [_decoded(audio, rate) for audio in media['audios']]
        # Padded to the extractor's whole window (30 s for Qwen2-Audio), which its audio tower expects; the mask
        # says how much of it is sound.
        features = self.processor.feature_extractor(waves, sampling_rate=rate, return_attention_mask=True,
                                                    padding='max_length', return_tensors='pt')
        return {'input_features': features['input_features'],
                'feature_attention_mask': features['attention_mask']}

    def expand(self, key: str, index: int, inputs: dict[str, torch.Tensor]) -> str:
        frames = int(inputs['feature_attention_mask'][index].sum())
        count = (((frames - 1) // 2 + 1) - 2) // 2 + 1  # the audio tower's conv stride, then its 2x pooling
        tokens = AUDIO_BOS + AUDIO_PAD * count + AUDIO_EOS + '\n'
        return f'Audio {index + 1}: {tokens}' if self.use_chat_template else tokens


def _decoded(audio, rate: int):
    try:  # rows were checked while loading (the header); the samples can still be damaged
        return load_audio(audio, rate)
    except MediaError as err:
        raise SwiftError(f'audio {describe(audio, "audio")}: {err}') from None


register_template(replace(CHATML, template_type='qwen2_audio', default_system='You are a helpful assistant.'),
                  Qwen2AudioTemplate)
