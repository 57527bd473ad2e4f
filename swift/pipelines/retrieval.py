"""``swift sft --task_type embedding|reranker|generative_reranker``: retrieval models (ms-swift's Embedding.md and
Reranker.md).

    INFONCE_TEMPERATURE=0.1 swift sft --model Qwen/Qwen3-Embedding-0.6B --task_type embedding --loss_type infonce \
        --train_type lora --dataset pairs.jsonl     # {"messages": [...], "positive_messages": [[...]]}
    swift sft --model Qwen/Qwen3-Reranker-0.6B --task_type generative_reranker --loss_type pointwise_reranker \
        --train_type full --dataset rerank.jsonl    # {"messages": [...], "positive_messages": [[...]],
                                                    #  "negative_messages": [[...], ...]}

``sft_main`` hands such runs to ``run_training`` with this module's data loading and trainer; model, tuner, run
folder, checkpoints and plots are the sft run's.
"""
from transformers import TrainingArguments

from ..arguments import TrainArguments
from ..dataset.retrieval import retrieval_check
from ..infer.retrieval import split_query_document
from ..template import Template
from ..template.retrieval import RetrievalCollator, encode_embedding_row, encode_reranker_row
from ..trainers.retrieval import RetrievalTrainer
from ..utils import SwiftError, get_logger

logger = get_logger()


def load_retrieval_data(args: TrainArguments, template: Template) -> tuple[list[dict], list[dict]]:
    """Encoded (train, val) rows; a row without what its task needs stops the run with its file:line."""
    from .train import load_train_val_rows  # train.py dispatches here: import at call time
    train_rows, val_rows = load_train_val_rows(args, retrieval_check(args.task_type, args.loss_type))
    train = _encode(template, train_rows, args.task_type, 'train')
    if not train:
        raise SwiftError(f'no train row is left: every one has a text longer than --max_length {args.max_length}')
    return train, _encode(template, val_rows, args.task_type, 'val')


def _encode(template: Template, rows: list[dict], task_type: str, split: str) -> list[dict]:
    encode = encode_embedding_row if task_type == 'embedding' else encode_reranker_row
    encoded = [row for row in (encode(template, row) for row in rows) if row is not None]
    if len(encoded) < len(rows):  # --truncation_strategy delete: said, never silent
        logger.warning(f'{split}: {len(rows) - len(encoded)} of {len(rows)} rows dropped: a text is longer than '
                       f'--max_length {template.max_length}')
    return encoded


def make_retrieval_trainer(args: TrainArguments, training: TrainingArguments, template: Template,
                           **kwargs) -> RetrievalTrainer:
    # rows hold lists of texts, which the collator flattens: transformers must not drop them as unknown columns
    training.remove_unused_columns = False
    collator = RetrievalCollator(args.task_type, kwargs['processing_class'].pad_token_id, args.data_seed)
    return RetrievalTrainer(args=training, data_collator=collator, task_type=args.task_type,
                            loss_type=args.loss_type, mrl_dims=args.mrl_dims, **kwargs)


# ---- swift infer ---------------------------------------------------------------------------------------------------
def retrieval_results(engine, rows: list[dict]) -> list[dict]:
    """``swift infer`` over a dataset with an embedding model (each row's ``embedding``) or a reranker (each
    document's score: ``positive_scores`` / ``negative_scores`` for rows in the training format, else ``score`` of
    the last message against the ones before it)."""
    runner = engine.retrieval
    if engine.task_type == 'embedding':
        vectors, _ = runner.embed([row['messages'] for row in rows])
        return [{'messages': row['messages'], 'embedding': vector} for row, vector in zip(rows, vectors)]
    results = [_scored(runner, row) for row in rows]
    ranked = [r for r in results if r.get('positive_scores') and r.get('negative_scores')]
    if ranked:
        right = sum(min(r['positive_scores']) > max(r['negative_scores']) for r in ranked)
        logger.info(f'every positive scores above every negative in {right / len(ranked):.1%} of {len(ranked)} rows')
    return results


def _scored(runner, row: dict) -> dict:
    if 'positive_messages' in row or 'negative_messages' in row:
        query = row['messages']
        scored = {key: runner.rerank(query, row.get(key) or [])[0] if row.get(key) else []
                  for key in ('positive_messages', 'negative_messages')}
        return {'messages': query, 'positive_scores': scored['positive_messages'],
                'negative_scores': scored['negative_messages']}
    query, document = split_query_document(row['messages'])
    return {'messages': row['messages'], 'score': runner.rerank(query, [document])[0][0]}
