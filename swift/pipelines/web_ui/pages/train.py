"""LLM PT/SFT: ``swift sft`` or ``swift pt`` (the train stage), with the flags most runs set."""
from ..page import Field, Page

PAGE = Page(
    key='train', en='LLM PT/SFT', zh='LLM预训练/微调', commands=('sft', 'pt'),
    fields=[
        Field('model', en='model id or folder', zh='模型 id 或目录'),
        Field('dataset', en='files or ids, space separated', zh='数据集，空格分隔'),
        Field('train_type', 'lora', ('lora', 'dora', 'qlora', 'full'), en='tuner', zh='训练方式'),
        Field('learning_rate', en='empty: 1e-4 (LoRA), 1e-5 (full)', zh='学习率'),
        Field('num_train_epochs', en='epochs', zh='训练轮数'),
        Field('per_device_train_batch_size', en='batch size', zh='批大小'),
        Field('max_length', en='tokens per row', zh='最大长度'),
        Field('lora_rank', en='LoRA rank', zh='LoRA 秩'),
        Field('output_dir', 'output', en='runs go to <output_dir>/vN-<date>', zh='输出目录'),
    ],
    metrics=('loss', 'learning_rate', 'grad_norm'))
