"""What DPO's shared-prompt forward (shared_prompt.py) and GRPO's packed groups (grpo_packing.py) both need: whether
a model's logits can be computed on packed rows exactly, and the vocabulary tile of trl's fused head."""
import torch

# The tile of vocabulary rows trl's fused head scores at once (trl.trainer.utils._CHUNKED_LOGPROB_CHUNK_SIZE).
CHUNK_SIZE = 32768
# Config fields that change the logits after the LM head: a model with any of them takes trl's path.
LOGIT_SCALERS = ('final_logit_softcapping', 'logit_scale', 'output_multiplier', 'lm_head_multiplier',
                 'logits_scaling')


def packable(causal_lm: torch.nn.Module) -> bool:
    """A text model with full attention (sdpa or eager: a dense mask expresses the packing), plain logits and no
    router loss."""
    config = causal_lm.config
    text_config = config.get_text_config()
    if text_config is not config or config._attn_implementation not in ('sdpa', 'eager'):
        return False
    if any(getattr(text_config, name, None) is not None for name in LOGIT_SCALERS):
        return False
    if getattr(text_config, 'output_router_logits', False):
        return False
    return all(kind == 'full_attention' for kind in getattr(text_config, 'layer_types', None) or ['full_attention'])
