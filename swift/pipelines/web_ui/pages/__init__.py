"""The web UI's tabs, in ms-swift's order, one module each."""
from .evaluate import PAGE as EVALUATION
from .export import PAGE as EXPORT
from .infer import PAGE as INFERENCE
from .rlhf import PAGE as RLHF
from .train import PAGE as TRAIN

PAGES = [TRAIN, RLHF, INFERENCE, EXPORT, EVALUATION]
