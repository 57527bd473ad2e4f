"""LongLoRA (Chen et al., 2023): LoRA that also trains the embeddings and the norms, and that trains with shifted
sparse attention (S²-Attn): each sequence is cut into groups of a quarter of its length, every head attends only
inside its group, and half of the heads see the groups shifted by half a group so information crosses group borders.
Inference keeps full attention (the paper's design), so the checkpoint is a plain peft LoRA with ``modules_to_save``:
``swift infer --adapters`` and ``swift export --merge_lora true`` use it as they use any LoRA."""
from dataclasses import replace
from typing import Callable

import torch
import torch.nn.functional as F
from peft import PeftModel, get_peft_model
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from .arguments import TunerArguments
from .multimodal import frozen_parts
from .peft_tuners import PEFT_TUNERS

# ms-swift and the paper: groups of a quarter of the sequence (training batches are padded to a multiple of it).
GROUPS = 4
# The name under which transformers dispatches to S²-Attn; it builds sdpa's masks.
S2_ATTENTION = 'longlora_s2_sdpa'


def prepare_longlora(model: PreTrainedModel, settings: TunerArguments) -> PeftModel:
    """LoRA on ``settings``' targets, the embeddings and every norm trained fully, S²-Attn while training."""
    trained = sorted(set(settings.modules_to_save) | _embedding_and_norm_names(model, frozen_parts(model, settings)))
    config = PEFT_TUNERS['lora'](replace(settings, modules_to_save=trained), 'causal_lm')
    # With tied embeddings the output head must follow the trained embedding copy, or a merged model (which ties
    # them again on load) would differ from the trained one.
    head = model.get_output_embeddings()
    config.ensure_weight_tying = head is not None and head.weight is model.get_input_embeddings().weight
    AttentionInterface.register(S2_ATTENTION, s2_attention)
    AttentionMaskInterface.register(S2_ATTENTION, sdpa_mask)
    model.set_attn_implementation(S2_ATTENTION)
    return get_peft_model(model, config)


def _embedding_and_norm_names(model: PreTrainedModel, frozen: Callable[[str], bool]) -> set[str]:
    """Full names of the input embedding and of every normalisation layer outside the parts --freeze_vit and
    --freeze_aligner keep frozen (a text model has none); peft matches them as name endings."""
    embedding = model.get_input_embeddings()
    return {name for name, module in model.named_modules()
            if (module is embedding or 'norm' in type(module).__name__.lower()) and not frozen(name)}


def s2_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                 **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' attention signature: (batch, heads, length, head_dim) in, (batch, length, heads, head_dim)
    out. S²-Attn while training on a length the groups divide; sdpa's full attention otherwise (eval, decoding)."""
    length = query.shape[2]
    group = length // GROUPS
    # A vision tower's attention is bidirectional (is_causal False): S²-Attn is for the causal language model only.
    causal = kwargs.get('is_causal', getattr(module, 'is_causal', True))
    if not module.training or not causal or group < 2 or length % group or key.shape[2] != length:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    if key.shape[1] % 2:  # the shifted half of the query heads must map onto the shifted half of the kv heads
        key, value = (repeat_kv(x, query.shape[1] // key.shape[1]) for x in (key, value))
    positions = torch.arange(length, device=query.device)
    half_q, half_kv = query.shape[1] // 2, key.shape[1] // 2
    plain = _grouped_attention(query[:, :half_q], key[:, :half_kv], value[:, :half_kv], attention_mask,
                               positions.view(-1, group), dropout, scaling)
    shifted = _grouped_attention(query[:, half_q:], key[:, half_kv:], value[:, half_kv:], attention_mask,
                                 positions.roll(-(group // 2)).view(-1, group), dropout, scaling)
    return torch.cat([plain, shifted], dim=2), None


def _grouped_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None,
                       order: torch.Tensor, dropout: float, scaling: float | None) -> torch.Tensor:
    """Attention inside each group; ``order`` (groups, group_size) lists the positions in each group. The mask keeps
    the model's own rules between original positions (causal, padding, packed rows), so the group that wraps around
    the end never lets the first tokens see the last ones."""
    batch, groups = query.shape[0], order.shape[0]

    def grouped(x):  # (batch, heads, length, dim) -> (batch * groups, heads, group_size, dim): sdpa's fused kernels
        return x[:, :, order].transpose(1, 2).flatten(0, 1)  # take 4-D inputs only

    if mask is None:  # sdpa left causality to is_causal
        mask = (order[:, None, :] <= order[:, :, None])[None, :, None].expand(batch, -1, -1, -1, -1)
    else:  # (batch, 1, length, length) -> (batch, groups, 1, group_size, group_size)
        mask = mask[:, :, order[:, :, None], order[:, None, :]].transpose(1, 2)
    out = F.scaled_dot_product_attention(grouped(query), grouped(key), grouped(value), attn_mask=mask.flatten(0, 1),
                                         dropout_p=dropout, scale=scaling, enable_gqa=key.shape[1] != query.shape[1])
    # (batch * groups, heads, group_size, dim) -> (batch, length, heads, dim) in the original order
    out = out.unflatten(0, (batch, groups)).permute(0, 1, 3, 2, 4).flatten(1, 2)
    return out[:, order.flatten().argsort()]
