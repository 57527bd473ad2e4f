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
import tempfile
from dataclasses import dataclass, field, fields
from typing import Iterator

import torch
import trl
from safetensors.torch import save_file
from torch.utils.data import DataLoader
from trl.generation.vllm_client import VLLMClient
from trl.generation.vllm_generation import VLLMGeneration

from ..pipelines.common import load_dataset_rows
from ..template import DataCollator, Template
from ..trainers import SwiftTrainerMixin, encode_rows
from ..utils import SwiftError, get_logger
from ..utils.io import append_jsonl
from ..utils.packages import vllm_is_cpu_build, vllm_memory_utilization, vllm_missing
from .base import AlignmentSettings, Algorithm, keep_trainable_float32, trl_config, use_base_as_reference
from .dynamic_sampling import flat_groups, replace_groups
from .grpo_losses import chord_mu, chord_sft_loss
from .offload import OffloadSettings, offloaded

logger = get_logger()


@dataclass
class GRPOVariants:
    """The GRPO flags AlignmentSettings does not carry: SAPO's temperatures and CHORD's mix of an SFT loss on expert
    rows (RLHFArguments' names; None as there: see its checks)."""
    tau_pos: float = 1.0
    tau_neg: float = 1.05
    chord_sft_dataset: list[str] = field(default_factory=list)
    chord_sft_per_device_train_batch_size: int | None = None
    chord_enable_phi_function: bool = False
    chord_mu_warmup_steps: int | None = None
    chord_mu_decay_steps: int | None = None
    chord_mu_peak: float | None = None
    chord_mu_valley: float | None = None

    @classmethod
    def of(cls, args) -> 'GRPOVariants':
        """Read from RLHFArguments; a bare TrainingArguments (the Python API) has none of them: the defaults."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})

    def chord_mu(self, step: int) -> float:
        return chord_mu(step, self.chord_mu_warmup_steps or 0, self.chord_mu_decay_steps or 0, self.chord_mu_peak,
                        self.chord_mu_valley)


class GRPOTrainer(SwiftTrainerMixin, trl.GRPOTrainer):

    def __init__(self, *args, template: Template, completions_path: str | None = None, advantage_scale: float = 1.0,
                 max_resample_times: int = 0, offload: OffloadSettings = OffloadSettings(),
                 rollout_on_cpu: bool = False, variants: GRPOVariants = GRPOVariants(),
                 chord_rows: list[dict] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if rollout_on_cpu:
            self._generate_with_cpu_rollout()
        self.variants = variants
        self.chord_batches = self._expert_batches(chord_rows) if chord_rows else None
        self.template = template
        self.completions_path = completions_path
        self.advantage_scale = advantage_scale
        self.max_resample_times = max_resample_times  # 0 = no dynamic sampling
        use_base_as_reference(self.model)
        keep_trainable_float32(self.model)
        if self.use_vllm and self.vllm_mode == 'colocate' and offload.any:
            self._offload_during_generation(offload)

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
            server_timeout=self.args.vllm_server_timeout, repetition_penalty=self.repetition_penalty,
            temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, min_p=self.min_p,
            max_completion_length=self.max_completion_length, logprobs=0, generation_kwargs=self.args.generation_kwargs)

    def _expert_batches(self, rows: list[dict]) -> Iterator[dict]:
        """CHORD's expert rows in shuffled batches, endlessly; each process draws from its own share."""
        loader = DataLoader(rows, batch_size=self.variants.chord_sft_per_device_train_batch_size
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
        mu = self.variants.chord_mu(self.state.global_step)
        self._metrics['train']['chord/mu'].append(mu)
        if mu == 0:  # nothing to mix: spare the expert forward pass
            return grpo_loss
        batch = dict(next(self.chord_batches))
        labels = batch.pop('labels')
        sft_loss = chord_sft_loss(model(**batch, use_cache=False).logits, labels,
                                  self.variants.chord_enable_phi_function)
        steps = self.current_gradient_accumulation_steps
        for name, part in (('grpo_loss', grpo_loss * steps), ('sft_loss', sft_loss)):  # both per micro-batch
            self._metrics['train'][f'chord/{name}'].append(self.accelerator.gather(part.detach()).mean().item())
        return (1 - mu) * grpo_loss + mu * sft_loss / steps

    def _tokenize_prompts(self, prompts: list):
        return [self.template.encode_prompt(messages) for messages in prompts], None, {}

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
        if self.server_host not in LOCAL_HOSTS:
            raise SwiftError(f'--vllm_server_host {self.server_host}: swift rollout on vLLM\'s CPU build reads the '
                             'trainer\'s weights from a local folder, so it must run on this host (127.0.0.1)')
        if self.accelerator.is_main_process:
            self.vllm_client = VLLMClient(base_url=f'http://{self.server_host}:{self.server_port}',
                                          connection_timeout=self.server_timeout)
            # the weights the server reloads; removed with the trainer
            self.weights_dir = tempfile.TemporaryDirectory(prefix='swift-rollout-weights-')
        self.accelerator.wait_for_everyone()

    def sync_weights(self) -> None:
        # Cloned: a merged LoRA is unmerged in place once the iteration ends.
        weights = {name: param.detach().clone().contiguous() for name, param in self._iter_named_params()}
        if not self.accelerator.is_main_process:
            return
        save_file(weights, os.path.join(self.weights_dir.name, 'model.safetensors'))
        import requests  # comes with vLLM, which server mode needs; a plain install has neither
        response = requests.post(f'{self.vllm_client.base_url}/collective_rpc', timeout=self.server_timeout,
                                 json={'method': 'reload_weights', 'kwargs': {'weights_path': self.weights_dir.name}})
        response.raise_for_status()
        self.vllm_client.reset_prefix_cache()


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


def make_trainer(args, settings: AlignmentSettings, *, reward_funcs: list, template: Template,
                 completions_path: str | None, variants: GRPOVariants | None = None, **kwargs) -> GRPOTrainer:
    variants = variants or GRPOVariants.of(args)
    use_vllm = settings.use_vllm and _vllm_usable()
    scale_rewards, advantage_scale = advantage_settings(settings.advantage_estimator, settings.scale_rewards,
                                                        settings.num_generations)
    offload = OffloadSettings(settings.offload_model, settings.offload_optimizer, settings.gc_collect_after_offload)
    if use_vllm and vllm_is_cpu_build():
        offload = _without_gpu_memory_flags(settings, offload)
    rollout_on_cpu = use_vllm and settings.vllm_mode == 'server' and vllm_is_cpu_build()
    config = trl_config(
        trl.GRPOConfig, args, beta=settings.beta, loss_type=(settings.loss_type or ['grpo'])[0],
        num_generations=settings.num_generations, max_completion_length=settings.max_completion_length,
        temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k or 0,
        repetition_penalty=settings.repetition_penalty, epsilon=settings.epsilon,
        epsilon_high=settings.epsilon_high, scale_rewards=scale_rewards,
        num_iterations=settings.num_iterations, importance_sampling_level=settings.importance_sampling_level,
        reward_weights=settings.reward_weights or None, log_completions=False,
        sapo_temperature_pos=variants.tau_pos, sapo_temperature_neg=variants.tau_neg,
        use_vllm=use_vllm and not rollout_on_cpu, **(_vllm_config(settings) if use_vllm else {}))
    chord_rows = _expert_rows(args, variants.chord_sft_dataset, template) if variants.chord_sft_dataset else None
    return GRPOTrainer(args=config, reward_funcs=reward_funcs, template=template, completions_path=completions_path,
                       advantage_scale=advantage_scale,
                       max_resample_times=settings.max_resample_times if settings.dynamic_sample else 0,
                       offload=offload, rollout_on_cpu=rollout_on_cpu, variants=variants, chord_rows=chord_rows,
                       **kwargs)


def _expert_rows(args, specs: list[str], template: Template) -> list[dict]:
    """--chord_sft_dataset, loaded with the run's data flags and encoded by the template as swift sft encodes."""
    encoded, stats = encode_rows(template, load_dataset_rows(args, specs), args.dataset_num_proc)
    stats.report('chord_sft_dataset')
    if not encoded:
        raise SwiftError(f'--chord_sft_dataset: no row is left to train on: all are longer than --max_length '
                         f'{args.max_length} or carry no loss')
    return encoded


def _vllm_usable() -> bool:
    """--use_vllm needs vLLM that can run here (its CUDA build and a GPU, or its CPU build); without it, generation
    falls back to transformers with one warning."""
    missing = vllm_missing()
    if missing:
        logger.warning(f'--use_vllm true: {missing}, so completions are generated with transformers')
    return missing is None


def _vllm_config(settings: AlignmentSettings) -> dict:
    """trl's vLLM settings. Sleep mode needs CUDA's memory allocator: vLLM's CPU build refuses it."""
    config = dict(vllm_mode=settings.vllm_mode, vllm_tensor_parallel_size=settings.vllm_tensor_parallel_size,
                  vllm_max_model_length=settings.vllm_max_model_len,
                  vllm_enable_sleep_mode=settings.sleep_level > 0 and not vllm_is_cpu_build(),
                  vllm_server_host=settings.vllm_server_host, vllm_server_port=settings.vllm_server_port)
    if settings.vllm_mode == 'colocate':  # a server has its own (swift rollout --vllm_gpu_memory_utilization)
        config['vllm_gpu_memory_utilization'] = vllm_memory_utilization(settings.vllm_gpu_memory_utilization)
    return config


def _without_gpu_memory_flags(settings: AlignmentSettings, offload: OffloadSettings) -> OffloadSettings:
    """With vLLM on the CPU, training and generation share host memory: nothing to put to sleep or to offload."""
    given = {'--sleep_level': settings.sleep_level, '--offload_model': offload.model,
             '--offload_optimizer': offload.optimizer, '--gc_collect_after_offload': offload.gc_collect}
    ignored = [f'{flag} {str(value).lower()}' for flag, value in given.items() if value]
    if ignored:
        logger.warning(f'{", ".join(ignored)}: vLLM runs on the CPU, in the host memory the training uses too, so '
                       'there is nothing to put to sleep or offload; ignored')
    return OffloadSettings()


GRPO = Algorithm(rows='prompt', encoding='prompt', uses_reference=False, make_trainer=make_trainer)
