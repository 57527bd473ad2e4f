"""DPO on trl's DPOTrainer: its losses (sigmoid, hinge, ipo, robust, ...), reference handling and metrics.

Rows arrive encoded by our template (prompt_ids, chosen_ids, rejected_ids), so trl's own tokenization is skipped.
With LoRA the reference is the base model with the adapter disabled; with full training, a frozen copy.
"""
from dataclasses import dataclass, field
from typing import Optional

import trl
from accelerate.utils import is_peft_model

from ..trainers import SwiftTrainerMixin
from ..utils import get_logger
from .base import AlignmentArguments, Algorithm, keep_trainable_float32, trl_config, use_base_as_reference
from .media import preference_collator, refuse_precomputed_reference
from .shared_prompt import share_prompt_forward

logger = get_logger()


@dataclass
class DPOArguments(AlignmentArguments):
    rpo_alpha: Optional[float] = field(
        default=None, metadata={'help': 'DPO: add this times the NLL of the chosen answer (RPO).'})
    label_smoothing: float = field(default=0.0, metadata={'help': 'DPO: assumed probability of flipped labels.'})
    ld_alpha: Optional[float] = field(
        default=None, metadata={'help': 'LD-DPO: weight of the answer tokens past the shorter answer\'s length in '
                                        'the log-probabilities (unset: plain sums).'})
    discopop_tau: float = field(
        default=0.05, metadata={'help': 'DPO --loss_type discopop: temperature of its log-ratio modulation.'})


class DPOTrainer(SwiftTrainerMixin, trl.DPOTrainer):
    """``share_prompt``: each pair's chosen and rejected answers share one forward of their prompt
    (rlhf/shared_prompt.py); False runs trl's two full rows per pair."""

    def __init__(self, *args, ref_adapters: list[str] = (), share_prompt: bool = True, **kwargs):
        self.share_prompt, self.prompt_shared = share_prompt, False
        super().__init__(*args, **kwargs)
        self._share_prompt()
        use_base_as_reference(self.model, ref_adapters)
        keep_trainable_float32(self.model)

    def _prepare_dataset(self, dataset, *args, **kwargs):
        return dataset  # encoded by our template already

    def _precompute_ref_logps(self, *args, **kwargs):
        self._share_prompt()  # trl precomputes inside its __init__, once the fused LM heads are in place
        return super()._precompute_ref_logps(*args, **kwargs)

    def _share_prompt(self) -> None:
        """Put the packed pair forward over the fused LM heads trl added (the same outputs it asked for)."""
        if not self.share_prompt or self.prompt_shared:
            return
        self.prompt_shared = True
        outputs = ('log_probs', 'entropy', 'mean_logits', 'is_top1') + (
            ('log_sum_sq_probs',) if self.use_weighting else ())
        model = self.model.get_base_model() if is_peft_model(self.model) else self.model
        if not share_prompt_forward(model, outputs):
            logger.info('DPO: this model runs chosen and rejected rows in full (its attention or logits '
                             'rule out the shared-prompt forward)')
        if self.ref_model is not None:
            share_prompt_forward(self.ref_model, ('log_probs',))


def dpo_losses(settings: DPOArguments) -> tuple[list[str], list[float]]:
    """--loss_type and --loss_weights, with RPO's SFT term and label smoothing folded in."""
    loss_type = list(settings.loss_type or ['sigmoid'])
    weights = list(settings.loss_weights or [1.0] * len(loss_type))
    if settings.label_smoothing and 'sigmoid' in loss_type:
        # trl 1.x's sigmoid loss has no smoothing; 'robust' is its label-smoothed (unbiased conservative) DPO.
        logger.warning(f'--label_smoothing {settings.label_smoothing}: using --loss_type robust, the '
                       'label-smoothed form of the sigmoid loss')
        loss_type = ['robust' if name == 'sigmoid' else name for name in loss_type]
    if settings.rpo_alpha:
        loss_type.append('sft')
        weights.append(settings.rpo_alpha)
    return loss_type, weights


def make_trainer(training, settings: DPOArguments, template=None, **kwargs) -> DPOTrainer:
    """``template``: the run's, whose media the batches carry for a multimodal model; None for text."""
    refuse_precomputed_reference(template, settings.precompute_ref_log_probs)
    loss_type, loss_weights = dpo_losses(settings)
    config = trl_config(trl.DPOConfig, training, beta=settings.beta, loss_type=loss_type, loss_weights=loss_weights,
                        label_smoothing=settings.label_smoothing, ld_alpha=settings.ld_alpha,
                        discopop_tau=settings.discopop_tau,
                        precompute_ref_log_probs=settings.precompute_ref_log_probs,
                        max_length=None, padding_free=False)  # the template truncated already
    collator = preference_collator(template, kwargs['processing_class'].pad_token_id)
    return DPOTrainer(args=config, ref_adapters=settings.ref_adapters, data_collator=collator, **kwargs)


DPO = Algorithm(rows='pair', encoding='pair', make_trainer=make_trainer, arguments=DPOArguments, needs=('ref_model', 'template'))
