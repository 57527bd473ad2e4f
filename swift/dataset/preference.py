"""What the alignment tasks need of a normalised row, checked while loading so errors name the file and line."""
from typing import Callable

from .preprocess import RowError


def _ends_in_answer(row: dict) -> None:
    if row['messages'][-1]['role'] != 'assistant':
        raise RowError('the conversation must end in an assistant answer')


def check_pair(row: dict) -> None:
    """DPO, ORPO, CPO, SimPO and RM: a chosen answer (the last assistant turn) and a rejected one."""
    _ends_in_answer(row)
    if row.get('rejected_messages'):
        _ends_in_answer({'messages': row['rejected_messages']})
        return
    if any(row.get(f'rejected_{key}') for key in ('images', 'videos', 'audios')) and 'rejected_response' not in row:
        return  # ms-swift: the same answer about other media
    rejected = row.get('rejected_response')
    if not isinstance(rejected, str) or not rejected:
        raise RowError("no rejected answer: add 'rejected_response' (or trl's 'rejected') as a non-empty string, "
                       "or 'rejected_messages'")


def check_kto(row: dict) -> None:
    """KTO: one answer and a boolean ``label`` saying whether it is desirable. CSV's 'true'/'false' count."""
    _ends_in_answer(row)
    label = row.get('label')
    if isinstance(label, str) and label.lower() in ('true', 'false'):
        row['label'] = label.lower() == 'true'
    elif not isinstance(label, bool):
        raise RowError(f"KTO needs a boolean 'label' (true = desirable answer), got {label!r}")


def check_prompt(row: dict) -> None:
    """GRPO: a conversation with a user turn to answer (a final assistant turn, e.g. a reference, is dropped)."""
    if not any(message['role'] == 'user' for message in row['messages']):
        raise RowError('no user message to use as the prompt')


def check_answer(row: dict) -> None:
    """GKD: a conversation ending in an answer (the off-policy completion the student is distilled on)."""
    _ends_in_answer(row)


ROW_CHECKS: dict[str, Callable[[dict], None]] = {'pair': check_pair, 'kto': check_kto, 'prompt': check_prompt,
                                                 'answer': check_answer}
