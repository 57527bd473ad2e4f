"""Tuners that act during training, as Trainer callbacks: AdaLoRA's rank budget and LISA's layer sampling."""
import random

from transformers import PreTrainedModel, TrainerCallback

from ..utils import SwiftError, get_logger
from .arguments import TunerArguments
from .layers import decoder_layers
from .multimodal import VisionCheckpointingCallback

logger = get_logger()


class AdaLoraCallback(TrainerCallback):
    """AdaLoRA prunes ranks by importance: peft needs the real step count and ``update_and_allocate`` after every
    optimizer step, while the gradients still exist."""

    def __init__(self, model):
        self.tuner = model.base_model

    def on_train_begin(self, args, state, control, **kwargs):
        config = self.tuner.peft_config[self.tuner.trainable_adapter_name]
        if config.tinit >= state.max_steps - config.tfinal:
            raise SwiftError(f'--adalora_tinit {config.tinit} + --adalora_tfinal {config.tfinal} must be below the '
                             f'{state.max_steps} training steps')
        self.tuner.rankallocator.set_total_step(state.max_steps)
        config.total_step = state.max_steps

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.tuner.update_and_allocate(state.global_step)


class LisaCallback(TrainerCallback):
    """LISA (Pan et al., 2024): full training where only ``num_layers`` random decoder layers (plus everything
    outside the layer stack: embeddings, norm, head) learn, resampled every ``interval`` steps. Frozen layers keep no
    gradients, so their optimizer state is never created."""

    def __init__(self, model: PreTrainedModel, num_layers: int, interval: int, seed: int = 42):
        parent, attr = decoder_layers(model)
        self.layers = getattr(parent, attr)
        if not 0 < num_layers <= len(self.layers):
            raise SwiftError(f'--lisa_activated_layers must be in [1, {len(self.layers)}], got {num_layers}')
        self.num_layers, self.interval = num_layers, interval
        self.rng = random.Random(seed)
        self.active: list[int] = []

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step % self.interval == 0:
            self.active = sorted(self.rng.sample(range(len(self.layers)), self.num_layers))
            for i, layer in enumerate(self.layers):
                layer.requires_grad_(i in self.active)
            logger.debug(f'LISA: training layers {self.active}')


def tuner_callbacks(model, train_type: str, settings: TunerArguments, seed: int = 42) -> list[TrainerCallback]:
    """The callbacks ``train_type`` and ``settings`` need; add them to the Trainer's."""
    callbacks = []
    if train_type == 'adalora':
        callbacks.append(AdaLoraCallback(model))
    if settings.vit_gradient_checkpointing is not None:
        callbacks.append(VisionCheckpointingCallback(model, settings.vit_gradient_checkpointing))
    if settings.lisa_activated_layers:
        callbacks.append(LisaCallback(model, settings.lisa_activated_layers, settings.lisa_step_interval, seed))
    return callbacks
