"""The conformance table of ms-swift's examples/ (docs/conformance/examples.md, written by
scripts/ms_swift_examples.py): it covers every script of the tree and its summary says what its rows say. Nothing is
run here: the runs take an hour and belong to the script."""
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TABLE = os.path.join(REPO, 'docs', 'conformance', 'examples.md')
LISTING = os.path.join(REPO, 'tests', 'data', 'ms_swift_examples.txt')
RESULTS = {'ran', 'failed', 'not-applicable'}
# The categories the runner runs (scripts/ms_swift_examples.py's RUN_CATEGORIES); the others are listed only.
RUN_CATEGORIES = ('text', 'seq_cls', 'embedding', 'reranker', 'agent', 'streaming')


def _rows() -> list[dict]:
    with open(TABLE, encoding='utf-8') as f:
        lines = [line for line in f if line.startswith('| examples/')]
    rows = []
    for line in lines:
        cells = [cell.strip() for cell in re.split(r'(?<!\\)\|', line.strip())[1:-1]]
        rows.append(dict(zip(('script', 'category', 'result', 'reason'), cells)))
    return rows


def _listing() -> list[str]:
    with open(LISTING, encoding='utf-8') as f:
        return [line.strip() for line in f if line.strip() and not line.startswith('#')]


def test_the_table_lists_every_script_of_the_examples_tree_once():
    scripts = [row['script'] for row in _rows()]
    assert len(_listing()) > 300  # ms-swift's examples/ holds some 400 scripts
    assert sorted(scripts) == sorted(_listing())
    assert len(set(scripts)) == len(scripts)


def test_every_row_has_a_result_and_every_result_but_ran_a_reason():
    for row in _rows():
        assert row['result'] in RESULTS, row
        assert row['category'], row
        if row['result'] != 'ran':
            assert row['reason'], row
        if row['category'] not in RUN_CATEGORIES:
            assert row['result'] == 'not-applicable', row
        else:
            assert row['result'] != 'not-applicable', row


def test_the_recorded_text_pass_rate_is_what_the_rows_say():
    text = [row for row in _rows() if row['category'] == 'text']
    ran = sum(row['result'] == 'ran' for row in text)
    with open(TABLE, encoding='utf-8') as f:
        summary = re.search(r'text scripts: (\d+)/(\d+) ran \(([\d.]+)%\)', f.read())
    assert summary, 'summary line missing'
    assert (int(summary.group(1)), int(summary.group(2))) == (ran, len(text))
    assert float(summary.group(3)) == round(100 * ran / len(text), 1)


def test_the_summary_gives_each_task_category_the_rate_its_rows_say():
    """'seq_cls 12/14 ran': one rate per task folder the runner runs."""
    with open(TABLE, encoding='utf-8') as f:
        table = f.read()
    for category in RUN_CATEGORIES[1:]:
        chosen = [row for row in _rows() if row['category'] == category]
        summary = re.search(rf'; {category} (\d+)/(\d+) ran', table)
        assert summary, f'no rate for {category}'
        assert (int(summary.group(1)), int(summary.group(2))) == (sum(r['result'] == 'ran' for r in chosen),
                                                                  len(chosen))
        assert chosen, category


def test_the_table_names_the_ms_swift_commit_of_the_flag_list():
    with open(TABLE, encoding='utf-8') as f:
        head = f.read(2000)
    with open(LISTING, encoding='utf-8') as f:
        note = f.readline()
    assert '3602360' in head and '3602360' in note


def test_a_folder_of_no_family_reloads_with_the_model_type_its_args_json_records():
    """ms-swift's examples/export/quantize/reward_model/bnb.sh: export writes a reward model whose args.json says
    model_type 'generic' (no registered family), and swift infer reads it back."""
    from swift.model.registry import GENERIC_META, detect_model_meta
    config = {'model_type': 'qwen2', 'architectures': ['Qwen2ForSequenceClassification']}
    assert detect_model_meta(config) is GENERIC_META
    assert detect_model_meta(config, GENERIC_META.model_type) is GENERIC_META


def test_lora_on_all_linear_of_a_fused_moe_trains_with_dropout_zero_on_the_experts(tmp_path):
    """ms-swift's examples/train/moe/qwen3_moe.sh: LoRA on all-linear of a Qwen3-MoE with the default dropout.
    peft adapts the fused experts with parameter adapters, which take no dropout; a dense model keeps its dropout."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from swift.tuners.prepare import _no_dropout_on_fused_experts
    from swift.utils.tiny_models import build_tiny_model
    moe = AutoModelForCausalLM.from_pretrained(build_tiny_model(str(tmp_path / 'moe'), 'qwen3_moe'))
    config = LoraConfig(target_modules='all-linear', lora_dropout=0.05)
    _no_dropout_on_fused_experts(moe, config)
    model = get_peft_model(moe, config)
    assert config.lora_dropout == 0.0
    assert any('experts' in name and 'lora' in name for name, _ in model.named_parameters())
    ids = torch.tensor([[1, 2, 3, 4]])
    model(input_ids=ids, labels=ids).loss.backward()
    dense = AutoModelForCausalLM.from_pretrained(build_tiny_model(str(tmp_path / 'dense'), 'qwen3'))
    dense_config = LoraConfig(target_modules='all-linear', lora_dropout=0.05)
    _no_dropout_on_fused_experts(dense, dense_config)
    assert dense_config.lora_dropout == 0.05


def test_galore_per_parameter_with_gradient_accumulation_steps_together_as_ms_swift():
    """ms-swift's examples/train/tuners/galore/train_galore.sh: --galore_optim_per_parameter true with 16 accumulation
    steps. transformers' layer-wise optimizer refuses accumulation; ms-swift steps its per-parameter optimizers
    together, which is one GaLore AdamW."""
    from swift.arguments import TrainArguments, parse_args
    base = ['--model', 'm', '--dataset', 'd.jsonl', '--tuner_type', 'full', '--use_galore', 'true',
            '--galore_optim_per_parameter', 'true']
    assert parse_args(TrainArguments, base + ['--gradient_accumulation_steps', '16']).optim == 'galore_adamw'
    assert parse_args(TrainArguments, base).optim == 'galore_adamw_layerwise'
