"""BERT-style encoders (ms-swift's ``bert`` template): [CLS], then each turn closed by [SEP]; no chat roles."""
from ..base import TemplateMeta
from ..registry import register_template

register_template(TemplateMeta(
    'bert',
    prefix='[CLS]',
    system_format='{{SYSTEM}}[SEP]',
    user_format='{{QUERY}}[SEP]',
    response_end='[SEP]',
))
