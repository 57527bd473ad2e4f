"""GRPO on trl's GRPOTrainer: groups of sampled completions per prompt, scored by reward functions, each completion
weighted by its reward's advantage over its group; with its loss types (grpo, bnpo, dr_grpo, dapo), clip-higher
(--epsilon_high), GSPO (--importance_sampling_level sequence), a KL penalty to the reference (--beta), and the RLOO
and REINFORCE++ advantages (--advantage_estimator), and DAPO's dynamic sampling (--dynamic_sample).

Prompts are encoded by our template (system prompt, thinking blocks) rather than the tokenizer's chat template.
Dataset columns other than the conversation reach the reward functions by name (e.g. ``solution``).
"""
import random

import trl

from ..template import Template
from ..trainers import SwiftTrainerMixin
from ..utils import get_logger
from ..utils.io import append_jsonl
from ..utils.packages import vllm_missing
from .base import AlignmentSettings, Algorithm, keep_trainable_float32, trl_config, use_base_as_reference
from .dynamic_sampling import flat_groups, replace_groups
from .offload import OffloadSettings, offloaded

logger = get_logger()


class GRPOTrainer(SwiftTrainerMixin, trl.GRPOTrainer):

    def __init__(self, *args, template: Template, completions_path: str | None = None, advantage_scale: float = 1.0,
                 max_resample_times: int = 0, offload: OffloadSettings = OffloadSettings(), **kwargs):
        super().__init__(*args, **kwargs)
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
                 completions_path: str | None, **kwargs) -> GRPOTrainer:
    use_vllm = settings.use_vllm and _vllm_usable()
    scale_rewards, advantage_scale = advantage_settings(settings.advantage_estimator, settings.scale_rewards,
                                                        settings.num_generations)
    config = trl_config(
        trl.GRPOConfig, args, beta=settings.beta, loss_type=(settings.loss_type or ['grpo'])[0],
        num_generations=settings.num_generations, max_completion_length=settings.max_completion_length,
        temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k or 0,
        repetition_penalty=settings.repetition_penalty, epsilon=settings.epsilon,
        epsilon_high=settings.epsilon_high, scale_rewards=scale_rewards,
        num_iterations=settings.num_iterations, importance_sampling_level=settings.importance_sampling_level,
        reward_weights=settings.reward_weights or None, log_completions=False, use_vllm=use_vllm,
        vllm_mode=settings.vllm_mode, vllm_gpu_memory_utilization=settings.vllm_gpu_memory_utilization,
        vllm_tensor_parallel_size=settings.vllm_tensor_parallel_size,
        vllm_max_model_length=settings.vllm_max_model_len, vllm_enable_sleep_mode=settings.sleep_level > 0,
        vllm_server_host=settings.vllm_server_host, vllm_server_port=settings.vllm_server_port)
    return GRPOTrainer(args=config, reward_funcs=reward_funcs, template=template, completions_path=completions_path,
                       advantage_scale=advantage_scale,
                       max_resample_times=settings.max_resample_times if settings.dynamic_sample else 0,
                       offload=OffloadSettings(settings.offload_model, settings.offload_optimizer,
                                               settings.gc_collect_after_offload), **kwargs)


def _vllm_usable() -> bool:
    """--use_vllm needs vLLM and a GPU; without either, generation falls back to transformers with one warning."""
    missing = vllm_missing()
    if missing:
        logger.warning(f'--use_vllm true: {missing}, so completions are generated with transformers')
    return missing is None


GRPO = Algorithm(rows='prompt', encoding='prompt', uses_reference=False, make_trainer=make_trainer)
