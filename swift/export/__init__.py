from .merge import merge_adapters, save_model_atomically
from .ollama import write_modelfile
from .quantize import CALIBRATED_METHODS, quantize_model
