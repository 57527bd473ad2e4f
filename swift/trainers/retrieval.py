"""The trainer of embedding and reranker models (``swift sft --task_type embedding|reranker|generative_reranker``).

Each batch is the collator's flat list of texts (template/retrieval.py). An embedding model pools and normalises
them (model/retrieval.py) and ``--loss_type`` compares them; a reranker scores each (query, document) text.
Evaluation reports the same loss.
"""
import torch
import torch.nn.functional as F
from transformers import Trainer

from ..model.retrieval import embed, rerank_logits, yes_no_ids
from ..utils.env import infonce_settings, listwise_reranker_settings
from .retrieval_losses import PAIR_LOSSES, infonce_loss, listwise_reranker_loss, pointwise_reranker_loss
from .trainer import SwiftTrainerMixin


def retrieval_loss(task_type: str, loss_type: str, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``--loss_type`` over the embeddings (embedding) or logits (rerankers) of a batch, with its env settings."""
    if loss_type == 'infonce':
        return infonce_loss(outputs, labels, **infonce_settings())
    if loss_type in PAIR_LOSSES:
        return PAIR_LOSSES[loss_type](outputs, labels)
    if loss_type == 'listwise_reranker':
        return listwise_reranker_loss(outputs, labels, **listwise_reranker_settings())
    return pointwise_reranker_loss(outputs, labels)


def matryoshka_loss(loss_type: str, embeddings: torch.Tensor, labels: torch.Tensor,
                    mrl_dims: dict[int, float]) -> torch.Tensor:
    """--mrl_dims: the weighted sum of the loss over each prefix of the dimensions, normalised again."""
    return sum(weight * retrieval_loss('embedding', loss_type, F.normalize(embeddings[:, :dim], dim=-1), labels)
               for dim, weight in mrl_dims.items())


class RetrievalTrainer(SwiftTrainerMixin, Trainer):

    def __init__(self, *args, task_type: str, loss_type: str, mrl_dims: dict[int, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.task_type, self.loss_type, self.mrl_dims = task_type, loss_type, mrl_dims
        self.yes_no = yes_no_ids(self.processing_class) if task_type == 'generative_reranker' else None
        self.model_accepts_loss_kwargs = False  # our loss is a batch mean: gradient accumulation divides it

    def forward_texts(self, model, inputs: dict) -> torch.Tensor:
        """Embeddings ``[texts, dim]`` or relevance logits ``[texts]`` of the batch's texts."""
        if self.task_type == 'embedding':
            return embed(model, inputs['input_ids'], inputs['attention_mask'])
        return rerank_logits(model, self.task_type, inputs['input_ids'], inputs['attention_mask'], self.yes_no)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = self.forward_texts(model, inputs)
        if self.mrl_dims:
            loss = matryoshka_loss(self.loss_type, outputs, inputs['labels'], self.mrl_dims)
        else:
            loss = retrieval_loss(self.task_type, self.loss_type, outputs, inputs['labels'])
        return (loss, {'outputs': outputs}) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Evaluation: the loss only (the batch's texts have no per-row prediction to gather)."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None
