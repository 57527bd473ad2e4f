"""Extract every flag of ms-swift's Command-line-parameters page, with its type, choices and default as ms-swift's
argument dataclasses declare them, into tests/data/ms_swift_flags.json.

    python scripts/ms_swift_flags.py GIT_DIR [--commit SHA] [--out tests/data/ms_swift_flags.json]

GIT_DIR is a clone (or bare mirror) of github.com/modelscope/ms-swift; nothing is imported from it: the page is read
with ``git show`` and the dataclasses are read with ``ast``. Fields that ms-swift inherits from transformers'
(Seq2Seq)TrainingArguments come from the transformers installed here (ms-swift pins an older one: see
``hf_fields_from`` in the output).

A flag is a top-level or nested bullet ``- name: ...`` (a 🔥 may precede the name) whose name starts with a lowercase
letter; the upper-case bullets of 'Specific Model Arguments' and 'Other Environment Variables' are environment
variables, not flags. A name listed in several sections is one entry: ``section`` is the first, ``sections`` all.

``commands``: the ms-swift commands whose arguments class (the ``args_class`` of its pipeline) has the field; a flag
documented but declared in no class gets the commands of its section. ``example``: one valid value as a shell string
(``shlex.split`` gives the argv tokens): a boolean is the opposite of its default (``true`` when unset), so the test
exercises the flag; a flag with choices takes its default when that is a choice, else the first choice valid for every
command; a number takes its default; anything else a value of its type (EXAMPLES below when the type says too little).
"""
import argparse
import ast
import dataclasses
import enum
import importlib
import inspect
import json
import re
import subprocess
import sys
import typing
from pathlib import Path

PAGE = 'docs/source_en/Instruction/Command-line-parameters.md'
SOURCES = ('swift/arguments', 'swift/trainers/arguments.py', 'swift/rlhf_trainers/args_mixin.py',
           'swift/ray_utils/arguments.py', 'swift/megatron/arguments')

# ms-swift command -> its pipeline's args_class (swift/cli/*.py and swift/pipelines/*: SwiftPipeline.args_class).
# merge-lora parses ExportArguments, as export does, and is left out as a duplicate. sft comes first: a flag's
# type, default and choices are those of its first command (other commands' differences are in by_command).
COMMANDS = {
    'sft': 'SftArguments', 'pt': 'PretrainArguments', 'rlhf': 'RLHFArguments', 'infer': 'InferArguments',
    'deploy': 'DeployArguments', 'app': 'AppArguments', 'export': 'ExportArguments', 'rollout': 'RolloutArguments',
    'eval': 'EvalArguments', 'sample': 'SamplingArguments', 'web-ui': 'WebUIArguments',
    'megatron': 'MegatronRLHFArguments',  # megatron sft/pt/rlhf/export: the union is close enough for a flag list
}
TRAIN = ['pt', 'sft', 'rlhf']
INFER = ['infer', 'deploy', 'app', 'rollout', 'eval']
ALL = TRAIN + INFER + ['export', 'sample']
# Commands of a section, for flags that no arguments class declares (documented only).
SECTION_COMMANDS = {
    'Base Arguments': ALL, 'Model Arguments': ALL, 'Data Arguments': ALL, 'Template Arguments': ALL,
    'Generation Arguments': ALL, 'Quantization Arguments': ALL, 'RAY Arguments': ALL,
    'Seq2SeqTrainer Arguments': TRAIN, 'Tuner Arguments': TRAIN, 'Full Arguments': TRAIN, 'LoRA': TRAIN,
    'LoRA-GA': TRAIN, 'FourierFt': TRAIN, 'BOFT': TRAIN, 'Vera': TRAIN, 'GaLore': TRAIN, 'LISA': TRAIN,
    'UNSLOTH': TRAIN, 'LLAMAPRO': TRAIN, 'AdaLoRA': TRAIN, 'ReFT': TRAIN, 'Training Arguments': TRAIN,
    'SWANLAB': TRAIN, 'vLLM Arguments': INFER, 'SGLang Arguments': INFER, 'LMDeploy Arguments': INFER,
    'Merge Arguments': ['infer', 'export'], 'RLHF Arguments': ['rlhf'], 'GKD Arguments': ['rlhf'],
    'Reward/Teacher Model Parameters': ['rlhf'], 'PPO Arguments': ['rlhf'], 'GRPO Arguments': ['rlhf'],
    'Reward function parameters': ['rlhf'], 'Inference Arguments': INFER, 'Deployment Arguments': INFER[1:],
    'Rollout Arguments': ['rollout'], 'Web-UI Arguments': ['web-ui', 'app'], 'App Arguments': ['app'],
    'Evaluation Arguments': ['eval'], 'Export Arguments': ['export'], 'Sampling Parameters': ['sample'],
}
# The rlhf algorithm a section's flags belong to: the test parses them under that --rlhf_type.
SECTION_RLHF_TYPE = {'GKD Arguments': 'gkd', 'PPO Arguments': 'ppo', 'GRPO Arguments': 'grpo',
                     'Reward function parameters': 'grpo'}
NAME_RLHF_TYPE = {'teacher_': 'gkd', 'offload_teacher_model': 'gkd', 'reward_': 'ppo'}
# Flags of the general 'RLHF Arguments' section that the page ties to some algorithms.
FLAG_RLHF_TYPE = {'cpo_alpha': 'cpo', 'simpo_gamma': 'simpo', 'desirable_weight': 'kto', 'undesirable_weight': 'kto',
                  'center_rewards_coefficient': 'rm', 'max_completion_length': 'grpo', 'min_p': 'grpo'}
# Generation flags that rlhf reads for rollouts only ('used in PPO, GRPO and GKD'), and vLLM's (GRPO's colocate mode).
ROLLOUT_FLAGS = ('temperature', 'top_k', 'top_p', 'repetition_penalty', 'max_new_tokens', 'stop_words')

# Examples where the type alone gives no valid value (a path, a name from a registry, a JSON shape).
EXAMPLES = {
    'model': 'Qwen/Qwen2.5-0.5B-Instruct', 'adapters': 'output/v0/checkpoint-1', 'ref_model': 'ref/model',
    'ref_adapters': 'output/v0/checkpoint-1', 'reward_model': 'reward/model', 'teacher_model': 'teacher/model',
    'reward_adapters': 'output/v0/checkpoint-1', 'teacher_adapters': 'output/v0/checkpoint-1',
    'model_type': 'qwen2_5', 'ref_model_type': 'qwen2_5', 'reward_model_type': 'qwen2_5',
    'teacher_model_type': 'qwen2_5', 'template': 'qwen2_5', 'model_revision': 'master',
    'ref_model_revision': 'master', 'reward_model_revision': 'master', 'teacher_model_revision': 'master',
    'dataset': 'data.jsonl', 'val_dataset': 'val.jsonl', 'cached_dataset': 'cache/train',
    'cached_val_dataset': 'cache/val', 'external_plugins': 'plugin.py', 'custom_dataset_info': 'dataset_info.json',
    'system': "'You are a helpful assistant.'", 'model_name': "小黄 'Xiao Huang'", 'model_author': "魔搭 ModelScope",
    'columns': '\'{"question": "query"}\'', 'model_kwargs': '\'{"fps_max_frames": 12}\'',
    'rope_scaling': 'linear', 'device_map': 'auto', 'max_memory': '\'{"0": "20GB"}\'',
    'new_special_tokens': '\'<tool>\'', 'stop_words': "'Observation:'", 'loss_scale': 'last_round',
    'agent_template': 'hermes', 'response_prefix': "'<think>'", 'hub_token': 'hf_xxx', 'local_repo_path': 'repo',
    'target_modules': 'q_proj v_proj', 'target_regex': "'.*(q_proj|v_proj)$'", 'target_parameters': 'experts',
    'modules_to_save': 'lm_head', 'freeze_parameters': 'model.embed_tokens', 'freeze_parameters_regex': "'^model'",
    'trainable_parameters': 'lm_head', 'trainable_parameters_regex': "'lm_head'", 'galore_target_modules': 'q_proj',
    'reft_layers': '1 2', 'reft_args': '\'{"dropout": 0.05}\'', 'output_dir': 'output/run',
    'logging_dir': 'output/run/runs', 'resume_from_checkpoint': 'output/v0/checkpoint-1',
    'deepspeed': 'zero2', 'fsdp': 'fsdp2', 'report_to': 'tensorboard', 'hub_model_id': 'user/name',
    'lr_scheduler_kwargs': '\'{"min_lr": 1e-6}\'', 'gradient_checkpointing_kwargs': '\'{"use_reentrant": false}\'',
    'optim': 'adamw_torch', 'optim_args': "'rank=8'", 'optimizer': 'muon', 'loss_type': 'sigmoid',
    'eval_metric': 'nlg', 'callbacks': 'early_stop', 'mrl_dims': '\'{"64": 1.0}\'', 'metric_for_best_model': 'loss',
    'eval_dataset': 'gsm8k', 'eval_dataset_args': '\'{"gsm8k": {"few_shot_num": 0}}\'',
    'eval_generation_config': '\'{"max_tokens": 512}\'', 'extra_eval_args': '{}', 'reward_funcs': 'accuracy format',
    'reward_model_plugin': 'genrm', 'multi_turn_scheduler': 'thinking_tips_scheduler', 'gym_env': 'math_env',
    'vllm_server_host': '127.0.0.1', 'vllm_server_base_url': 'http://127.0.0.1:8000',
    'vllm_limit_mm_per_prompt': '\'{"image": 5}\'', 'vllm_speculative_config': '\'{"method": "ngram"}\'',
    'vllm_engine_kwargs': '\'{"seed": 0}\'', 'vllm_quantization': 'fp8', 'vllm_reasoning_parser': 'deepseek_r1',
    'sglang_quantization': 'fp8', 'teacher_model_server': 'http://127.0.0.1:8000', 'teacher_deepspeed': 'zero2',
    'result_path': 'result.jsonl', 'served_model_name': 'my-model', 'api_key': 'sk-xxx', 'host': '127.0.0.1',
    'base_url': 'http://127.0.0.1:8000/v1', 'studio_title': 'chat', 'server_name': '127.0.0.1',
    'eval_output_dir': 'eval_output', 'eval_url': 'http://127.0.0.1:8000/v1', 'mcore_model': 'mcore',
    'mcore_adapter': 'mcore-lora', 'prm_model': 'prm/model', 'orm_model': 'math', 'output_file': 'out.jsonl',
    'cache_files': 'cache.jsonl', 'engine_kwargs': '{}', 'data_range': '0 3', 'device_groups': '{}',
    'ray_exp_name': 'exp', 'swanlab_token': 'xxx', 'swanlab_project': 'ms-swift', 'swanlab_workspace': 'me',
    'swanlab_exp_name': 'exp', 'swanlab_webhook_url': 'http://example.com/hook', 'swanlab_secret': 'xxx',
    'commit_message': "'update files'", 'init_weights': 'gaussian', 'galore_proj_type': 'std',
    'lr_scheduler_type': 'cosine', 'tuner_type': 'lora', 'rlhf_type': 'dpo', 'max_shard_size': '5GB',
    'ddp_timeout': '18000000', 'reward_weights': '1.0', 'loss_weights': '1.0', 'interleave_prob': '0.5',
    'problem_type': 'regression', 'lora_dtype': 'bfloat16', 'bnb_4bit_quant_storage': 'uint8',
    'quant_bits': '4', 'hqq_axis': '0', 'structured_outputs_regex': "'[0-9]+'", 'scale_rewards': 'group',
    'teacher_tag_key': 'dataset', 'num_labels': '2', 'vllm_mode': 'colocate', 'acc_strategy': 'token',
    'test_convert_dtype': 'float32', 'template_mode': 'train', 'sampler_type': 'sample', 'lang': 'en',
    'ddp_backend': 'gloo', 'attn_impl': 'sdpa', 'experts_impl': 'eager', 'eval_strategy': 'steps',
    'sglang_speculative_algorithm': 'EAGLE', 'swanlab_notification_method': 'dingtalk', 'max_length': '2048',
    'max_model_len': '8192', 'max_pixels': '1003520', 'packing_length': '2048', 'vllm_max_model_len': '8192',
    'sglang_context_length': '8192', 'max_new_tokens': '512', 'cosine_max_len': '512', 'soft_max_length': '512',
    'soft_cache_length': '64', 'learning_rate': '1e-4', 'vit_lr': '1e-5', 'aligner_lr': '1e-5', 'top_k': '50',
    'top_p': '0.9', 'repetition_penalty': '1.05', 'temperature': '0.7', 'top_logprobs': '5', 'save_total_limit': '2',
    'eval_steps': '50', 'neftune_noise_alpha': '5', 'lorap_lr_ratio': '16', 'gradient_accumulation_steps': '1',
    'dataloader_num_workers': '1', 'dataloader_prefetch_factor': '2', 'max_epochs': '1',
    # GRPO batches hold whole groups: 8 rows per device fit the default --num_generations 8
    'per_device_train_batch_size': '8', 'per_device_eval_batch_size': '8',
}


def git(git_dir: str, *args: str) -> str:
    return subprocess.run(['git', '-C', git_dir, *args], check=True, capture_output=True, text=True).stdout


# ---------------------------------------------------------------- the page
BULLET = re.compile(r'^(\s*)- (?:🔥)?([a-z][A-Za-z0-9_]*)\s*(\([^)]*\))?\s*[:：]\s*(.*)$')
DOC_DEFAULT = re.compile(r'[Dd]efault(?:s| value)?(?: is| to| value is|:)?\s*(?:set to\s*)?(.+?)(?:\.(?:\s|$)|;|,|$)')


def read_page(text: str) -> list[dict]:
    occurrences, section = [], None
    for lineno, line in enumerate(text.split('\n'), 1):
        if line.startswith('#'):
            section = line.lstrip('#').strip()
            continue
        m = BULLET.match(line)
        if m:
            description = (m.group(3) or '') + ' ' + m.group(4)
            found = DOC_DEFAULT.search(description)
            occurrences.append({'name': m.group(2), 'section': section, 'line': lineno,
                                'doc_default': found.group(1).strip() if found else None})
    return occurrences


# ---------------------------------------------------------------- the dataclasses
class Classes:
    """ms-swift's argument dataclasses read with ast; bases outside ms-swift (transformers') are imported."""

    def __init__(self, git_dir: str, commit: str):
        self.local: dict[str, dict] = {}
        files = git(git_dir, 'ls-tree', '-r', '--name-only', commit, '--', *SOURCES).split()
        for path in files:
            if path.endswith('.py'):
                self._read_module(git(git_dir, 'show', f'{commit}:{path}'), path)

    def _read_module(self, source: str, path: str) -> None:
        tree = ast.parse(source)
        imports = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    imports[alias.asname or alias.name] = (node.module, alias.name)
        for node in tree.body:
            if not isinstance(node, ast.ClassDef):
                continue
            fields = {}
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    fields[stmt.target.id] = self._field(stmt)
            bases = []
            for base in node.bases:
                name = ast.unparse(base)
                module = imports.get(name)
                external = module and not module[0].startswith('swift')
                bases.append(('ext', *module) if external else ('local', name.split('.')[-1]))
            self.local[node.name] = {'bases': bases, 'fields': fields, 'path': path}

    @staticmethod
    def _field(stmt: ast.AnnAssign) -> dict:
        annotation = ast.unparse(stmt.annotation)
        value = stmt.value
        if value is None:
            return {'annotation': annotation, 'default': None, 'required': True}
        if isinstance(value, ast.Call) and ast.unparse(value.func) in ('field', 'dataclasses.field'):
            kwargs = {k.arg: k.value for k in value.keywords}
            if 'default' in kwargs:
                value = kwargs['default']
            elif 'default_factory' in kwargs:
                factory = kwargs['default_factory']
                value = factory.body if isinstance(factory, ast.Lambda) else ast.Call(factory, [], [])
            else:
                return {'annotation': annotation, 'default': None, 'required': True}
        return {'annotation': annotation, **_literal(value)}

    def mro(self, name: str) -> list:
        """C3 linearization over local class names and imported classes."""
        return _c3(('local', name), self._bases)

    def _bases(self, node) -> list:
        if node[0] == 'local':
            return [b if b[0] == 'ext' or b[1] in self.local else ('missing', b[1])
                    for b in self.local[node[1]]['bases']]
        if node[0] == 'ext':
            cls = getattr(importlib.import_module(node[1]), node[2])
            return [('py', b) for b in cls.__bases__ if b is not object]
        if node[0] == 'py':
            return [('py', b) for b in node[1].__bases__ if b is not object]
        return []

    def fields(self, name: str) -> dict[str, dict]:
        """Every init field of class ``name``: the declaration of the first class in its MRO that declares it."""
        result = {}
        for node in self.mro(name):
            declared = self._declared(node)
            for field_name, info in declared.items():
                result.setdefault(field_name, {**info, 'declared_in': _node_name(node)})
        return result

    def _declared(self, node) -> dict:
        if node[0] == 'local':
            return self.local[node[1]]['fields']
        cls = getattr(importlib.import_module(node[1]), node[2]) if node[0] == 'ext' else node[1] \
            if node[0] == 'py' else None
        if cls is None or not dataclasses.is_dataclass(cls):
            return {}
        own = inspect.get_annotations(cls)
        hints = typing.get_type_hints(cls)
        out = {}
        for f in dataclasses.fields(cls):
            if f.name in own and f.init:
                out[f.name] = {'annotation': _type_name(hints.get(f.name, f.type)), **_py_default(f),
                               'hf_type': hints.get(f.name, f.type)}
        return out


def _node_name(node) -> str:
    if node[0] == 'local':
        return node[1]
    if node[0] == 'ext':
        return f'{node[1]}.{node[2]}'
    if node[0] == 'py':
        return f'{node[1].__module__}.{node[1].__qualname__}'
    return node[1]


def _c3(node, bases_of) -> list:
    bases = bases_of(node)
    seqs = [_c3(b, bases_of) for b in bases] + [list(bases)]
    result = [node]
    while any(seqs):
        for seq in seqs:
            if not seq:
                continue
            head = seq[0]
            if not any(head in s[1:] for s in seqs):
                break
        else:
            raise ValueError(f'inconsistent MRO for {node}')
        result.append(head)
        seqs = [s[1:] if s and s[0] == head else s for s in seqs]
    return result


def _literal(node: ast.AST) -> dict:
    try:
        return {'default': ast.literal_eval(node)}
    except ValueError:
        pass
    if isinstance(node, ast.Call) and ast.unparse(node.func) in ('list', 'dict') and not node.args:
        return {'default': [] if ast.unparse(node.func) == 'list' else {}}
    return {'default': ast.unparse(node), 'default_is_expr': True}


def _py_default(f: dataclasses.Field) -> dict:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return {'default': None, 'required': True}
    if isinstance(value, enum.Enum):
        value = value.value
    try:
        json.dumps(value)
        return {'default': value}
    except TypeError:
        return {'default': repr(value), 'default_is_expr': True}


def _type_name(tp) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return re.sub(r'\b(typing|transformers\.[\w.]+)\.', '', str(tp)).replace('NoneType', 'None')


# ---------------------------------------------------------------- types of annotations
def describe(annotation: str, hf_type=None) -> dict:
    """kind (bool/int/float/str/json/list), element kind for lists, and choices, from an annotation."""
    if hf_type is not None:
        return _describe_py(hf_type)
    node = ast.parse(annotation, mode='eval').body
    return _describe_ast(node)


def _describe_ast(node) -> dict:
    if isinstance(node, ast.Constant) and node.value is None:
        return {'kind': 'none'}
    if isinstance(node, ast.Name) or isinstance(node, ast.Attribute):
        name = ast.unparse(node).split('.')[-1].lower()
        return {'kind': {'dict': 'json', 'any': 'str', 'list': 'list'}.get(name, name)}
    if isinstance(node, ast.BinOp):  # X | None
        return _merge([_describe_ast(node.left), _describe_ast(node.right)])
    if isinstance(node, ast.Subscript):
        head = ast.unparse(node.value).split('.')[-1]
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if head == 'Literal':  # Literal[..., None] is Optional: None is no choice on the command line
            return {'kind': 'str', 'choices': [v for v in map(ast.literal_eval, args) if v is not None]}
        if head in ('List', 'list', 'Tuple', 'tuple', 'Sequence'):
            return {'kind': 'list', 'item': _describe_ast(args[0])}
        if head in ('Dict', 'dict'):
            return {'kind': 'json'}
        if head in ('Optional', 'Union'):
            return _merge([_describe_ast(a) for a in args])
    return {'kind': 'str'}


def _describe_py(tp) -> dict:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None):
        return {'kind': 'none'}
    if origin is typing.Literal:
        return {'kind': 'str', 'choices': [a for a in args if a is not None]}
    if origin in (list, tuple):
        return {'kind': 'list', 'item': _describe_py(args[0]) if args else {'kind': 'str'}}
    if origin is dict or tp is dict:
        return {'kind': 'json'}
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return _merge([_describe_py(a) for a in args])
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {'kind': 'str', 'choices': [e.value for e in tp]}
    if isinstance(tp, type):
        return {'kind': {'dict': 'json'}.get(tp.__name__, tp.__name__)}
    return {'kind': 'str'}


def _merge(parts: list[dict]) -> dict:
    """Optional[X] is X; Union[dict, str] is a JSON string; Union[X, str] with choices keeps X's choices open."""
    parts = [p for p in parts if p['kind'] != 'none']
    if len(parts) == 1:
        return parts[0]
    kinds = {p['kind'] for p in parts}
    if 'json' in kinds:
        return {'kind': 'json'}
    if 'list' in kinds:
        return next(p for p in parts if p['kind'] == 'list')
    if kinds <= {'str', 'int', 'float', 'bool'}:
        for kind in ('str', 'float', 'int', 'bool'):  # HfArgumentParser takes the first type; str is the widest
            if kind in kinds:
                return {'kind': kind}
    return {'kind': 'str'}


# ---------------------------------------------------------------- examples
def _cli(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "'" + json.dumps(value) + "'"
    return str(value)


def example_for(name: str, info: dict, variants: list[dict]) -> str:
    kind = info['kind']
    default = info['default']
    if kind == 'bool':
        return 'false' if default is True else 'true'
    if name in EXAMPLES:
        return EXAMPLES[name]
    choices = [set(v['choices']) for v in variants if v.get('choices')]
    if info.get('choices'):
        common = [c for c in info['choices'] if all(c in s for s in choices)] or info['choices']
        return _cli(default if default in common else common[0])
    if kind == 'list':
        item = info.get('item', {'kind': 'str'})
        if default and not info.get('default_is_expr'):
            return ' '.join(_cli(v) for v in default)
        return {'int': '1', 'float': '1.0', 'bool': 'true'}.get(item['kind'], 'x')
    if info.get('default_is_expr') or default is None:
        return {'int': '1', 'float': '0.5', 'json': '{}'}.get(kind, 'x')
    if kind == 'json':
        return "'" + json.dumps(default) + "'"
    return _cli(default)


# ---------------------------------------------------------------- main
def build(git_dir: str, commit: str) -> dict:
    page = git(git_dir, 'show', f'{commit}:{PAGE}')
    occurrences = read_page(page)
    classes = Classes(git_dir, commit)
    command_fields = {cmd: classes.fields(cls) for cmd, cls in COMMANDS.items() if cls in classes.local}
    flags, by_name = [], {}
    for occ in occurrences:
        entry = by_name.get(occ['name'])
        if entry is None:
            entry = by_name[occ['name']] = {'name': occ['name'], 'section': occ['section'], 'sections': [],
                                            'lines': [], 'doc_defaults': []}
            flags.append(entry)
        if occ['section'] not in entry['sections']:
            entry['sections'].append(occ['section'])
        entry['lines'].append(occ['line'])
        if occ['doc_default'] and occ['doc_default'] not in entry['doc_defaults']:
            entry['doc_defaults'].append(occ['doc_default'])
    for entry in flags:
        name = entry['name']
        per_command = {}
        for cmd, fields in command_fields.items():
            if name in fields:
                f = fields[name]
                info = {**describe(f['annotation'], f.get('hf_type')), 'annotation': f['annotation'],
                        'default': f['default'], 'declared_in': f['declared_in']}
                if f.get('default_is_expr'):
                    info['default_is_expr'] = True
                per_command[cmd] = info
        entry['in_dataclass'] = bool(per_command)
        if per_command:
            commands = [c for c in COMMANDS if c in per_command]
            # megatron's classes inherit BaseArguments: 'megatron' only when nothing else declares the flag
            if len(commands) > 1 and 'megatron' in commands:
                commands.remove('megatron')
        else:
            commands = list(dict.fromkeys(c for s in entry['sections'] for c in SECTION_COMMANDS.get(s, ALL)))
        entry['commands'] = commands
        first = per_command.get(commands[0]) or {'kind': _guess_kind(entry), 'default': None,
                                                  'annotation': None}
        entry['type'] = first['annotation'] or first['kind']
        entry['kind'] = first['kind']
        if first['kind'] == 'list':
            entry['item'] = first.get('item', {'kind': 'str'})['kind']
        entry['default'] = first['default']
        entry['choices'] = first.get('choices')
        entry['declared_in'] = first.get('declared_in')
        variants = [per_command[c] for c in commands if c in per_command]
        differs = {c: {k: per_command[c].get(k) for k in ('annotation', 'default', 'choices')}
                   for c in commands if c in per_command
                   and (per_command[c]['annotation'], per_command[c]['default'], per_command[c].get('choices'))
                   != (first['annotation'], first['default'], first.get('choices'))}
        if differs:
            entry['by_command'] = differs
        entry['example'] = example_for(name, first, variants)
        # the algorithm of the flag's first section: a flag of the general sections that the GRPO section repeats
        # (beta, loss_type, per_device_train_batch_size) is tested under the default --rlhf_type
        first_section = entry['sections'][0]
        rlhf_type = SECTION_RLHF_TYPE.get(first_section)
        if first_section == 'Reward/Teacher Model Parameters':
            rlhf_type = next(t for prefix, t in NAME_RLHF_TYPE.items() if name.startswith(prefix))
        rlhf_type = FLAG_RLHF_TYPE.get(name, rlhf_type)
        if rlhf_type is None and (name in ROLLOUT_FLAGS or name.startswith('vllm_')):
            rlhf_type = 'grpo'
        if rlhf_type and 'rlhf' in commands:
            entry['rlhf_type'] = rlhf_type
    import transformers
    return {
        'commit': commit,
        'source': PAGE,
        'repository': 'https://github.com/modelscope/ms-swift',
        'hf_fields_from': f'transformers {transformers.__version__} (installed where this ran; ms-swift pins '
                          'an older one)',
        'commands': COMMANDS,
        'count': len(flags),
        'ms_swift3_names': [
            {'name': 'train_type', 'means': 'tuner_type', 'example': 'lora', 'commands': TRAIN,
             'note': "ms-swift 3's name for --tuner_type, used by the seeds"},
            {'name': 'infer_backend', 'value': 'pt', 'means': 'infer_backend transformers', 'example': 'pt',
             'commands': ['infer', 'deploy', 'app'], 'note': "ms-swift 3's name for the transformers backend"},
        ],
        'flags': flags,
    }


def _guess_kind(entry: dict) -> str:
    text = ' '.join(d for d in entry['doc_defaults'] if d)
    if re.search(r'\b(True|False|true|false)\b', text):
        return 'bool'
    return 'str'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('git_dir')
    parser.add_argument('--commit', default='HEAD')
    parser.add_argument('--out', default=str(Path(__file__).resolve().parents[1] / 'tests/data/ms_swift_flags.json'))
    args = parser.parse_args(argv)
    commit = git(args.git_dir, 'rev-parse', args.commit).strip()
    data = build(args.git_dir, commit)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, 'w', encoding='utf-8') as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write('\n')
    print(f"{data['count']} flags from {PAGE} at {commit[:7]} -> {args.out}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
