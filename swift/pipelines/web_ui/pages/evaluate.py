"""LLM Evaluation: ``swift eval`` on EvalScope, over a local model or a served one (--eval_url)."""
from ..page import Field, Page

PAGE = Page(
    key='eval', en='LLM Evaluation', zh='LLM评测', commands=('eval',),
    fields=[
        Field('model', en='model id or folder', zh='模型 id 或目录'),
        Field('adapters', en='LoRA checkpoints', zh='LoRA 检查点'),
        Field('eval_backend', 'Native', ('Native', 'OpenCompass', 'VLMEvalKit'), en='evaluation backend',
              zh='评测后端'),
        Field('eval_dataset', en='benchmarks or local sets, space separated', zh='评测数据集，空格分隔'),
        Field('eval_limit', en='rows per dataset', zh='每个数据集的样本数'),
        Field('eval_url', en='a served model instead of --model', zh='已部署模型的地址'),
        Field('eval_output_dir', 'eval_output', en='where the report goes', zh='评测输出目录'),
    ])
