"""``Swift.from_pretrained`` from the seeds' Python API: attach a trained adapter to a base model."""
from peft import PeftModel
from transformers import PreTrainedModel

from . import adapter, reft

# swift's own tuners, by the swift_type of their adapter_config.json; peft knows every other kind.
LOADERS = {adapter.SWIFT_TYPE: adapter.load_adapters, reft.SWIFT_TYPE: reft.load_interventions}


class Swift:

    @staticmethod
    def from_pretrained(model: PreTrainedModel, checkpoint_dir: str, adapter_name: str = 'default',
                        is_trainable: bool = False) -> PeftModel | PreTrainedModel:
        swift_type = adapter.swift_config(checkpoint_dir).get('swift_type')
        if swift_type in LOADERS:
            return LOADERS[swift_type](model, checkpoint_dir, is_trainable)
        return PeftModel.from_pretrained(model, checkpoint_dir, adapter_name=adapter_name, is_trainable=is_trainable)
