"""Make a model trainable: full fine-tuning, or an adapter family of peft (LoRA, DoRA, VeRA, BOFT, ...)."""
from peft import get_peft_model, prepare_model_for_kbit_training
from transformers import PreTrainedModel

from ..utils import get_logger
from .peft_tuners import PEFT_TUNERS, TunerSettings

logger = get_logger()


def prepare_model(model: PreTrainedModel, train_type: str, settings: TunerSettings | None = None,
                  gradient_checkpointing: bool = False) -> PreTrainedModel:
    """Return the model to train: ``model`` itself for ``full``, else a peft model of ``train_type``."""
    if train_type == 'full':
        model.requires_grad_(True)
    else:
        if getattr(model, 'is_quantized', False):
            # Norms to float32 and input grads on, so LoRA trains stably over the frozen 4/8-bit weights.
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
        elif gradient_checkpointing:
            # Frozen embeddings give checkpointed blocks no input that requires grad; this restores the graph.
            model.enable_input_require_grads()
        model = get_peft_model(model, PEFT_TUNERS[train_type](settings or TunerSettings()))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info(f'{train_type}: {trainable:,} trainable parameters of {total:,} ({100 * trainable / total:.2f}%)')
    return model
