"""Stop words: end generation when the decoded tail contains one, and cut the text there."""
import torch
from transformers import StoppingCriteria


def truncate_at_stop(text: str, stop_words: list[str]) -> tuple[str, bool]:
    """``text`` up to the first stop word, and whether one was found."""
    cut = min((i for i in (text.find(w) for w in stop_words if w) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class StopWordsCriteria(StoppingCriteria):
    """Stops a sequence once its recent generated tokens decode to text containing a stop word."""

    def __init__(self, tokenizer, stop_words: list[str], prompt_length: int, window: int = 16):
        self.tokenizer = tokenizer
        self.stop_words = [w for w in stop_words if w]
        self.prompt_length = prompt_length  # the prompt's own turn markers must not count
        self.window = window

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        start = max(self.prompt_length, input_ids.shape[1] - self.window)
        tails = self.tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=False)
        return torch.tensor([any(w in tail for w in self.stop_words) for tail in tails], device=input_ids.device)
