"""LLM RLHF: ``swift rlhf`` with the alignment algorithm to run (ms-swift's page leaves PPO to scripts)."""
from ..page import Field, Page

PAGE = Page(
    key='rlhf', en='LLM RLHF', zh='LLM人类对齐', commands=('rlhf',),
    fields=[
        Field('rlhf_type', 'dpo', ('dpo', 'orpo', 'cpo', 'simpo', 'kto', 'rm', 'grpo', 'gkd'), en='algorithm',
              zh='对齐算法'),
        Field('model', en='model id or folder', zh='模型 id 或目录'),
        Field('dataset', en='files or ids, space separated', zh='数据集，空格分隔'),
        Field('train_type', 'lora', ('lora', 'dora', 'qlora', 'full'), en='tuner', zh='训练方式'),
        Field('learning_rate', en='learning rate', zh='学习率'),
        Field('num_train_epochs', en='epochs', zh='训练轮数'),
        Field('beta', en='empty: the algorithm default', zh='beta，留空使用默认值'),
        Field('reward_funcs', en='GRPO: reward functions', zh='GRPO 奖励函数'),
        Field('output_dir', 'output', en='runs go to <output_dir>/vN-<date>', zh='输出目录'),
    ],
    metrics=('loss', 'learning_rate', 'reward', 'rewards/margins', 'rewards/accuracies'))
