"""Run ms-swift's own example scripts against this build and write the conformance table.

    python scripts/ms_swift_examples.py [--only PATTERN]
        [--category text|seq_cls|embedding|reranker|agent|streaming|all]
        [--jobs 1] [--timeout 180] [--git-dir DIR] [--commit 3602360] [--table docs/conformance/examples.md] [--no-run]

Every ``*.sh`` under ``examples/`` of ms-swift's tree at ``--commit`` (the commit tests/data/ms_swift_flags.json came
from) is classified by folder and content: ``text`` scripts and those of the seq_cls, embedding, reranker and agent
folders and the streamed-dataset scripts are run here (``--category`` picks which); the others belong to another
open issue (multimodal, megatron, ...) or need hardware this build has not (``gpu-only``, ``npu``) and are listed
as not applicable with the reason.
Task scripts read task data: labelled rows (single-label, multi-label, regression), anchor/positive/negative rows,
query/document rows, agent rows with ``tools`` and ``tool_call``/``tool_response`` messages; their infer/deploy
scripts read a classification checkpoint trained here. BERT-like models (bert, bge/gte rerankers) become a tiny BERT
(swift/utils/tiny_bert.py). Each run script is adapted and nothing else: the models (``--model``,
``--teacher_model``, ``--ref_model``, ``--reward_model``, ``--adapters``, ...) become tiny local models built
offline by swift/utils/tiny_models.py, the datasets (``--dataset``, ``--val_dataset``) become small local jsonl files
in the format the command reads, step counts are cut (``--max_steps 2``, ``--save_steps``/``--eval_steps`` 2,
generation lengths 16), and ``pip install``/``git clone``/``wget`` lines are skipped (no network here). The
environment the script sets (``CUDA_VISIBLE_DEVICES``, ``NPROC_PER_NODE``, ...) is kept.

Results accumulate in build/ms_swift_examples/results.json, so ``--only`` re-runs a few scripts and the table is
rewritten from all results. Scripts run one at a time (``--jobs`` above 1 runs several at once).
"""
import argparse
import collections
import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import io

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(REPO, 'build', 'ms_swift_examples')
RESULTS = os.path.join(WORK, 'results.json')
TABLE = os.path.join(REPO, 'docs', 'conformance', 'examples.md')
# The list of scripts at the commit, checked in so the tests can tell the table covers all of them.
LISTING = os.path.join(REPO, 'tests', 'data', 'ms_swift_examples.txt')
DEFAULT_COMMIT = '3602360'
DEFAULT_GIT_DIR = '/work/.mirror/modelscope+ms-swift/repo'

# Folders another open issue owns, or that need hardware or services this build has not: (prefix, category, reason).
FOLDERS = [
    ('examples/megatron/', 'megatron', 'Megatron-LM training: owned by the megatron issue'),
    ('examples/yaml/megatron/', 'megatron', 'Megatron-LM training: owned by the megatron issue'),
    ('examples/train/flash_attention_3/mcore', 'megatron', 'Megatron-LM training: owned by the megatron issue'),
    ('examples/train/cached_dataset/mcore', 'megatron', 'Megatron-LM training: owned by the megatron issue'),
    ('examples/ascend/', 'npu', 'Ascend NPU only'),
    ('examples/train/multimodal/', 'multimodal', 'multimodal models: owned by the multimodal issue'),
    ('examples/models/', 'multimodal', 'model-specific multimodal/MoE recipes: owned by the multimodal issue'),
    ('examples/eval/vlm', 'multimodal', 'multimodal evaluation: owned by the multimodal and eval issues'),
    ('examples/app/mllm', 'multimodal', 'multimodal web app: owned by the multimodal and app issues'),
    ('examples/train/seq_cls/', 'seq_cls', 'sequence classification: owned by the seq_cls issue'),
    ('examples/deploy/seq_cls/', 'seq_cls', 'sequence classification: owned by the seq_cls issue'),
    ('examples/deploy/bert/', 'seq_cls', 'BERT classification deploy: owned by the seq_cls issue'),
    ('examples/infer/transformers/bert', 'seq_cls', 'BERT classification inference: owned by the seq_cls issue'),
    ('examples/export/quantize/bert/', 'seq_cls', 'BERT classification quantization: owned by the seq_cls issue'),
    ('examples/train/cached_dataset/seq_cls', 'seq_cls', 'sequence classification: owned by the seq_cls issue'),
    ('examples/train/embedding/', 'embedding', 'embedding models: owned by the embedding issue'),
    ('examples/deploy/embedding/', 'embedding', 'embedding models: owned by the embedding issue'),
    ('examples/train/reranker/', 'reranker', 'rerankers: owned by the reranker issue'),
    ('examples/deploy/reranker/', 'reranker', 'rerankers: owned by the reranker issue'),
    ('examples/train/cached_dataset/reranker', 'reranker', 'rerankers: owned by the reranker issue'),
    ('examples/train/agent/', 'agent', 'agent training: owned by the agent issue'),
    ('examples/deploy/agent/', 'agent', 'agent deploy: owned by the agent issue'),
    ('examples/train/grpo/external/agent', 'agent', 'agent GRPO: owned by the agent issue'),
    ('examples/eval/', 'eval', 'swift eval: owned by the eval issue'),
    ('examples/sampler/', 'sampler', 'swift sample: owned by the sampler issue'),
    ('examples/app/', 'app/web-ui', 'swift app: owned by the app/web-ui issue'),
    ('examples/train/multi-gpu/', 'multi-gpu', 'multi-GPU parallelism: owned by the multi-gpu issue'),
    ('examples/train/all_to_all/', 'multi-gpu', 'all-to-all expert parallelism: owned by the multi-gpu issue'),
    ('examples/train/multi-node/', 'multi-node', 'several machines: owned by the multi-node issue'),
    ('examples/train/grpo/multi_node/', 'multi-node', 'several machines: owned by the multi-node issue'),
    ('examples/ray/', 'multi-node', 'Ray clusters: owned by the multi-node issue'),
    ('examples/train/streaming/', 'streaming', 'streamed datasets: owned by the streaming issue'),
    ('examples/train/packing/streaming', 'streaming', 'streamed datasets: owned by the streaming issue'),
    ('examples/train/sequence_parallel/', 'sequence parallel', 'sequence parallelism: owned by its issue'),
    ('examples/train/flash_attention_3/', 'gpu-only', 'FlashAttention-3 needs a Hopper GPU'),
    ('examples/train/tuners/unsloth/', 'gpu-only', 'unsloth needs a CUDA GPU'),
    ('examples/train/qlora/awq/', 'gpu-only', 'AWQ kernels need a CUDA GPU'),
    ('examples/train/qlora/gptq', 'gpu-only', 'GPTQ kernels need a CUDA GPU'),
    ('examples/train/grpo/internal/full_lmdeploy', 'gpu-only', 'LMDeploy needs a CUDA GPU'),
    ('examples/train/grpo/qwen2_5_omni/', 'multimodal', 'Qwen2.5-Omni: owned by the multimodal issue'),
    ('examples/export/push_to_hub', 'network', 'pushes to the ModelScope hub: no network here'),
]

# Content that puts a script elsewhere whatever its folder: (regex over the script, category, reason).
MULTIMODAL_MODELS = (r'VL\b|-VL|_vl|vl[0-9]|Omni|omni|InternVL|llava|MiniCPM-V|Ovis|GLM-4\.\dV|Kimi-VL|multimodal|'
                     r'deepseek-vl|OCR|Keye|Qwen3\.5|gemma-3|Phi-4-multimodal|qwen2_5_omni|dpo_vlm|_vlm\b|/vlm')
CONTENT = [
    (r'^\s*megatron\s', 'megatron', 'Megatron-LM training: owned by the megatron issue'),
    (r'--task_type\s+seq_cls|--num_labels', 'seq_cls', 'sequence classification: owned by the seq_cls issue'),
    (r'--task_type\s+embedding', 'embedding', 'embedding models: owned by the embedding issue'),
    (r'--task_type\s+(generative_)?reranker', 'reranker', 'rerankers: owned by the reranker issue'),
    (r'--model\s+\S*(' + MULTIMODAL_MODELS + r')', 'multimodal', 'a multimodal model: owned by the multimodal issue'),
    (r'--dataset\s[^\n]*(LaTeX_OCR|coco|image|video|audio|mm-|-vl|_vl|vqa|VQA|clevr|geoqa|deepeyes)', 'multimodal',
     'a multimodal dataset: owned by the multimodal issue'),
    (r'--sequence_parallel_size\s+([2-9]|\d\d)', 'sequence parallel', 'sequence parallelism: owned by its issue'),
    (r'--streaming\s+true', 'streaming', 'streamed datasets: owned by the streaming issue'),
    (r'--infer_backend\s+(vllm|sglang|lmdeploy)|--use_vllm\s+true|swift\s+rollout|--vllm_server_host|'
     r'--teacher_model_server', 'gpu-only', 'vLLM/SGLang/LMDeploy engines at GPU scale; '
     "not run in this CPU table (vLLM's CPU build is exercised by tests/vllm)"),
    (r'--quant_method\s+(awq|gptq|gptq_v2|fp8)|--quant_bits\s+\d[^\n]*\n[^\n]*--quant_method\s+(awq|gptq)|'
     r'/qlora/(awq|gptq)', 'gpu-only', 'AWQ/GPTQ/FP8 quantization kernels need a CUDA GPU'),
    (r'--fp8_recipe|--fp8\s', 'gpu-only', 'FP8 training needs a Hopper GPU'),
    (r'--galore_quantization\s+true', 'gpu-only', 'Q-GaLore needs the q-galore-torch CUDA kernels'),
    (r'NNODES=\s*\$?\w*[2-9]|--nnodes\s+[2-9]|NODE_RANK=', 'multi-node', 'several machines: owned by the multi-node '
     'issue'),
    (r'swift\s+eval\b', 'eval', 'swift eval: owned by the eval issue'),
    (r'swift\s+sample\b', 'sampler', 'swift sample: owned by the sampler issue'),
    (r'swift\s+(app|web-ui)\b', 'app/web-ui', 'swift app: owned by the app/web-ui issue'),
]


# Why a script fails, where the last error line does not tell it all (checked by hand against ms-swift's source and
# the libraries here).
FAILURE_NOTES = {
    'examples/train/plugins/loss_scale.sh': "ms-swift at this commit fails too: its loss_map has no 'loss_scale' "
                                             '(KeyError)',
    'examples/train/qlora/hqq.sh': 'transformers 5 cannot load HQQ models yet (its quantizer raises '
                                   'NotImplementedError, tried with hqq 0.2.8)',
    'examples/custom/sft.sh': "its plugins register a model, template and dataset through ms-swift 4's "
                              'swift.model/swift.template/swift.dataset registration API, not built here',
}


# Categories this build runs: the text scripts and the task folders whose features exist here (docs/tasks.md,
# docs/agent.md). A task-folder script whose content puts it elsewhere (a multimodal model, a vLLM server) goes there.
RUN_CATEGORIES = ('text', 'seq_cls', 'embedding', 'reranker', 'agent', 'streaming')
TASK_CATEGORIES = RUN_CATEGORIES[1:]
TASK_MULTIMODAL = (r'TextCaps|jina-reranker-m0|gme-|garbage265', 'multimodal',
                   'a multimodal model or dataset: owned by the multimodal issue')


# Why a listed script of a category whose feature exists here (eval, sample) is still not run: its own needs.
NOT_RUN_NOTES = {
    'examples/eval/eval_url/eval.sh': "evaluates a running server on OpenCompass' gsm8k, which it downloads (no "
                                      'network here)',
    'examples/eval/llm/sglang.sh': "SGLang engine on OpenCompass' gsm8k: a CUDA GPU and the hub's data",
    'examples/eval/llm/vllm.sh': "vLLM engine on OpenCompass' gsm8k: a CUDA GPU and the hub's data",
    'examples/eval/train_eval/train.sh': "evalscope's gsm8k during training: its data comes from the hub (no "
                                         'network here)',
    'examples/sampler/distill/distill.sh': 'distils from the qwen-max API (no network here)',
    'examples/sampler/sample/sample.sh': 'its sampling.yaml samples Qwen2.5-VL with vLLM on 4 GPUs',
}


def classify(path: str, text: str) -> tuple[str, str]:
    """(category, reason): scripts of RUN_CATEGORIES run here; any other category is listed with the reason."""
    code = '\n'.join(line for line in text.splitlines() if not line.lstrip().startswith('#'))
    for prefix, category, reason in FOLDERS:
        if path.startswith(prefix):
            return _elsewhere(code, path) or (category, reason) if category in TASK_CATEGORIES else (category, reason)
    for pattern, category, reason in CONTENT:
        if re.search(pattern, code, re.M):
            return _elsewhere(code, path) or (category, reason) if category in TASK_CATEGORIES else (category, reason)
    return 'text', ''


def _elsewhere(code: str, path: str = '') -> tuple[str, str] | None:
    """The category a task script's content gives it over its task: hardware or another issue's feature."""
    if re.search(MULTIMODAL_MODELS, path):  # e.g. seq_cls/qwen2_5_omni/infer.sh, which names no model
        return 'multimodal', 'a multimodal model: owned by the multimodal issue'
    for pattern, category, reason in [TASK_MULTIMODAL] + CONTENT:
        if category not in TASK_CATEGORIES and re.search(pattern, code, re.M):
            return category, reason
    return None


# ---------------------------------------------------------------- the tree at the commit

def example_scripts(git_dir: str, commit: str) -> dict[str, str]:
    """Every ``examples/**/*.sh`` at ``commit``: path -> text."""
    listing = subprocess.run(['git', f'--git-dir={git_dir}', 'ls-tree', '-r', '--name-only', commit, 'examples'],
                             capture_output=True, text=True, check=True).stdout.split()
    scripts = {}
    for path in sorted(p for p in listing if p.endswith('.sh')):
        scripts[path] = subprocess.run(['git', f'--git-dir={git_dir}', 'show', f'{commit}:{path}'],
                                       capture_output=True, text=True, check=True).stdout
    return scripts


def resolve_commit(git_dir: str, wanted: str) -> tuple[str, str]:
    """(commit to use, note): ``wanted`` when the mirror has it, else its HEAD, said so in the note."""
    probe = subprocess.run(['git', f'--git-dir={git_dir}', 'rev-parse', '--verify', '--quiet', f'{wanted}^{{commit}}'],
                           capture_output=True, text=True)
    if probe.returncode == 0:
        return probe.stdout.strip(), f'ms-swift commit {probe.stdout.strip()[:9]} (the commit of ms_swift_flags.json)'
    head = subprocess.run(['git', f'--git-dir={git_dir}', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                          check=True).stdout.strip()
    return head, f'ms-swift commit {head[:9]} (HEAD: {wanted} is not in the mirror)'


def extract_examples(git_dir: str, commit: str, dest: str) -> None:
    """ms-swift's examples/ tree (plugins, prompts, configs the scripts name) under ``dest``."""
    if os.path.isdir(os.path.join(dest, 'examples')):
        return
    archive = subprocess.run(['git', f'--git-dir={git_dir}', 'archive', commit, 'examples'], capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter='data')


# ---------------------------------------------------------------- local models and data

QUESTIONS = [(f'What is {a} plus {b}?', str(a + b)) for a in range(1, 9) for b in range(1, 9)]


def _write_jsonl(path: str, rows: list[dict]) -> str:
    with open(path, 'w', encoding='utf-8') as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + '\n' for row in rows)
    return path


def build_datasets(folder: str) -> dict[str, str]:
    """Small local datasets in each format ms-swift's examples read."""
    os.makedirs(folder, exist_ok=True)
    chat = [[{'role': 'user', 'content': q}, {'role': 'assistant', 'content': f'The answer is {a}.'}]
            for q, a in QUESTIONS]
    rows = {
        'sft': [{'messages': m} for m in chat],
        'pref': [{'messages': m, 'rejected_response': 'I do not know.'} for m in chat],
        'kto': [{'messages': m, 'label': i % 2 == 0} for i, m in enumerate(chat)],
        'grpo': [{'messages': [{'role': 'user', 'content': q}], 'solution': a} for q, a in QUESTIONS],
    }
    rows.update(task_rows())
    return {name: _write_jsonl(os.path.join(folder, f'{name}.jsonl'), data) for name, data in rows.items()}


REVIEWS = [(f'{adjective} {thing}, I {verb} it.', label) for adjective, verb, label in
           (('Great', 'love', 1), ('Awful', 'hate', 0), ('Lovely', 'like', 1), ('Poor', 'regret', 0))
           for thing in ('phone', 'book', 'lamp', 'chair', 'bag', 'pen', 'cup', 'coat')]
TOOLS = json.dumps([{'type': 'function', 'function': {
    'name': 'add', 'description': 'Add two integers.', 'parameters': {
        'type': 'object', 'properties': {'a': {'type': 'integer'}, 'b': {'type': 'integer'}},
        'required': ['a', 'b']}}}])


def _user(text: str) -> list[dict]:
    return [{'role': 'user', 'content': text}]


def task_rows() -> dict[str, list[dict]]:
    """Rows of the task datasets, in the formats docs/tasks.md and docs/agent.md give (ms-swift's formats)."""
    # 160 queries: the reranker examples take batches of 64 rows and drop the last, partial one
    questions = [(f'What is {a} plus {b}?', str(a + b)) for a in range(1, 21) for b in range(1, 9)]
    answer = {q: f'The answer is {a}.' for q, a in questions}
    other = [answer[q] for q, _ in questions]
    docs = [(q, answer[q], other[(i + 1) % len(other)], other[(i + 5) % len(other)])
            for i, (q, _) in enumerate(questions)]
    return {
        'cls': [{'messages': _user(text), 'label': label} for text, label in REVIEWS],
        'multi_label': [{'messages': _user(text), 'label': [label, 2] if i % 2 else [label]}
                        for i, (text, label) in enumerate(REVIEWS)],
        'reg': [{'messages': _user(f'{text} / {text}'), 'label': 4.0 * label + 0.5} for text, label in REVIEWS],
        'embedding': [{'messages': _user(q), 'positive_messages': [_user(pos)], 'negative_messages': [_user(neg)]}
                      for q, pos, neg, _ in docs],
        'reranker': [{'messages': _user(q), 'positive_messages': [[{'role': 'assistant', 'content': pos}]],
                      'negative_messages': [[{'role': 'assistant', 'content': n}] for n in negs]}
                     for q, pos, *negs in docs],
        'agent': [{'tools': TOOLS, 'messages': [
            {'role': 'user', 'content': q},
            {'role': 'tool_call', 'content': json.dumps({'name': 'add', 'arguments': {'a': a, 'b': b}})},
            {'role': 'tool_response', 'content': json.dumps({'result': a + b})},
            {'role': 'assistant', 'content': f'The answer is {a + b}.'}]}
            for a in range(1, 7) for b in range(1, 7) for q in [f'What is {a} plus {b}?']],
    }


class Fixtures:
    """Tiny models by family, their reward models and LoRA checkpoints, built once and kept under build/."""

    def __init__(self, folder: str):
        self.folder = folder
        self.data = build_datasets(os.path.join(folder, 'data'))

    def model(self, family: str, layers: int = 2) -> str:
        """The tiny model of ``family``: two layers, or more where a recipe needs them (LLaMA-Pro's groups)."""
        out = os.path.join(self.folder, 'models', family if layers == 2 else f'{family}-{layers}layers')
        if family == 'bert' and not os.path.exists(os.path.join(out, 'config.json')):
            from swift.utils.tiny_bert import build_tiny_bert
            build_tiny_bert(out, extra_texts=[text for text, _ in REVIEWS] + [q for q, _ in QUESTIONS])
        elif not os.path.exists(os.path.join(out, 'config.json')):
            from swift.utils.tiny_models import build_tiny_model
            build_tiny_model(out, family, num_layers=layers)
        return out

    def reward_model(self, family: str) -> str:
        out = os.path.join(self.folder, 'models', f'{family}-reward')
        if not os.path.exists(os.path.join(out, 'config.json')):
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
            base = self.model(family)
            tokenizer = AutoTokenizer.from_pretrained(base)
            model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
            model.config.pad_token_id = tokenizer.pad_token_id
            model.save_pretrained(out)
            tokenizer.save_pretrained(out)
        return out

    def adapter(self, family: str, task: str = '') -> str:
        """A LoRA checkpoint trained two steps with ``swift sft``, as the infer/export/deploy examples expect;
        ``task`` (a SEQ_CLS_TASKS key) gives it a classification head trained on that task's rows."""
        out = os.path.join(self.folder, 'models', f'{family}-{task + "-" if task else ""}lora')
        marker = os.path.join(out, 'checkpoint')
        if not os.path.exists(marker):
            shutil.rmtree(out, ignore_errors=True)
            task_args = SEQ_CLS_TASKS[task] if task else []
            subprocess.run([sys.executable, '-m', 'swift.cli.main', 'sft', '--model', self.model(family),
                            '--dataset', self.data[task or 'sft'], '--tuner_type', 'lora', '--max_steps', '2',
                            '--output_dir', out, '--report_to', 'none', '--split_dataset_ratio', '0.1', *task_args],
                           check=True, capture_output=True, env=run_env())
            checkpoints = sorted(os.path.join(root, d) for root, dirs, _ in os.walk(out) for d in dirs
                                 if d.startswith('checkpoint-'))
            with open(marker, 'w') as f:
                f.write(checkpoints[-1])
        with open(marker) as f:
            return f.read().strip()


# The classification checkpoints the seq_cls infer/deploy examples read, by dataset kind: their training flags.
SEQ_CLS_TASKS = {
    'cls': ['--task_type', 'seq_cls', '--num_labels', '2', '--use_chat_template', 'false'],
    'reg': ['--task_type', 'seq_cls', '--num_labels', '1', '--problem_type', 'regression',
            '--use_chat_template', 'false'],
    'multi_label': ['--task_type', 'seq_cls', '--num_labels', '3', '--problem_type', 'multi_label_classification',
                    '--use_chat_template', 'false'],
}


# ---------------------------------------------------------------- adapting one script

SWIFT_COMMAND = re.compile(r'\bswift\s+(sft|pt|rlhf|infer|deploy|export|merge-lora|merge_lora|rollout)\b')
TOKEN = re.compile(r"""(?:'[^']*'|"[^"]*"|\$\([^)]*\)|[^\s'"])+""")
SHELL_OPERATORS = {'&', '&&', '|', '||', ';', '>', '>>', '2>&1', '<'}
MODEL_FLAGS = {'--model', '--teacher_model', '--ref_model'}
REWARD_FLAGS = {'--reward_model', '--value_model'}
ADAPTER_FLAGS = {'--adapters', '--ckpt_dir', '--ref_adapters', '--resume_from_checkpoint'}
DATA_FLAGS = {'--dataset', '--val_dataset'}
# Step counts cut to two and generation lengths to 16 tokens: the point is that the recipe runs, not that it learns.
CUT = {'--save_steps': '2', '--eval_steps': '2', '--max_new_tokens': '16', '--max_completion_length': '16',
       '--max_steps': '2', '--logging_steps': '1', '--quant_n_samples': '8', '--response_length': '16'}
CONFIG_SUFFIXES = ('.yaml', '.yml', '.json')
SKIPPED_LINES = re.compile(r'^\s*(pip|pip3|git\s+clone|wget|curl|huggingface-cli|modelscope\s+download)\b')


def made_here(value: str) -> bool:
    """A path an earlier command of the same script writes (``output/...``), not a placeholder (``vx-xxx``)."""
    value = value.split('=', 1)[-1].strip('\'"')
    return value.startswith(('output', './output')) and 'xxx' not in value


def family_of(model_id: str) -> str:
    name = model_id.lower().strip('\'"')
    if re.search(r'bert|bge-reranker|gte-reranker', name):  # encoder classifiers and cross-encoders
        return 'bert'
    if 'qwen3' in name:
        return 'qwen3_moe' if re.search(r'moe|-a\d+b', name) else 'qwen3'
    if 'llama' in name:
        return 'llama'
    if 'mistral' in name:
        return 'mistral'
    if 'qwen2' in name and 'qwen2.5' not in name and 'qwen2_5' not in name:
        return 'qwen2'
    return 'qwen2_5'


def logical_lines(text: str) -> list[str]:
    """Lines with backslash continuations joined, so one swift command is one line."""
    return re.sub(r'\\\n', ' ', text).split('\n')


def _split_flags(tokens: list[str]) -> list[tuple[str, list[str]]]:
    """[(flag or '', values)]: the tokens before the first flag come as ('', tokens)."""
    groups = [('', [])]
    for token in tokens:
        if token.startswith('--') and token not in SHELL_OPERATORS:
            flag, _, value = token.partition('=')
            groups.append((flag, [value] if value else []))
        elif token in SHELL_OPERATORS or token.startswith(('>', '2>')):
            groups.append(('', [token]))
        else:
            groups[-1][1].append(token)
    return groups


def data_kind(command: str, groups: list[tuple[str, list[str]]], category: str = 'text') -> str:
    values = {flag: vals for flag, vals in groups if flag}
    task = (values.get('--task_type') or [''])[0]
    if task == 'seq_cls':
        return seq_cls_kind(values)
    if task in ('embedding', 'reranker', 'generative_reranker'):
        return 'embedding' if task == 'embedding' else 'reranker'
    if category == 'agent':
        return 'agent'
    rlhf_type = (values.get('--rlhf_type') or ['dpo'])[0] if command == 'rlhf' else ''
    if rlhf_type == 'kto':
        return 'kto'
    if rlhf_type in ('grpo', 'ppo', 'gkd', 'opsd'):
        return 'grpo' if rlhf_type == 'grpo' else 'sft'
    return 'pref' if command == 'rlhf' else 'sft'


def seq_cls_kind(values: dict[str, list[str]]) -> str:
    """'cls', 'multi_label' or 'reg': the rows a seq_cls command reads, by its --problem_type / --num_labels."""
    problem = (values.get('--problem_type') or [''])[0]
    if problem == 'regression' or (values.get('--num_labels') or [''])[0] == '1':
        return 'reg'
    return 'multi_label' if problem == 'multi_label_classification' else 'cls'


def seq_cls_task_of(path: str) -> str:
    """The classification checkpoint an infer/deploy script of a seq_cls folder reads, by its folder."""
    if '/regression/' in path:
        return 'reg'
    return 'multi_label' if '/multi_label/' in path else 'cls'


class Adapter:
    """Rewrites one script: models, data and step counts; everything else as it was."""

    def __init__(self, fixtures: Fixtures):
        self.fixtures = fixtures
        self.run_dir = None
        self.layers = 2
        self.path = ''  # the script's path in ms-swift's tree
        self.category = 'text'

    def own_copy(self, checkpoint: str, family: str) -> str:
        """The run's own copy of a checkpoint: scripts write beside it (``-merged``), and runs must not meet."""
        copy = os.path.join(self.run_dir, 'fixture-checkpoints', family, os.path.basename(checkpoint))
        if not os.path.exists(copy):
            shutil.copytree(checkpoint, copy)
        return copy

    def script(self, text: str) -> str:
        out = []
        for line in logical_lines(text):
            if SKIPPED_LINES.match(line):
                out.append(f': skipped offline: {line.strip()!r}')
            elif SWIFT_COMMAND.search(line) and not line.lstrip().startswith('#'):
                out.append(self.command_line(line))
            else:
                out.append(line)
        return '\n'.join(out)

    def command_line(self, line: str) -> str:
        command = SWIFT_COMMAND.search(line).group(1)
        groups = _split_flags(TOKEN.findall(line))
        model_ids = [vals[0] for flag, vals in groups if flag == '--model' and vals]
        family = family_of(model_ids[0] if model_ids else ('bert' if '/bert' in self.path else 'qwen2_5'))
        kind = data_kind(command, groups, self.category)
        # LLaMA-Pro's groups (default: one per new block) must divide the layers: as many layers as groups.
        llamapro = {flag: vals[0] for flag, vals in groups if flag.startswith('--llamapro_num_') and vals}
        count = llamapro.get('--llamapro_num_groups', llamapro.get('--llamapro_num_new_blocks', '2'))
        self.layers = max(2, int(count)) if count.isdigit() else 2
        rebuilt = []
        for flag, values in groups:
            rebuilt += self.flag(flag, values, family, kind)
        at = next(i for i, token in enumerate(rebuilt) if token == command) + 1
        if at < len(rebuilt) and rebuilt[at].endswith(CONFIG_SUFFIXES):  # swift sft config.yaml [flags]
            rebuilt[at] = self.config_file(rebuilt[at], family, kind)
            at += 1
        if command == 'infer' and not any(flag == '--max_new_tokens' for flag, _ in groups):
            rebuilt[at:at] = ['--max_new_tokens', CUT['--max_new_tokens']]
        if command in ('sft', 'pt', 'rlhf') and not any(flag == '--max_steps' for flag, _ in groups):
            rebuilt[at:at] = ['--max_steps', '2']
        return ' '.join(rebuilt)

    def config_file(self, path: str, family: str, kind: str) -> str:
        """A copy of the script's YAML/JSON config in the run folder, adapted as its flags would be."""
        import yaml
        with open(os.path.join(self.run_dir, path)) as f:
            config = yaml.safe_load(f) or {}
        for key, value in list(config.items()):
            values = [str(v) for v in value] if isinstance(value, list) else [str(value)]
            adapted = self.flag(f'--{key}', values, family, kind) if value is not None else [f'--{key}']
            if not adapted:
                del config[key]
            elif adapted[1:] != values:
                config[key] = adapted[1:] if isinstance(value, list) else adapted[1]
        out = os.path.join(self.run_dir, 'adapted-' + os.path.basename(path).rsplit('.', 1)[0] + '.yaml')
        with open(out, 'w') as f:
            yaml.safe_dump(config, f)
        return out

    def flag(self, flag: str, values: list[str], family: str, kind: str) -> list[str]:
        if not flag:
            return values
        if flag == '--model_type':  # names the swapped model's architecture: the tiny one is found by its config
            return []
        if flag in MODEL_FLAGS | REWARD_FLAGS | ADAPTER_FLAGS and values and all(map(made_here, values)):
            return [flag, *values]
        if flag in MODEL_FLAGS and values:
            is_reward = flag in REWARD_FLAGS or re.search(r'reward|-rm\b|_rm\b|prm', values[0], re.I)
            return [flag, self.fixtures.reward_model(family) if is_reward else self.fixtures.model(family, self.layers)]
        if flag in REWARD_FLAGS and values:
            return [flag] + [self.fixtures.reward_model(family) for _ in values]
        if flag in ADAPTER_FLAGS and values:
            task = seq_cls_task_of(self.path) if self.category == 'seq_cls' else ''
            adapter = self.own_copy(self.fixtures.adapter(family, task), family)
            return [flag] + [(v.split('=', 1)[0] + '=' if '=' in v else '') + adapter for v in values]
        if flag in DATA_FLAGS and values:
            return [flag, self.fixtures.data[kind]]
        if flag in CUT and values:
            return [flag, CUT[flag]]
        if flag == '--num_labels' and values and not values[0].strip('\'"').isdigit():  # '<num-labels>'
            return [flag, '3' if kind == 'multi_label' else '2']
        return [flag, *values]


# ---------------------------------------------------------------- running

def run_env() -> dict:
    env = dict(os.environ)
    env.update({'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'WANDB_MODE': 'offline', 'SWANLAB_MODE': 'local',
                'TOKENIZERS_PARALLELISM': 'false', 'PYTHONPATH': REPO})
    env['PATH'] = os.path.join(REPO, '.venv', 'bin') + os.pathsep + env.get('PATH', '')
    return env


ERROR_LINE = re.compile(r'error|Error|Exception|refus|not supported|unsupported|not built|Traceback|Killed')
SWIFT_ERROR = re.compile(r'swift [\w-]+: error: ')
TORCHRUN_NOISE = re.compile(r'elastic/errors\.html|ChildFailedError|error_file|^traceback :')
NO_STEP = re.compile(r"'train_runtime'[^\n]*'epoch': 0}")  # trainer's summary of a run of no optimizer step
SERVER_UP = re.compile(r'Uvicorn running on|Application startup complete')


def reason_of(log: str) -> str:
    """The last line that says what went wrong (else the last line), short."""
    lines = [line.strip() for line in log.splitlines() if line.strip() and not line.startswith(': skipped')]
    swift_errors = [line for line in lines if SWIFT_ERROR.match(line)]  # our one-line refusals say it best
    errors = [line for line in lines if ERROR_LINE.search(line) and not line.startswith('Traceback')
              and not TORCHRUN_NOISE.search(line)]
    line = (swift_errors or errors or lines or ['no output'])[-1]
    line = re.split(r'(?<=\S)(?=swift [\w-]+: error: )', line)[0]  # workers' lines may run together
    line = re.sub(r'/\S*/build/ms_swift_examples/', '', line)
    return line[:220].replace('|', '\\|')


def _wait(proc: subprocess.Popen, timeout: int, stop_when_up: bool) -> tuple[str, bool]:
    """(output, stopped by the runner): a deploy script is stopped once its server is up (a server never exits on
    its own), any script once ``timeout`` passes."""
    import threading
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, '')), daemon=True)
    reader.start()
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if stop_when_up and SERVER_UP.search(''.join(lines[-50:])):
            time.sleep(3)  # the script's own client lines, if any, get their turn
            break
        time.sleep(0.5)
    timed_out = proc.poll() is None
    if timed_out:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(timeout=5)
    return ''.join(lines), timed_out


def run_one(path: str, text: str, fixtures: Fixtures, timeout: int) -> dict:
    slug = path.replace('/', '__')[:-3]
    cwd = os.path.join(WORK, 'runs', slug)
    shutil.rmtree(cwd, ignore_errors=True)
    os.makedirs(cwd)
    os.symlink(os.path.join(WORK, 'tree', 'examples'), os.path.join(cwd, 'examples'))
    adapter = Adapter(fixtures)
    adapter.run_dir = cwd
    adapter.path = path
    adapter.category = classify(path, text)[0]
    adapted = adapter.script(text)
    with open(os.path.join(cwd, 'run.sh'), 'w') as f:
        f.write(adapted)
    started = time.time()
    proc = subprocess.Popen(['bash', 'run.sh'], cwd=cwd, env=run_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    log, timed_out = _wait(proc, timeout, stop_when_up='swift deploy' in adapted)
    with open(os.path.join(cwd, 'log.txt'), 'w') as f:
        f.write(log)
    seconds = round(time.time() - started)
    if timed_out and 'swift deploy' in adapted and SERVER_UP.search(log):
        return {'result': 'ran', 'reason': 'server came up and answered; stopped by the runner', 'seconds': seconds}
    if timed_out:
        return {'result': 'failed', 'reason': f'timed out after {timeout} s: {reason_of(log)}', 'seconds': seconds}
    if proc.returncode == 0 and NO_STEP.search(log):
        return {'result': 'failed', 'reason': 'trained no step (the swapped dataset holds less than one batch)',
                'seconds': seconds}
    if proc.returncode == 0:
        return {'result': 'ran', 'reason': '', 'seconds': seconds}
    return {'result': 'failed', 'reason': reason_of(log), 'seconds': seconds}


# ---------------------------------------------------------------- the table

def load_results() -> dict:
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            return json.load(f)
    return {}


def save_results(results: dict) -> None:
    os.makedirs(WORK, exist_ok=True)
    with open(RESULTS + '.tmp', 'w') as f:
        json.dump(results, f, indent=1, sort_keys=True)
    os.replace(RESULTS + '.tmp', RESULTS)


def rate(rows: list[dict], category: str = 'text') -> tuple[int, int]:
    chosen = [row for row in rows if row['category'] == category]
    return sum(row['result'] == 'ran' for row in chosen), len(chosen)


def write_table(rows: list[dict], commit_note: str, path: str) -> str:
    ran, total = rate(rows)
    percent = 100 * ran / total if total else 0
    summary = f'text scripts: {ran}/{total} ran ({percent:.1f}%)' + ''.join(
        '; {} {}/{} ran'.format(category, *rate(rows, category)) for category in TASK_CATEGORIES)
    lines = [
        "# ms-swift's examples/ on this build",
        '',
        f'Generated by `python scripts/ms_swift_examples.py` from {commit_note}: every shell script of its examples/,',
        'with only the models and datasets swapped for tiny local ones and step counts cut (see the script\'s',
        'docstring). The text scripts, the seq_cls, embedding, reranker and agent folders and the streaming scripts',
        'run (one of those whose model or engine belongs elsewhere, e.g. a multimodal model or a vLLM server, is',
        'listed there).',
        '`not-applicable` scripts belong to another open issue or need hardware this build has not.',
        '',
        f'**Summary: {summary}.**',
        '',
        'Scripts by category: ' + ', '.join(f'{name} {count}' for name, count in sorted(
            collections.Counter(row['category'] for row in rows).items(), key=lambda item: -item[1])) + '.',
        '',
        '| script | category | result | reason |',
        '|---|---|---|---|',
    ]
    for row in rows:
        lines.append(f"| {row['script']} | {row['category']} | {row['result']} | {row['reason']} |")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    return summary


def table_rows(scripts: dict[str, str], results: dict) -> list[dict]:
    rows = []
    for path, text in scripts.items():
        category, reason = classify(path, text)
        if category not in RUN_CATEGORIES:
            reason = NOT_RUN_NOTES.get(path, reason)
            rows.append({'script': path, 'category': category, 'result': 'not-applicable', 'reason': reason})
            continue
        result = results.get(path) or {'result': 'not-run', 'reason': 'not run yet'}
        reason = result['reason'] or 'ran to completion'
        if result['result'] == 'failed' and path in FAILURE_NOTES:
            reason += f' ({FAILURE_NOTES[path]})'
        rows.append({'script': path, 'category': category, 'result': result['result'], 'reason': reason})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--only', help='regex: run only the scripts whose path matches')
    parser.add_argument('--category', default='text', help="run the scripts of this category ('all': every one)")
    parser.add_argument('--jobs', type=int, default=1)
    parser.add_argument('--timeout', type=int, default=180)
    parser.add_argument('--git-dir', default=DEFAULT_GIT_DIR)
    parser.add_argument('--commit', default=DEFAULT_COMMIT)
    parser.add_argument('--table', default=TABLE)
    parser.add_argument('--no-run', action='store_true', help='rewrite the table from the recorded results only')
    args = parser.parse_args(argv)
    commit, note = resolve_commit(args.git_dir, args.commit)
    scripts = example_scripts(args.git_dir, commit)
    results = load_results()
    with open(LISTING, 'w', encoding='utf-8') as f:
        f.write(f'# {note}\n' + ''.join(p + '\n' for p in scripts))
    chosen = [p for p, t in scripts.items() if (args.category == 'all' or classify(p, t)[0] == args.category)
              and (not args.only or re.search(args.only, p))]
    if not args.no_run and chosen:
        sys.path.insert(0, REPO)
        extract_examples(args.git_dir, commit, os.path.join(WORK, 'tree'))
        fixtures = Fixtures(os.path.join(WORK, 'fixtures'))
        with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
            futures = {pool.submit(run_one, p, scripts[p], fixtures, args.timeout): p for p in chosen}
            for future in concurrent.futures.as_completed(futures):
                path = futures[future]
                try:
                    results[path] = future.result()
                except Exception as err:  # a problem of the runner itself, recorded as the script's reason
                    results[path] = {'result': 'failed', 'reason': f'runner: {err}'[:220], 'seconds': 0}
                save_results(results)
                print(f"{results[path]['result']:7} {results[path].get('seconds', 0):4}s {path}  "
                      f"{results[path]['reason']}", flush=True)
    print(write_table(table_rows(scripts, results), note, args.table))
    return 0


if __name__ == '__main__':
    sys.exit(main())
