"""Qwen2-Audio: a Whisper-style audio tower and a projector in front of a Qwen2 language model. Each audio is read
as log-mel features (the model's WhisperFeatureExtractor) padded to its 30 s window; the audio tower's output
replaces one ``<|AUDIO|>`` token per 40 ms of real sound."""
from transformers import (AutoFeatureExtractor, PreTrainedTokenizerBase, Qwen2AudioForConditionalGeneration,
                          Qwen2AudioProcessor)

from ..processor import _SwiftProcessor
from ..registry import ModelMeta, ModelParts, register_model

# transformers 5 names (ms-swift's MultiModelKeys for qwen2_audio, under model.): the audio tower stands where a
# vision tower would, so --freeze_vit and --vit_lr apply to it, as in ms-swift.
QWEN2_AUDIO_PARTS = ModelParts(language_model=('model.language_model', 'lm_head'),
                               aligner=('model.multi_modal_projector',), vision_tower=('model.audio_tower',))


class SwiftQwen2AudioProcessor(_SwiftProcessor, Qwen2AudioProcessor):
    """transformers' processor, answering the tokenizer's attributes too; saved as a Qwen2AudioProcessor."""


SwiftQwen2AudioProcessor.__name__ = Qwen2AudioProcessor.__name__  # processor_class in processor_config.json


def load_audio_processor(model_dir: str, tokenizer: PreTrainedTokenizerBase) -> Qwen2AudioProcessor:
    """The feature extractor saved in ``model_dir`` (preprocessor_config.json or processor_config.json) with the
    tokenizer."""
    return SwiftQwen2AudioProcessor(AutoFeatureExtractor.from_pretrained(model_dir), tokenizer,
                                    chat_template=tokenizer.chat_template)


class SwiftQwen2AudioForConditionalGeneration(Qwen2AudioForConditionalGeneration):
    """transformers' model, which also trains on packed rows; ``generate`` also takes the ``mm_token_type_ids`` that
    swift's batches of media rows carry (M-RoPE models read them; Qwen2-Audio has 1-D positions, and generate
    refuses keys it does not use). Saved as a Qwen2AudioForConditionalGeneration."""

    def forward(self, input_ids=None, input_features=None, attention_mask=None, feature_attention_mask=None,
                labels=None, **kwargs):
        inputs = dict(input_ids=input_ids, input_features=input_features, attention_mask=attention_mask,
                      feature_attention_mask=feature_attention_mask, **kwargs)  # names generate() checks against
        if labels is None or attention_mask is None or attention_mask.dim() == 2:
            return super().forward(**inputs, labels=labels)
        # Packed and padding-free rows come with a 4-D block mask, which transformers' loss here would index the
        # logits with: the language model takes it, the loss is the causal-LM loss over the labels.
        output = super().forward(**inputs)
        output.loss = self.loss_function(output.logits, labels, vocab_size=output.logits.shape[-1])
        return output

    def generate(self, *args, mm_token_type_ids=None, **kwargs):
        return super().generate(*args, **kwargs)

    @classmethod
    def is_custom_code(cls) -> bool:
        return False  # transformers' own layout, so its checkpoint key renames (legacy names) apply on load and save


SwiftQwen2AudioForConditionalGeneration.__name__ = Qwen2AudioForConditionalGeneration.__name__  # config.architectures


register_model(ModelMeta('qwen2_audio', config_model_types=['qwen2_audio'],
                         architectures=['Qwen2AudioForConditionalGeneration'], template='qwen2_audio',
                         media=('audio',), parts=QWEN2_AUDIO_PARTS, model_class=SwiftQwen2AudioForConditionalGeneration,
                         load_processor=load_audio_processor))
