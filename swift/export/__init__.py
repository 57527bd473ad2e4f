from .merge import merge_adapters, save_model_atomically
