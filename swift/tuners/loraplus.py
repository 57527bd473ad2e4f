"""LoRA+ (Hayou et al., 2024): the B matrices learn ``ratio`` times faster than the A matrices."""
import torch
from peft import PeftModel
from peft.optimizers import create_loraplus_optimizer


def loraplus_optimizer(model: PeftModel, ratio: float, lr: float, weight_decay: float,
                       betas: tuple[float, float], eps: float) -> torch.optim.Optimizer:
    """AdamW with peft's LoRA+ parameter groups; the trainer still builds the learning-rate schedule around it."""
    return create_loraplus_optimizer(model, torch.optim.AdamW, lr=lr, loraplus_lr_ratio=ratio,
                                     weight_decay=weight_decay, betas=betas, eps=eps)
