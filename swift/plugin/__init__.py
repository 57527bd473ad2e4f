"""ms-swift's ``swift.plugin`` names that users import: ``from swift.plugin import InferStats``. A facade, like
``swift.llm``: nothing inside swift imports it."""
from ..infer.metrics import InferStats

__all__ = ['InferStats']
