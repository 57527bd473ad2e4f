"""``InferStats``: what ms-swift's ``engine.infer(..., metrics=[InferStats()])`` reports of a run."""
import time

from ..protocol import ChatCompletionResponse


class InferStats:
    """Requests answered, tokens read and generated, and their rates since the first response (or ``reset``)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.start = time.perf_counter()
        self.num_samples = self.num_prompt_tokens = self.num_generated_tokens = 0

    def update(self, response: ChatCompletionResponse) -> None:
        self.num_samples += 1
        self.num_prompt_tokens += response.usage.prompt_tokens
        self.num_generated_tokens += response.usage.completion_tokens

    def compute(self) -> dict[str, float]:
        runtime = time.perf_counter() - self.start
        return {'num_prompt_tokens': self.num_prompt_tokens, 'num_generated_tokens': self.num_generated_tokens,
                'num_samples': self.num_samples, 'runtime': runtime,
                'samples/s': self.num_samples / runtime, 'tokens/s': self.num_generated_tokens / runtime}
