"""``--optimizer muon``: torch's Muon on the 2-D weight matrices, AdamW on the rest (embeddings, output head, norms,
biases), as ms-swift's plugin splits them, stepped as one optimizer so transformers' scheduler and checkpoints
see every parameter group."""
import torch
from torch.optim import AdamW, Optimizer

from ..utils import SwiftError

HEAD_NAMES = ('embed_tokens', 'lm_head', 'wte', 'score')


class MuonWithAdamW(Optimizer):
    """Two torch optimizers behind one: ``param_groups`` are theirs (Muon's first), so a scheduler sets both."""

    def __init__(self, muon: Optimizer, adamw: Optimizer):
        self.optimizers = [muon, adamw]
        super().__init__([group for opt in self.optimizers for group in opt.param_groups], {})
        # Keep the inner groups themselves: the learning rate a scheduler writes must reach the inner optimizers.
        self.param_groups = [group for opt in self.optimizers for group in opt.param_groups]

    @property
    def state(self):
        return {key: value for opt in self.optimizers for key, value in opt.state.items()}

    @state.setter
    def state(self, value):  # Optimizer.__init__ assigns it
        pass

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for opt in self.optimizers:
            opt.step()
        return loss

    def zero_grad(self, set_to_none: bool = True):
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {'muon': self.optimizers[0].state_dict(), 'adamw': self.optimizers[1].state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.optimizers[0].load_state_dict(state_dict['muon'])
        self.optimizers[1].load_state_dict(state_dict['adamw'])


def muon_optimizer(model, lr: float, weight_decay: float, betas: tuple[float, float], eps: float) -> Optimizer:
    if not hasattr(torch.optim, 'Muon'):
        raise SwiftError('--optimizer muon needs torch.optim.Muon (torch >= 2.9)')
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    matrices = [p for name, p in trainable if p.ndim == 2 and not any(key in name for key in HEAD_NAMES)]
    chosen = {id(p) for p in matrices}
    rest = [p for _, p in trainable if id(p) not in chosen]
    if not matrices:
        raise SwiftError('--optimizer muon: no trainable 2-D weight matrix to optimize')
    muon = torch.optim.Muon(matrices, lr=lr, weight_decay=weight_decay, adjust_lr_fn='match_rms_adamw')
    adamw = AdamW(rest or [torch.nn.Parameter(torch.zeros(0))], lr=lr, betas=betas, eps=eps,
                  weight_decay=weight_decay)
    return MuonWithAdamW(muon, adamw)
