from .base import InferEngine
from .pt_engine import PtEngine
