"""BERT-style encoders, for sequence classification (ms-swift's demo_bert): no chat template, their own framing."""
from ..registry import ModelMeta, register_model

register_model(ModelMeta('bert', config_model_types=['bert'], template='bert', is_encoder=True))
