"""``Swift.from_pretrained`` from the seeds' Python API: attach a trained adapter to a base model."""
from peft import PeftModel
from transformers import PreTrainedModel

from .adapter import is_adapter_checkpoint, load_adapters


class Swift:

    @staticmethod
    def from_pretrained(model: PreTrainedModel, checkpoint_dir: str, adapter_name: str = 'default',
                        is_trainable: bool = False) -> PeftModel | PreTrainedModel:
        if is_adapter_checkpoint(checkpoint_dir):  # swift's own bottleneck adapters; peft knows every other kind
            return load_adapters(model, checkpoint_dir, is_trainable)
        return PeftModel.from_pretrained(model, checkpoint_dir, adapter_name=adapter_name, is_trainable=is_trainable)
