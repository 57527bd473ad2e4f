"""What the alignment algorithms share: their settings, the table entry each declares, and the bridge to trl."""
from dataclasses import dataclass, field, fields
from typing import Callable

import torch
from torch import Tensor
from transformers import Trainer, TrainingArguments


@dataclass
class AlignmentSettings:
    """The algorithm flags of ``swift rlhf`` (see RLHFArguments for their meaning and defaults)."""
    beta: float = 0.1
    loss_type: list[str] = field(default_factory=list)
    loss_weights: list[float] = field(default_factory=list)
    rpo_alpha: float | None = None
    label_smoothing: float = 0.0
    precompute_ref_log_probs: bool = False
    cpo_alpha: float = 0.0
    simpo_gamma: float = 1.0
    desirable_weight: float = 1.0
    undesirable_weight: float = 1.0
    center_rewards_coefficient: float | None = None
    # GRPO
    num_generations: int = 8
    max_completion_length: int = 512
    temperature: float = 0.9
    top_p: float = 1.0
    top_k: int | None = None
    repetition_penalty: float = 1.0
    epsilon: float = 0.2
    epsilon_high: float | None = None
    scale_rewards: str = 'group'
    advantage_estimator: str = 'grpo'
    dynamic_sample: bool = False
    max_resample_times: int = 3
    num_iterations: int = 1
    importance_sampling_level: str = 'token'
    reward_weights: list[float] = field(default_factory=list)
    use_vllm: bool = False
    vllm_mode: str = 'colocate'
    vllm_gpu_memory_utilization: float | None = None  # None: 0.9 of a GPU, 0.2 of the host on vLLM's CPU build
    vllm_tensor_parallel_size: int = 1
    vllm_max_model_len: int | None = None
    vllm_server_host: str = '0.0.0.0'
    vllm_server_port: int = 8000
    sleep_level: int = 0
    offload_model: bool = False
    offload_optimizer: bool = False
    gc_collect_after_offload: bool = False
    # PPO
    num_ppo_epochs: int = 4
    num_mini_batches: int = 1
    missing_eos_penalty: float | None = None
    whiten_rewards: bool = False
    kl_coef: float = 0.05
    cliprange: float = 0.2
    vf_coef: float = 0.1
    cliprange_value: float = 0.2
    gamma: float = 1.0
    lam: float = 0.95
    # GKD
    lmbda: float = 0.5
    seq_kd: bool = False


@dataclass(frozen=True)
class Algorithm:
    """One ``--rlhf_type``: what its rows must hold, how the template encodes them, and how its trainer is built.

    ``make_trainer(args, settings, **kwargs)`` gets the run's TrainingArguments, the settings, and the keyword
    arguments every trainer takes (model, ref_model, datasets, processing_class, callbacks, checkpoint_args).
    """
    rows: str  # the dataset row check: 'pair' (chosen + rejected) or 'kto' (answer + label)
    encoding: str  # the template method: 'pair' (encode_pair) or 'completion' (encode_completion)
    uses_reference: bool
    make_trainer: Callable[..., Trainer]


def trl_config(config_cls: type[TrainingArguments], args: TrainingArguments, **settings) -> TrainingArguments:
    """A trl config holding every TrainingArguments value of ``args``, overridden by the algorithm's ``settings``."""
    training = {f.name: getattr(args, f.name) for f in fields(TrainingArguments) if f.init}
    return config_cls(**{**training, **settings})


def completion_mask(completion_ids: Tensor, stop_ids: list[int]) -> Tensor:
    """1 up to and including the first stop token of each sampled row, 0 after it (what ``generate`` pads with)."""
    is_stop = torch.isin(completion_ids, torch.tensor(stop_ids, device=completion_ids.device))
    stops_before = torch.cumsum(is_stop.long(), -1) - is_stop.long()
    return (stops_before == 0).float()


def keep_trainable_float32(model: torch.nn.Module) -> None:
    """trl casts the adapter of a quantized model to bfloat16, which a CPU computes ~67x slower: undo it there."""
    if torch.cuda.is_available():
        return
    for param in model.parameters():
        if param.requires_grad and param.dtype == torch.bfloat16:
            param.data = param.data.float()


def use_base_as_reference(model: torch.nn.Module) -> None:
    """trl copies an existing adapter into a 'ref' adapter to serve as the reference. Ours is freshly made or being
    resumed, so the reference is the base model with the adapter disabled: drop the copy (and its memory)."""
    peft_config = getattr(model, 'peft_config', {})
    if 'ref' in peft_config:
        model.delete_adapter('ref')
