"""LLM Export: ``swift export``: merge a LoRA into its model, quantize, or both."""
from ..page import Field, Page

PAGE = Page(
    key='export', en='LLM Export', zh='LLM导出', commands=('export',),
    fields=[
        Field('model', en='model id or folder', zh='模型 id 或目录'),
        Field('adapters', en='LoRA checkpoints', zh='LoRA 检查点'),
        Field('merge_lora', '', ('', 'true', 'false'), en='merge the LoRA', zh='合并 LoRA'),
        Field('quant_method', '', ('', 'bnb', 'gptq', 'awq', 'fp8'), en='quantization', zh='量化方法'),
        Field('quant_bits', '', ('', '4', '8'), en='bits', zh='量化位数'),
        Field('output_dir', en='where the exported model goes', zh='导出目录'),
    ])
