"""The tuner flags of ``swift sft``/``pt``/``rlhf`` (ms-swift's names): declared here, beside the code that reads them,
and composed into the training commands' arguments. Data only: TrainArguments checks them against the other
groups (quantization, resume, optimizer)."""
from dataclasses import dataclass, field
from typing import Literal, Optional

# --init_weights: peft's init_lora_weights ('true'/'false' or a named initialisation; also pissa_niter_N).
INIT_WEIGHTS = ('true', 'false', 'gaussian', 'pissa', 'olora', 'loftq', 'lora-ga')


@dataclass
class TunerArguments:
    train_type: Literal['lora', 'dora', 'qlora', 'full', 'adalora', 'vera', 'boft', 'fourierft', 'bone', 'llamapro',
                        'adapter', 'reft', 'longlora'] = field(
        default='lora', metadata={'help': 'lora, dora (lora with --use_dora true), qlora (LoRA on a 4-bit base), '
                                          'full, the peft adapters adalora, '
                                          'vera, boft, fourierft, bone, or llamapro (new blocks) and adapter '
                                          '(bottleneck adapters), reft (representation finetuning), longlora '
                                          '(LoRA + embeddings and norms, shifted sparse attention in training). '
                                          'Also --tuner_type.'})
    lora_rank: int = field(default=8, metadata={'help': 'LoRA rank r.'})
    lora_alpha: int = field(default=32, metadata={'help': 'LoRA scaling alpha.'})
    lora_dropout: float = field(default=0.05, metadata={'help': 'Dropout on the LoRA input.'})
    lora_bias: Literal['none', 'all'] = field(default='none', metadata={'help': 'Which biases LoRA trains.'})
    target_modules: list[str] = field(
        default_factory=lambda: ['all-linear'], metadata={'help': "Modules to adapt; 'all-linear' picks every Linear."})
    target_regex: Optional[str] = field(
        default=None, metadata={'help': 'A regex over module names to adapt (peft target_modules as a regex); '
                                        'overrides --target_modules.'})
    target_parameters: Optional[list[str]] = field(
        default=None, metadata={'help': "LoRA on parameters by name (peft's target_parameters), e.g. fused MoE "
                                        'experts: mlp.experts.gate_up_proj.'})
    modules_to_save: list[str] = field(default_factory=list, metadata={'help': 'Modules trained fully beside LoRA.'})
    lora_dtype: Optional[Literal['float16', 'bfloat16', 'float32']] = field(
        default=None, metadata={'help': "dtype of the LoRA weights; default: peft's (the base layer's)."})
    use_dora: bool = field(default=False, metadata={'help': 'Weight-decomposed LoRA (DoRA).'})
    use_rslora: bool = field(default=False, metadata={'help': 'Rank-stabilised LoRA scaling.'})
    vera_rank: int = field(default=256, metadata={'help': 'Rank of the shared random VeRA matrices.'})
    vera_projection_prng_key: int = field(default=0, metadata={'help': 'VeRA: seed of the shared projections.'})
    vera_dropout: float = field(default=0.0, metadata={'help': 'VeRA: dropout on the layer input.'})
    vera_d_initial: float = field(default=0.1, metadata={'help': 'VeRA: initial value of the d vector.'})
    boft_block_size: int = field(default=4, metadata={'help': 'BOFT block size; must divide the layer widths.'})
    boft_block_num: int = field(
        default=0, metadata={'help': 'BOFT: number of blocks (instead of --boft_block_size; give one of the two).'})
    boft_dropout: float = field(default=0.0, metadata={'help': 'BOFT: multiplicative dropout.'})
    boft_n_butterfly_factor: int = field(default=1, metadata={'help': 'BOFT butterfly factors.'})
    fourier_n_frequency: int = field(default=2000, metadata={'help': 'FourierFT: spectral coefficients per layer.'})
    fourier_scaling: float = field(default=300.0, metadata={'help': 'FourierFT scaling.'})
    init_weights: str = field(
        default='true', metadata={'help': 'LoRA initialisation: true, false, gaussian, pissa, pissa_niter_N, olora, '
                                          'loftq (GPU), lora-ga (from gradients of a few training batches).'})
    lora_ga_batch_size: int = field(default=2, metadata={'help': 'LoRA-GA: rows per gradient-estimation batch.'})
    lora_ga_iters: int = field(default=2, metadata={'help': 'LoRA-GA: batches whose gradients are averaged.'})
    lora_ga_max_length: int = field(
        default=1024, metadata={'help': 'LoRA-GA: rows are cut to this many tokens for the estimate.'})
    lora_ga_direction: Literal['ArBr', 'A2rBr', 'ArB2r', 'random'] = field(
        default='ArB2r', metadata={'help': 'LoRA-GA: which singular vectors of the gradient start A and B.'})
    lora_ga_scale: Literal['stable', 'unit', 'gd', 'weightS'] = field(
        default='stable', metadata={'help': "LoRA-GA: scaling of the initial adapter (peft's stable, unit, gd_scale, "
                                            'weight_svd).'})
    lora_ga_stable_gamma: int = field(default=16, metadata={'help': 'LoRA-GA: gamma of the stable scaling.'})
    adalora_target_r: int = field(default=8, metadata={'help': 'AdaLoRA: average rank left after pruning.'})
    adalora_init_r: int = field(default=12, metadata={'help': 'AdaLoRA: rank of every layer at the start.'})
    adalora_tinit: int = field(default=0, metadata={'help': 'AdaLoRA: steps before pruning starts.'})
    adalora_tfinal: int = field(default=0, metadata={'help': 'AdaLoRA: steps at the end with the ranks fixed.'})
    adalora_deltaT: int = field(default=1, metadata={'help': 'AdaLoRA: steps between budget allocations.'})
    adalora_beta1: float = field(default=0.85, metadata={'help': 'AdaLoRA: EMA of the importance scores.'})
    adalora_beta2: float = field(default=0.85, metadata={'help': 'AdaLoRA: EMA of their uncertainty.'})
    adalora_orth_reg_weight: float = field(default=0.5, metadata={'help': 'AdaLoRA: orthogonality penalty.'})
    llamapro_num_new_blocks: int = field(default=4, metadata={'help': 'LLaMA-Pro: decoder blocks to add.'})
    llamapro_num_groups: Optional[int] = field(
        default=None, metadata={'help': 'LLaMA-Pro: groups of layers, each followed by its share of new blocks; '
                                        'default one group per new block.'})
    adapter_length: int = field(default=128, metadata={'help': 'Bottleneck adapter width.'})
    adapter_act: str = field(default='gelu', metadata={'help': 'Bottleneck adapter activation.'})
    reft_layers: Optional[list[int]] = field(
        default=None, metadata={'help': 'ReFT: indices of the decoder layers whose output is edited; default all.'})
    reft_rank: int = field(default=4, metadata={'help': 'ReFT: rank of the intervention (rows of R).'})
    reft_intervention_type: Literal['LoreftIntervention', 'NoreftIntervention'] = field(
        default='LoreftIntervention', metadata={'help': 'ReFT: LoreftIntervention (R with orthonormal rows) or '
                                                        'NoreftIntervention (R a plain linear projection).'})
    reft_layer_key: Optional[str] = field(
        default=None, metadata={'help': 'ReFT: dotted name of the list of decoder layers (e.g. model.layers); '
                                        'found when unset.'})
    reft_args: Optional[str] = field(
        default=None, metadata={'help': 'ReFT: a JSON object of intervention options: dropout (0.0), act_fn '
                                        '(linear), add_bias (false; NoreftIntervention only).'})
    lisa_activated_layers: int = field(
        default=0, metadata={'help': 'LISA (full training): decoder layers trained at a time; 0 is off.'})
    lisa_step_interval: int = field(default=20, metadata={'help': 'LISA: steps between resampling the layers.'})
    use_galore: bool = field(default=False, metadata={'help': 'GaLore low-rank gradient projection (full training; '
                                                              'needs galore-torch).'})
    galore_target_modules: list[str] = field(
        default_factory=lambda: ['all-linear'], metadata={'help': 'GaLore: modules whose gradients are projected.'})
    galore_rank: int = field(default=128, metadata={'help': 'GaLore projection rank.'})
    galore_update_proj_gap: int = field(default=50, metadata={'help': 'GaLore: steps between projection updates.'})
    galore_scale: float = field(default=1.0, metadata={'help': 'GaLore: scale of the projected update.'})
    tuner_backend: Literal['peft', 'unsloth'] = field(
        default='peft', metadata={'help': 'peft; unsloth falls back to peft when it is not installed.'})
    lorap_lr_ratio: Optional[float] = field(
        default=None, metadata={'help': 'LoRA+: the B matrices learn this many times faster (e.g. 16).'})
    freeze_parameters: list[str] = field(
        default_factory=list, metadata={'help': 'Full training: parameter name prefixes to freeze.'})
    freeze_parameters_regex: Optional[str] = field(
        default=None, metadata={'help': 'Full training: freeze parameters whose name this regex finds (re.search).'})
    freeze_parameters_ratio: float = field(
        default=0.0, metadata={'help': 'Full training: freeze this fraction of the parameters, from the bottom.'})
    trainable_parameters: list[str] = field(
        default_factory=list, metadata={'help': 'Full training: prefixes or regexes trained even when frozen above.'})
    trainable_parameters_regex: Optional[str] = field(
        default=None, metadata={'help': 'Full training: parameters whose name this regex finds (re.search) train '
                                        'even when frozen above.'})
    freeze_llm: bool = field(
        default=False, metadata={'help': 'Multimodal models: full training freezes the language model; with '
                                         '--target_modules all-linear a tuner leaves it out.'})
    freeze_vit: bool = field(
        default=True, metadata={'help': 'Multimodal models: the same for the vision (or audio) tower.'})
    freeze_aligner: bool = field(
        default=True, metadata={'help': 'Multimodal models: the same for the aligner (projector, merger).'})
    vit_lr: Optional[float] = field(
        default=None, metadata={'help': 'Multimodal models: learning rate of the vision tower\'s trainable '
                                        'parameters (default --learning_rate).'})
    vit_gradient_checkpointing: Optional[bool] = field(
        default=None, metadata={'help': 'Multimodal models: gradient checkpointing in the vision tower and the '
                                        'aligner (default: as --gradient_checkpointing).'})
    aligner_lr: Optional[float] = field(
        default=None, metadata={'help': 'Multimodal models: learning rate of the aligner\'s trainable parameters '
                                        '(default --learning_rate).'})

    @property
    def tuner_type(self) -> str:
        return self.train_type
