from . import models  # noqa: F401  registers the built-in families
from .loader import (dtype_name, get_model_folder, get_model_tokenizer, load_processor, load_tokenizer,
                     resolve_torch_dtype)
from .quantization import bnb_config
from .registry import MODEL_REGISTRY, ModelMeta, ModelParts, detect_model_meta, register_model
