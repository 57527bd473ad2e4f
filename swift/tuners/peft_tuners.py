"""The adapter families peft implements, by ``--train_type``: each maps the shared settings to a peft config."""
from dataclasses import dataclass, field
from typing import Callable

from peft import BOFTConfig, FourierFTConfig, LoraConfig, MissConfig, PeftConfig, VeraConfig


@dataclass
class TunerSettings:
    """What the adapter tuners read from the command line."""
    rank: int = 8
    alpha: int = 32
    dropout: float = 0.05
    bias: str = 'none'
    target_modules: list[str] = field(default_factory=lambda: ['all-linear'])
    modules_to_save: list[str] = field(default_factory=list)
    use_dora: bool = False
    use_rslora: bool = False
    vera_rank: int = 256
    boft_block_size: int = 4
    boft_n_butterfly_factor: int = 1
    fourier_n_frequency: int = 2000
    fourier_scaling: float = 300.0
    # Full training of part of the model.
    freeze_parameters: list[str] = field(default_factory=list)
    freeze_parameters_ratio: float = 0.0
    trainable_parameters: list[str] = field(default_factory=list)

    @property
    def targets(self) -> str | list[str]:
        # peft understands 'all-linear' itself and leaves the output head out.
        return 'all-linear' if self.target_modules == ['all-linear'] else self.target_modules

    @property
    def common(self) -> dict:
        return {'task_type': 'CAUSAL_LM', 'target_modules': self.targets,
                'modules_to_save': self.modules_to_save or None}


def _lora(s: TunerSettings) -> PeftConfig:
    return LoraConfig(r=s.rank, lora_alpha=s.alpha, lora_dropout=s.dropout, bias=s.bias, use_dora=s.use_dora,
                      use_rslora=s.use_rslora, **s.common)


def _vera(s: TunerSettings) -> PeftConfig:
    return VeraConfig(r=s.vera_rank, vera_dropout=s.dropout, **s.common)


def _boft(s: TunerSettings) -> PeftConfig:
    return BOFTConfig(boft_block_size=s.boft_block_size, boft_n_butterfly_factor=s.boft_n_butterfly_factor,
                      boft_dropout=s.dropout, **s.common)


def _fourierft(s: TunerSettings) -> PeftConfig:
    return FourierFTConfig(n_frequency=s.fourier_n_frequency, scaling=s.fourier_scaling, **s.common)


def _bone(s: TunerSettings) -> PeftConfig:
    # peft renamed Bone to MiSS; --lora_rank is its block size r.
    return MissConfig(r=s.rank, **s.common)


PEFT_TUNERS: dict[str, Callable[[TunerSettings], PeftConfig]] = {
    'lora': _lora, 'qlora': _lora, 'vera': _vera, 'boft': _boft, 'fourierft': _fourierft, 'bone': _bone,
}
