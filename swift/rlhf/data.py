"""Encode alignment rows with the chat template, as ``swift sft`` encodes, into the columns trl's collators read."""
from datasets import Dataset

from ..template import Template
from ..utils import SwiftError, get_logger

logger = get_logger()


def _pair(template: Template, row: dict) -> dict | None:
    return template.encode_pair(row)


def _answer(template: Template, row: dict) -> dict | None:
    """GKD: the prompt and the dataset's answer (the off-policy completion). Its trainer reads ids only."""
    encoded = template.encode_completion(row)
    if encoded is not None and ('pixel_values' in encoded or 'pixel_values_videos' in encoded):
        raise SwiftError('--rlhf_type gkd trains on text rows only; this row has images or videos')
    return encoded


def _completion(template: Template, row: dict) -> dict | None:
    encoded = template.encode_completion(row)
    return None if encoded is None else {**encoded, 'label': row['label']}


def _full_pair(template: Template, row: dict) -> dict | None:
    """Whole sequences, prompt included: a reward model scores the conversation, not the answer alone."""
    pair = template.encode_pair(row)
    if pair is None:
        return None
    if 'rejected_prompt_ids' in pair or 'pixel_values' in pair or 'pixel_values_videos' in pair:
        raise SwiftError('--rlhf_type rm trains on text rows only; this row has images or videos')
    return {'chosen_ids': pair['prompt_ids'] + pair['chosen_ids'],
            'rejected_ids': pair['prompt_ids'] + pair['rejected_ids']}


def _prompt(template: Template, row: dict) -> dict:
    """GRPO's rows stay messages (the trainer encodes each prompt when it generates), with the system prompt the
    template would add written in, so completions.jsonl and reward models see what the policy saw. The other
    columns ride along for the reward functions."""
    messages = row['messages']
    prompt = messages[:-1] if messages[-1]['role'] == 'assistant' else messages
    if prompt[0]['role'] != 'system' and template.default_system:
        prompt = [{'role': 'system', 'content': template.default_system}, *prompt]
    return {**{k: v for k, v in row.items() if k != 'messages'}, 'prompt': prompt}


ENCODERS = {'pair': _pair, 'completion': _completion, 'answer': _answer, 'full_pair': _full_pair, 'prompt': _prompt}


def encode_alignment_rows(template: Template, rows: list[dict], encoding: str, split: str) -> Dataset | None:
    """A datasets.Dataset of the encoded rows. Rows the template drops (too long) are counted and reported."""
    if not rows:
        return None
    encoded = [ENCODERS[encoding](template, row) for row in rows]
    kept = [e for e in encoded if e is not None]
    dropped = len(encoded) - len(kept)
    message = f'{split}: {len(kept)} rows encoded'
    if dropped:
        logger.warning(f'{message}; dropped {dropped} whose answers do not fit --max_length {template.max_length} '
                       f'(--truncation_strategy {template.truncation_strategy})')
    else:
        logger.info(message)
    if not kept:
        raise SwiftError(f'no {split} row is left to train on: every answer is cut by --max_length')
    return Dataset.from_list(kept)
