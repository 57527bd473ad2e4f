"""KTO on trl's KTOTrainer: unpaired answers, each labelled desirable or not, weighted by
--desirable_weight and --undesirable_weight.

Rows arrive encoded by our template (prompt_ids, completion_ids, label). The KL term is estimated, as ms-swift does,
from mismatched pairs: each prompt with the previous row's answer within a global batch (per-device batch x
gradient accumulation x processes, rows in dataset order), so a per-device batch of 1 trains too (trl refuses it: it
pairs within a per-device batch, where a batch of 1 would pair an answer with its own prompt).
"""
from dataclasses import dataclass, field

import trl

from ..trainers import SwiftTrainerMixin
from .base import AlignmentArguments, Algorithm, keep_trainable_float32, trl_config, use_base_as_reference
from .media import refuse_precomputed_reference, unpaired_collator



@dataclass
class KTOArguments(AlignmentArguments):
    desirable_weight: float = field(default=1.0, metadata={'help': 'KTO: weight of desirable answers.'})
    undesirable_weight: float = field(default=1.0, metadata={'help': 'KTO: weight of undesirable answers.'})


class KTOTrainer(SwiftTrainerMixin, trl.KTOTrainer):

    def __init__(self, *args, ref_adapters: list[str] = (), **kwargs):
        config = kwargs.pop('args')
        per_device = config.per_device_train_batch_size
        # trl refuses a per-device batch of 1 because it pairs within it; we pair within the global batch instead
        # (_prepare_dataset), so let its check see 2 and restore 1 for the data loader.
        config.per_device_train_batch_size = max(per_device, 2)
        self._kl_block = max(per_device * config.gradient_accumulation_steps * config.world_size, 2)
        try:
            super().__init__(*args, args=config, **kwargs)
        finally:
            config.per_device_train_batch_size = per_device
        self._train_batch_size = config.train_batch_size
        use_base_as_reference(self.model, ref_adapters)
        keep_trainable_float32(self.model)

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        if not self.calculate_KL:
            return dataset
        return dataset.map(_with_kl_completions, batched=True, batch_size=self._kl_block)


def _with_kl_completions(batch: dict) -> dict:
    """(x_1, y_n), (x_2, y_1), ...: each prompt paired with another row's answer, for the KL estimate."""
    completions = batch['completion_ids']
    batch['KL_completion_ids'] = completions[-1:] + completions[:-1]
    return batch


def make_trainer(training, settings: KTOArguments, template=None, **kwargs) -> KTOTrainer:
    """``template``: the run's, whose media the batches carry for a multimodal model; None for text."""
    refuse_precomputed_reference(template, settings.precompute_ref_log_probs)
    config = trl_config(trl.KTOConfig, training, beta=settings.beta, loss_type=(settings.loss_type or ['kto'])[0],
                        desirable_weight=settings.desirable_weight, undesirable_weight=settings.undesirable_weight,
                        precompute_ref_log_probs=settings.precompute_ref_log_probs, max_length=None,
                        # The KL pairs are built per global batch in dataset order (the rows were shuffled on loading).
                        train_sampling_strategy='sequential')
    collator = unpaired_collator(template, kwargs['processing_class'].pad_token_id)
    return KTOTrainer(args=config, ref_adapters=settings.ref_adapters, data_collator=collator, **kwargs)


KTO = Algorithm(rows='kto', encoding='completion', make_trainer=make_trainer, arguments=KTOArguments,
                needs=('ref_model', 'template'))
