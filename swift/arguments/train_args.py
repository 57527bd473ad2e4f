"""Arguments of ``swift pt`` and ``swift sft``: the shared groups, the tuner, and transformers' TrainingArguments."""
import importlib.util
import os
import re
from dataclasses import dataclass, field
from typing import Literal, Optional

import torch
from transformers import Seq2SeqTrainingArguments

from ..utils import SwiftError, get_logger
from ..utils.dist import skip_deepspeed_cpu_kernel
from ..utils.packages import require_extra
from ..dataset.arguments import StreamingArguments
from ..tuners.arguments import INIT_WEIGHTS, TunerArguments
from .base_args import BaseArguments, json_object
from .deepspeed import SHORTHANDS, deepspeed_config
from .fsdp import fsdp_settings
from .eval_args import EvalScopeTrainingArguments

logger = get_logger()


# --loss_type names of ms-swift's loss plugins (swift/loss/mapping.py) for embedding and reranker models, by
# --task_type; the first is the default (ms-swift has none: its examples always name one).
RETRIEVAL_LOSSES = {'embedding': ('infonce', 'cosine_similarity', 'contrastive', 'online_contrastive'),
                    'reranker': ('pointwise_reranker', 'listwise_reranker'),
                    'generative_reranker': ('pointwise_reranker', 'listwise_reranker')}
EMBEDDING_LOSSES = tuple(dict.fromkeys(name for names in RETRIEVAL_LOSSES.values() for name in names))
# --optimizer: ms-swift's optimizer plugins (swift/optimizers/mapping.py) that run here.
OPTIMIZERS = ('default', 'galore', 'lorap', 'muon', 'multimodal')


@dataclass
class TrainerSettings:
    """The flags the trainer and the run read beside transformers' TrainingArguments (ms-swift's names)."""
    loss_type: Optional[str] = field(
        default=None, metadata={'help': "sft: cross_entropy (ms-swift's loss plugin: per-token cross entropy); "
                                        "default the model's own loss."})
    enable_dft_loss: bool = field(
        default=False, metadata={'help': 'DFT loss (arXiv 2508.05629): each token loss weighted by its detached '
                                         'probability.'})
    acc_strategy: Literal['token', 'seq'] = field(
        default='token', metadata={'help': 'Training accuracy logged as token_acc (per token) or seq_acc (a row '
                                           'counts when all its labelled tokens are right).'})
    use_logits_to_keep: Optional[bool] = field(
        default=None, metadata={'help': 'Compute logits only from the first labelled position on (less memory); '
                                        'default on where the model takes logits_to_keep.'})
    eval_metric: Optional[str] = field(
        default=None, metadata={'help': 'acc (the default): eval_token_acc or eval_seq_acc beside eval_loss.'})
    train_dataloader_shuffle: bool = field(default=True, metadata={'help': 'Shuffle the training rows.'})
    resume_only_model: bool = field(
        default=False, metadata={'help': 'With --resume_from_checkpoint: load the weights only, not the optimizer, '
                                         'scheduler or RNG states; with --ignore_data_skip true also restart at '
                                         'step 0.'})
    early_stop_interval: Optional[int] = field(
        default=None, metadata={'help': 'Stop when the best metric has not improved for this many saves.'})
    optimizer: Optional[str] = field(
        default=None, metadata={'help': 'Optimizer plugin (over --optim): default, galore (--use_galore), lorap '
                                        '(LoRA+, --lorap_lr_ratio), muon (torch.optim.Muon on 2-D weights, AdamW on '
                                        'the rest), multimodal (--vit_lr / --aligner_lr per part).'})
    router_aux_loss_coef: float = field(
        default=0.0, metadata={'help': "Mixture-of-experts models: weight of the router's load-balancing loss "
                                       '(0: the model\'s own setting).'})
    max_epochs: Optional[int] = field(
        default=None, metadata={'help': 'Stop (and save) at the end of this epoch, whatever --num_train_epochs says.'})
    mrl_dims: Optional[str] = field(
        default=None, metadata={'help': 'Embedding training, Matryoshka: a JSON object of truncated dimension to loss '
                                        'weight, e.g. \'{"32": 1.0, "64": 1.0}\'; the loss is the weighted sum over '
                                        'the first N dimensions, normalised again.'})
    logging_dir: Optional[str] = field(
        default=None, metadata={'help': "TensorBoard folder; default transformers' <run>/runs/<date_host>."})
    max_shard_size: str = field(default='5GB', metadata={'help': 'Largest weight file of a saved full model.'})
    safe_serialization: bool = field(default=True, metadata={'help': 'Save safetensors (the only format here).'})
    add_version: bool = field(
        default=True, metadata={'help': 'Run in <output_dir>/vN-<date-time>; false runs in --output_dir itself.'})
    create_checkpoint_symlink: bool = field(
        default=False, metadata={'help': 'Link <run>/last and <run>/best to the last and best checkpoints.'})
    packing_length: Optional[int] = field(
        default=None, metadata={'help': 'With --packing: pack rows into sequences of at most this many tokens; '
                                        'default --max_length.'})
    cached_dataset: list[str] = field(
        default_factory=list, metadata={'help': 'Folders of rows encoded once by swift export --to_cached_dataset '
                                                'true (its train/ folder): trained on without encoding again.'})
    cached_val_dataset: list[str] = field(
        default_factory=list, metadata={'help': 'Folders of encoded evaluation rows (the export\'s val/ folder).'})
    galore_proj_type: Literal['std', 'reverse_std', 'left', 'right', 'full'] = field(
        default='std', metadata={'help': 'GaLore projection type.'})
    galore_optim_per_parameter: bool = field(
        default=False, metadata={'help': 'GaLore: one optimizer per parameter (layer-wise updates).'})
    galore_with_embedding: bool = field(
        default=False, metadata={'help': 'GaLore: project the gradients of the embedding tables too.'})


@dataclass
class TrainArguments(TrainerSettings, EvalScopeTrainingArguments, TunerArguments, StreamingArguments, BaseArguments,
                     Seq2SeqTrainingArguments):
    # Defaults differ from transformers' where ms-swift users expect its behaviour.
    output_dir: str = field(default='output', metadata={'help': 'Runs go to <output_dir>/vN-<date-time>/.'})
    learning_rate: Optional[float] = field(default=None, metadata={'help': 'Default 1e-4 for LoRA, 1e-5 for full.'})
    num_train_epochs: float = 3.0
    per_device_train_batch_size: int = 1
    per_device_eval_batch_size: int = 1
    gradient_checkpointing: Optional[bool] = field(
        default=None, metadata={'help': 'Recompute activations in backward to save memory. Default: on with a GPU, '
                                        'off on a CPU, where host memory is ample and recomputing costs ~30% speed.'})
    # transformers 5.20 renamed gradient_checkpointing to activation_checkpointing; declared here as well for the
    # transformers < 5.20 that vLLM pins (.venv-vllm), whose TrainingArguments lacks it.
    activation_checkpointing: Optional[bool] = field(
        default=None, metadata={'help': 'Same as --gradient_checkpointing.'})
    lr_scheduler_type: str = 'cosine'
    weight_decay: float = 0.1
    adam_beta2: float = 0.95
    warmup_ratio: float = field(default=0.0, metadata={'help': 'Fraction of steps spent warming up.'})
    logging_steps: float = 5
    save_steps: float = 500
    eval_strategy: Optional[str] = field(default=None, metadata={'help': 'Defaults to save_strategy.'})
    report_to: Optional[str] = field(default='tensorboard', metadata={'help': 'Logging integrations.'})
    remove_unused_columns: bool = False
    logging_first_step: bool = True
    save_safetensors: bool = field(default=True, metadata={'help': 'Save weights as safetensors.'})
    group_by_length: bool = field(
        default=False, metadata={'help': 'Batch rows of similar length together: less padding, faster steps.'})

    def __post_init__(self):
        BaseArguments.__post_init__(self)
        if not self.dataset and not self.cached_dataset:
            raise SwiftError('--dataset is required: a file or a dataset id (or --cached_dataset, rows encoded once)')
        if self.model is None:
            raise SwiftError('--model is required: a local folder or a hub id')
        if self.train_type == 'qlora':
            self.quant_bits = self.quant_bits or 4
        if self.train_type == 'dora':  # a LoRA whose checkpoints say so in their adapter_config.json
            self.train_type, self.use_dora = 'lora', True
        if self.quant_bits and self.train_type == 'full':
            raise SwiftError('--quant_bits trains adapters on a frozen quantized base: use --train_type lora')
        if self.quant_bits and self.quant_method is None:
            self.quant_method = 'bnb'
        for name in ('target_regex', 'freeze_parameters_regex', 'trainable_parameters_regex'):
            if getattr(self, name):
                try:
                    re.compile(getattr(self, name))
                except re.error as err:
                    raise SwiftError(f'--{name} {getattr(self, name)!r}: not a regular expression ({err})') from None
        if self.target_parameters and self.train_type not in ('lora', 'qlora'):
            raise SwiftError('--target_parameters applies to --train_type lora')
        if self.target_parameters and self.lora_dropout:
            logger.warning(f"--target_parameters: peft's parameter adapters take no dropout, so --lora_dropout "
                           f'{self.lora_dropout} becomes 0')
            self.lora_dropout = 0.0
        if self.lora_dtype and self.train_type not in ('lora', 'qlora', 'longlora', 'adalora'):
            raise SwiftError('--lora_dtype applies to LoRA adapters (--train_type lora, qlora, adalora, longlora)')
        if not 0 <= self.freeze_parameters_ratio <= 1:
            raise SwiftError(f'--freeze_parameters_ratio must be in [0, 1], got {self.freeze_parameters_ratio}')
        if self.train_type == 'longlora' and (self.packing or self.padding_free):
            raise SwiftError('--train_type longlora pads each batch to a multiple of 4 tokens for its shifted groups: '
                             'drop --packing and --padding_free')
        if self.lorap_lr_ratio is not None and self.train_type not in ('lora', 'qlora'):
            raise SwiftError('--lorap_lr_ratio (LoRA+) needs --train_type lora or qlora')
        self._check_trainer_flags()
        self._check_tuner_flags()
        self._check_streaming()
        self.check_evalscope_training()
        if self.learning_rate is None:
            self.learning_rate = 1e-5 if self.train_type in ('full', 'llamapro') else 1e-4
        if not 0 <= self.warmup_ratio < 1:
            raise SwiftError(f'--warmup_ratio must be in [0, 1), got {self.warmup_ratio}')
        if self.warmup_ratio and not self.warmup_steps:
            self.warmup_steps = self.warmup_ratio  # transformers reads a float below 1 as a ratio
        if self.group_by_length:  # transformers 5 moved this option into train_sampling_strategy
            self.train_sampling_strategy = 'group_by_length'
        if self.eval_strategy is None:
            self.eval_strategy = self.save_strategy
        if self.eval_steps is None:
            self.eval_steps = self.save_steps
        self._choose_mixed_precision()
        self._choose_deepspeed()
        self._choose_fsdp()
        # More workers than cores only adds contention (the seeds pass 4 whatever the machine).
        self.dataloader_num_workers = min(self.dataloader_num_workers, os.cpu_count() or 1)
        if self.gradient_checkpointing is None:
            self.gradient_checkpointing = torch.cuda.is_available()
        # transformers 5.20 renamed gradient_checkpointing; move the seeds' flag over without its deprecation warning
        # (an older transformers, as vLLM pins, reads only the old name: keep it there).
        if self.activation_checkpointing is None:
            self.activation_checkpointing = self.gradient_checkpointing
            if 'activation_checkpointing' in Seq2SeqTrainingArguments.__dataclass_fields__:
                self.gradient_checkpointing = None
        if self.deepspeed:
            skip_deepspeed_cpu_kernel()
        Seq2SeqTrainingArguments.__post_init__(self)

    def _choose_deepspeed(self) -> None:
        """--deepspeed zero0..zero3_offload (ms-swift's shorthands) or a JSON config file. DeepSpeed runs on a CPU too
        (its CPU accelerator over gloo), so the flag is never skipped: without the package it stops in one line."""
        if not self.deepspeed or isinstance(self.deepspeed, dict):
            return
        if self.deepspeed not in SHORTHANDS and not os.path.isfile(self.deepspeed):
            raise SwiftError(f"--deepspeed {self.deepspeed}: give one of {', '.join(SHORTHANDS)} or a DeepSpeed "
                             'JSON config file')
        require_extra('deepspeed', 'deepspeed', f'--deepspeed {self.deepspeed}')
        if self.deepspeed in SHORTHANDS:
            self.deepspeed = deepspeed_config(self.deepspeed)

    def _choose_fsdp(self) -> None:
        """--fsdp fsdp2 (ms-swift's preset), a JSON file in its layout or transformers' options, with --fsdp_config
        (a run on a CPU stops at its start: check_fsdp_device)."""
        if not self.fsdp:
            return
        if self.deepspeed:
            raise SwiftError('--fsdp and --deepspeed: choose one (FSDP2 does not combine with DeepSpeed)')
        self.fsdp, self.fsdp_config = fsdp_settings('full_shard auto_wrap' if self.fsdp is True else self.fsdp,
                                                    self.fsdp_config)
        if self.fsdp_config.get('activation_checkpointing') and self.gradient_checkpointing is not False:
            # as ms-swift: FSDP checkpoints the wrapped layers itself; both would all-gather twice in backward
            logger.info('--fsdp: the fsdp_config checkpoints activations, so --gradient_checkpointing becomes false')
            self.gradient_checkpointing = False

    def check_fsdp_device(self) -> None:
        """accelerate applies FSDP only on GPUs: on a CPU the run would silently be plain DDP, so it stops instead."""
        if self.fsdp and not torch.cuda.is_available():
            raise SwiftError('--fsdp needs CUDA GPUs: accelerate applies FSDP only on GPUs, and on a CPU the run would '
                             'silently be plain DDP; use NPROC_PER_NODE data parallelism or --deepspeed zero3 (which '
                             'shards on a CPU too)')

    def _choose_mixed_precision(self) -> None:
        """bf16/fp16 autocast only where the hardware computes it natively; a CPU falls back to float32."""
        dtype = {'bf16': 'bfloat16', 'fp16': 'float16', 'fp32': 'float32'}.get(self.torch_dtype, self.torch_dtype)
        self.torch_dtype = dtype
        if not torch.cuda.is_available():
            self.use_cpu = True
            if dtype in ('bfloat16', 'float16'):
                logger.warning(f'--torch_dtype {dtype}: no GPU here, so the model computes in float32 '
                               '(a CPU without native bf16 runs it about 67 times slower).')
                self.torch_dtype = 'float32'
            self.bf16 = self.fp16 = False
            return
        if dtype == 'bfloat16' and not torch.cuda.is_bf16_supported():
            logger.warning('--torch_dtype bfloat16 is not supported by this GPU: using float16.')
            self.torch_dtype = dtype = 'float16'
        self.bf16 = self.bf16 or dtype == 'bfloat16'
        self.fp16 = self.fp16 or dtype == 'float16'

    def _check_tuner_flags(self) -> None:
        """Validate the tuner flags; optional accelerations that cannot run here fall back with one warning."""
        self.init_weights = str(self.init_weights).lower()  # ms-swift's examples write True and False
        if self.init_weights not in INIT_WEIGHTS and not re.fullmatch(r'pissa_niter_\d+', self.init_weights):
            raise SwiftError(f"--init_weights {self.init_weights}: choose one of {', '.join(INIT_WEIGHTS)} "
                             'or pissa_niter_N')
        if self.init_weights != 'true' and self.train_type not in ('lora', 'qlora'):
            raise SwiftError('--init_weights applies to --train_type lora')
        if self.init_weights == 'lora-ga':
            self._check_lora_ga()
        if self.init_weights.startswith(('pissa', 'olora', 'lora-ga')) and self.resume_from_checkpoint:
            raise SwiftError(f'--init_weights {self.init_weights} checkpoints hold the converted adapter and '
                             'cannot be resumed')
        if self.quant_bits and self.train_type == 'llamapro':
            raise SwiftError('--train_type llamapro trains whole new blocks: it cannot run over a quantized base')
        if (self.lisa_activated_layers or self.use_galore) and self.train_type != 'full':
            raise SwiftError('LISA and GaLore are full-training methods: use --train_type full')
        if self.lisa_step_interval <= 0:
            raise SwiftError(f'--lisa_step_interval must be positive, got {self.lisa_step_interval}')
        if self.use_galore:
            self._use_galore()
        self.reft_args = json_object('--reft_args', self.reft_args, 'of intervention options, e.g. {"dropout": 0.05}')
        if self.use_liger_kernel and not (importlib.util.find_spec('liger_kernel') and torch.cuda.is_available()):
            logger.warning('--use_liger_kernel true needs the liger-kernel package and a GPU: training without it')
            self.use_liger_kernel = False
        if self.tuner_backend == 'unsloth' and importlib.util.find_spec('unsloth') is None:
            logger.warning('--tuner_backend unsloth: unsloth is not installed, training with peft')
            self.tuner_backend = 'peft'

    def _check_retrieval_loss(self) -> None:
        """Embedding and reranker runs take their task's losses; unset, the first (infonce, pointwise_reranker)."""
        choices = RETRIEVAL_LOSSES[self.task_type]
        if self.mrl_dims is not None and self.task_type == 'embedding':
            dims = json_object('--mrl_dims', self.mrl_dims, 'of dimension to weight, e.g. {"32": 1.0, "64": 1.0}')
            try:
                self.mrl_dims = {int(dim): float(weight) for dim, weight in dims.items()}
            except (TypeError, ValueError):
                raise SwiftError(f'--mrl_dims {self.mrl_dims}: keys are dimensions (integers), values '
                                 'weights') from None
            if not self.mrl_dims or min(self.mrl_dims) < 1:
                raise SwiftError(f'--mrl_dims {self.mrl_dims}: give positive dimensions')
        if self.loss_type is None:
            self.loss_type = choices[0]
        elif self.loss_type not in choices:
            raise SwiftError(f'--loss_type {self.loss_type}: --task_type {self.task_type} takes {", ".join(choices)}')
        for name in ('packing', 'enable_dft_loss', 'use_logits_to_keep'):
            if getattr(self, name):
                raise SwiftError(f'--{name}: not for --task_type {self.task_type}')
        if self.padding_free:  # ms-swift's examples ask for it; each text is pooled alone either way
            logger.warning(f'--padding_free true: --task_type {self.task_type} pads its batches (same result)')
            self.padding_free = False

    def _check_streaming(self) -> None:
        if not self.streaming:
            return
        if getattr(self, 'rlhf_type', None):
            raise SwiftError('--streaming: swift rlhf reads its rows whole; streaming is built for swift sft and pt')
        if self.max_steps is None or self.max_steps <= 0:
            raise SwiftError('--streaming true needs --max_steps: a stream has no length to count epochs in')
        if self.lazy_tokenize or self.cached_dataset:
            raise SwiftError('--streaming encodes rows as they are read: drop --lazy_tokenize and --cached_dataset')
        if self.shuffle_buffer_size < 1:
            raise SwiftError(f'--shuffle_buffer_size must be positive, got {self.shuffle_buffer_size}')
        if self.split_dataset_ratio > 0:  # as ms-swift: a stream is not split; --val_dataset gives evaluation rows
            logger.info(f'--streaming: --split_dataset_ratio {self.split_dataset_ratio} becomes 0 (a stream is not '
                        'split, as in ms-swift); pass --val_dataset for evaluation rows')
            self.split_dataset_ratio = 0.0

    def _check_trainer_flags(self) -> None:
        rlhf = getattr(self, 'rlhf_type', None)
        if self.mrl_dims is not None and (rlhf or self.task_type != 'embedding'):
            logger.warning(f'--mrl_dims: only --task_type embedding reads it, not {self.task_type}; ignored')
            self.mrl_dims = None
        if rlhf:  # the alignment trainers compute their own losses
            for name in ('enable_dft_loss', 'use_logits_to_keep'):
                if getattr(self, name):
                    raise SwiftError(f'--{name}: swift sft and swift pt only; --rlhf_type {rlhf} computes its own '
                                     'loss')
            if self.packing_length is not None:
                raise SwiftError(f'--packing_length: swift sft and swift pt only; --rlhf_type {rlhf} does not pack')
            if self.acc_strategy != 'token':
                raise SwiftError(f'--acc_strategy {self.acc_strategy}: swift sft and swift pt only')
        elif self.task_type in RETRIEVAL_LOSSES:
            self._check_retrieval_loss()
        elif self.loss_type is not None:
            if self.loss_type in EMBEDDING_LOSSES:
                raise SwiftError(f'--loss_type {self.loss_type}: needs --task_type embedding, reranker or '
                                 'generative_reranker')
            if self.loss_type != 'cross_entropy':
                raise SwiftError(f'--loss_type {self.loss_type}: swift sft takes cross_entropy (or none: the '
                                 "model's own loss)")
        if self.packing_length is not None and self.packing_length <= 0:
            raise SwiftError(f'--packing_length must be positive, got {self.packing_length}')
        if self.eval_metric not in (None, 'acc'):
            reason = ('embedding and reranker metrics are issue 15' if self.eval_metric in
                      ('infonce', 'paired', 'reranker') else 'generation metrics (nlg) are not built yet')
            raise SwiftError(f'--eval_metric {self.eval_metric}: swift sft takes acc; {reason}')
        if not self.safe_serialization:
            raise SwiftError('--safe_serialization false: checkpoints are saved as safetensors only')
        self.save_safetensors = True
        if not self.train_dataloader_shuffle:
            self.train_sampling_strategy = 'sequential'
        if self.early_stop_interval is not None and self.early_stop_interval <= 0:
            raise SwiftError(f'--early_stop_interval must be positive, got {self.early_stop_interval}')
        if self.router_aux_loss_coef < 0:
            raise SwiftError(f'--router_aux_loss_coef must be >= 0, got {self.router_aux_loss_coef}')
        if self.max_epochs is not None and self.max_epochs <= 0:
            raise SwiftError(f'--max_epochs must be positive, got {self.max_epochs}')
        if self.early_stop_interval and self.metric_for_best_model is None:
            self.metric_for_best_model = 'loss'  # ms-swift's default best metric
        if self.optimizer == 'muonclip':
            raise SwiftError('--optimizer muonclip: not built yet (MuonClip needs attention-logit clipping hooks)')
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise SwiftError(f"--optimizer {self.optimizer}: choose one of {', '.join(OPTIMIZERS)}")
        if self.optimizer == 'galore':
            self.use_galore = True
        if self.optimizer == 'lorap' and self.lorap_lr_ratio is None:
            raise SwiftError('--optimizer lorap needs --lorap_lr_ratio (e.g. 16)')
        if self.optimizer == 'muon' and not hasattr(torch.optim, 'Muon'):
            raise SwiftError('--optimizer muon needs torch.optim.Muon (torch >= 2.9)')
        if self.optimizer == 'muon' and (self.use_galore or self.lorap_lr_ratio is not None):
            raise SwiftError('--optimizer muon: not with GaLore or LoRA+')
        if self.use_galore and self.train_type == 'full' and self.optimizer is None:
            self.optimizer = 'galore'
        if self.lorap_lr_ratio is not None and self.optimizer is None:
            self.optimizer = 'lorap'

    def _check_lora_ga(self) -> None:
        if self.quant_bits:
            raise SwiftError('--init_weights lora-ga needs full-precision gradients: no quantized base')
        for name in ('lora_ga_batch_size', 'lora_ga_iters', 'lora_ga_max_length'):
            if getattr(self, name) <= 0:
                raise SwiftError(f'--{name} must be positive, got {getattr(self, name)}')

    def _use_galore(self) -> None:
        """GaLore through transformers' galore_adamw optimizer."""
        require_extra('galore_torch', 'galore', '--use_galore true')
        if self.galore_with_embedding and self.galore_optim_per_parameter:
            raise SwiftError('--galore_with_embedding true: not with --galore_optim_per_parameter true (transformers '
                             'builds the layer-wise optimizers over Linear layers only)')
        layerwise = self.galore_optim_per_parameter
        if layerwise and self.gradient_accumulation_steps > 1:
            # transformers' layer-wise optimizers step inside backward, so they refuse accumulation; ms-swift steps
            # its per-parameter optimizers together at the optimizer step, which is one GaLore AdamW's update.
            logger.warning('--galore_optim_per_parameter true with --gradient_accumulation_steps '
                           f'{self.gradient_accumulation_steps}: one GaLore AdamW over all parameters (the same '
                           'updates; the layer-wise optimizer cannot accumulate gradients)')
            layerwise = False
        self.optim = 'galore_adamw_layerwise' if layerwise else 'galore_adamw'
        targets = self.galore_target_modules
        targets = 'all-linear' if targets == ['all-linear'] else list(targets)
        self.optim_target_modules = targets
        self.optim_args = (f'rank={self.galore_rank},update_proj_gap={self.galore_update_proj_gap},'
                           f'scale={self.galore_scale},proj_type={self.galore_proj_type}')
