"""The interface every inference engine offers: answer a list of requests, whole or streamed."""
from abc import ABC, abstractmethod
from typing import Iterator

from ..protocol import ChatCompletionResponse, ChatCompletionStreamResponse, InferRequest, RequestConfig


class InferEngine(ABC):

    @abstractmethod
    def infer(self, infer_requests: list[InferRequest], request_config: RequestConfig | None = None,
              adapter: str | None = None
              ) -> list[ChatCompletionResponse] | list[Iterator[ChatCompletionStreamResponse]]:
        """One response per request; with ``request_config.stream`` one chunk iterator per request."""
