"""What a reward reads from trl's arguments: the completion's text and its length."""


def completion_texts(completions: list) -> list[str]:
    """The text each completion's model wrote.

    trl passes plain strings for standard data and, for conversational data, a list of messages whose last one is
    the assistant's reply.
    """
    return [c[-1]['content'] if isinstance(c, list) else c for c in completions]


def completion_lengths(completions: list, completion_ids: list[list[int]] | None = None) -> list[int]:
    """Token counts, which trl's GRPOTrainer always passes as ``completion_ids``.

    Without them (a reward called outside the trainer) the length is the number of whitespace-separated words: a
    tokenizer-free stand-in, closer to a token count than characters are.
    """
    if completion_ids is not None:
        return [len(ids) for ids in completion_ids]
    return [len(text.split()) for text in completion_texts(completions)]
