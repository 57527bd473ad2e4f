"""Make a model trainable: full fine-tuning, or LoRA/DoRA adapters through peft."""
from dataclasses import dataclass, field

from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from transformers import PreTrainedModel

from ..utils import get_logger

logger = get_logger()


@dataclass
class LoraSettings:
    rank: int = 8
    alpha: int = 32
    dropout: float = 0.05
    bias: str = 'none'
    target_modules: list[str] = field(default_factory=lambda: ['all-linear'])
    modules_to_save: list[str] = field(default_factory=list)
    use_dora: bool = False
    use_rslora: bool = False

    def to_peft(self) -> LoraConfig:
        # peft understands 'all-linear' itself and leaves the output head out.
        targets = 'all-linear' if self.target_modules == ['all-linear'] else self.target_modules
        return LoraConfig(task_type='CAUSAL_LM', r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          bias=self.bias, target_modules=targets, modules_to_save=self.modules_to_save or None,
                          use_dora=self.use_dora, use_rslora=self.use_rslora)


def prepare_model(model: PreTrainedModel, train_type: str, lora: LoraSettings | None = None,
                  gradient_checkpointing: bool = False) -> PreTrainedModel:
    """Return the model to train: ``model`` itself for ``full``, a peft model for ``lora``."""
    if train_type == 'full':
        model.requires_grad_(True)
    else:
        if getattr(model, 'is_quantized', False):
            # Norms to float32 and input grads on, so LoRA trains stably over the frozen 4/8-bit weights.
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
        elif gradient_checkpointing:
            # Frozen embeddings give checkpointed blocks no input that requires grad; this restores the graph.
            model.enable_input_require_grads()
        model = get_peft_model(model, (lora or LoraSettings()).to_peft())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info(f'{train_type}: {trainable:,} trainable parameters of {total:,} ({100 * trainable / total:.2f}%)')
    return model
