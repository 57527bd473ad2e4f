"""LLM Inference: ``swift deploy`` (an OpenAI-compatible server, as ms-swift's page starts) or ``swift infer``
over a dataset."""
from ..page import Field, Page

PAGE = Page(
    key='infer', en='LLM Inference', zh='LLM推理', commands=('deploy', 'infer'),
    fields=[
        Field('model', en='model id or folder', zh='模型 id 或目录'),
        Field('adapters', en='LoRA checkpoints', zh='LoRA 检查点'),
        Field('infer_backend', 'transformers', ('transformers', 'vllm', 'sglang', 'lmdeploy'), en='engine',
              zh='推理引擎'),
        Field('max_new_tokens', en='answer length', zh='最大生成长度'),
        Field('temperature', en='0: greedy', zh='温度，0 为贪心'),
        Field('val_dataset', en='swift infer: rows to answer', zh='swift infer：要回答的数据集'),
    ])
