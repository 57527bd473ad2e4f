"""``swift sft --task_type seq_cls``: a classifier or regressor trained on labelled rows (ms-swift's seq_cls), and
``swift infer`` of one over a dataset (predictions, accuracy or MSE).

    swift sft --model Qwen/Qwen2.5-0.5B --task_type seq_cls --num_labels 2 --use_chat_template false \
        --train_type lora --dataset data.jsonl        # rows: {"messages": [...], "label": 1}

``sft_main`` hands such runs to ``run_training`` with this module's data loading and trainer; everything else (model,
tuner, run folder, checkpoints, plots) is the sft run's.
"""
from transformers import TrainingArguments

from ..arguments import TrainArguments
from ..dataset.errors import RowError
from ..infer import PtEngine
from ..protocol import InferRequest
from ..template import Template
from ..trainers.seq_cls import (REGRESSION, ClassificationCollator, SeqClsTrainer, encode_classification_rows,
                                label_check, parse_label, resolve_problem_type)
from ..utils import SwiftError, get_logger

logger = get_logger()


def check_seq_cls_args(args: TrainArguments) -> TrainArguments:
    """--num_labels is required; --problem_type defaults as in ms-swift (regression for one label). Both are saved
    in args.json, so infer and deploy load the same head."""
    if not args.num_labels or args.num_labels < 1:
        raise SwiftError('--task_type seq_cls needs --num_labels N (the number of classes; 1 for regression)')
    for flag in ('packing', 'padding_free'):
        if getattr(args, flag):
            raise SwiftError(f'--{flag} is not built for --task_type seq_cls yet; rows are padded')
    args.problem_type = resolve_problem_type(args.num_labels, args.problem_type)
    return args


def load_seq_cls_data(args: TrainArguments, template: Template) -> tuple[list[dict], list[dict]]:
    """Encoded (train, val) rows; a row without a valid ``label`` stops the run with its file:line."""
    from .train import load_train_val_rows  # train.py dispatches here: import at call time
    train_rows, val_rows = load_train_val_rows(args, label_check(args.num_labels, args.problem_type))
    encode = lambda rows, split: encode_classification_rows(template, rows, args.num_labels,  # noqa: E731
                                                            args.problem_type, split)
    train = encode(train_rows, 'train')
    if not train:
        raise SwiftError(f'no train row is left: all are longer than --max_length {args.max_length}')
    return train, encode(val_rows, 'val') if val_rows else []


def make_seq_cls_trainer(args: TrainArguments, training: TrainingArguments, template: Template,
                         **kwargs) -> SeqClsTrainer:
    collator = ClassificationCollator(kwargs['processing_class'].pad_token_id, args.num_labels, args.problem_type)
    return SeqClsTrainer(args=training, data_collator=collator, problem_type=args.problem_type, **kwargs)


# ---- swift infer over a dataset ----------------------------------------------------------------------------------
def is_classification(engine: PtEngine, rows: list[dict]) -> bool:
    """A classifier's rows (or a regression head's rows that carry labels), rather than a reward model's
    conversations and preference pairs."""
    return engine.problem_type != REGRESSION or any(row.get('label') is not None for row in rows)


def classify_rows(engine: PtEngine, rows: list[dict]) -> list[dict]:
    """ms-swift's result rows for a seq_cls model: ``response`` the prediction, ``labels`` the row's label, and
    ``logprobs``; with labels, logs the accuracy (exact set for multi-label) or, for regression, the MSE."""
    num_labels, problem_type = engine.model.config.num_labels, engine.problem_type
    results = []
    for index, row in enumerate(rows):
        label = None
        if row.get('label') is not None:
            try:
                label = parse_label(row, num_labels, problem_type)
            except RowError as err:
                raise SwiftError(f'row {index + 1} of the dataset: {err}') from None
        pred, logprobs = engine.classify(InferRequest(messages=row['messages']))
        results.append({'messages': row['messages'], 'response': pred, 'labels': label, 'logprobs': logprobs})
    scored = [r for r in results if r['labels'] is not None]
    if scored:
        name, value = classification_metric(scored, problem_type)
        logger.info(f'{name}: {value:.6g} over {len(scored)} labelled rows')
    return results


def classification_metric(results: list[dict], problem_type: str) -> tuple[str, float]:
    """('acc', share of predictions equal to the label) or, for regression, ('mse', mean squared error)."""
    if problem_type != REGRESSION:
        return 'acc', sum(r['response'] == r['labels'] for r in results) / len(results)
    errors = [(p - t) ** 2 for r in results for p, t in zip(_values(r['response']), _values(r['labels']))]
    return 'mse', sum(errors) / len(errors)


def _values(value) -> list[float]:
    return value if isinstance(value, list) else [value]
