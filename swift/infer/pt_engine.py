"""``PtEngine``: inference on transformers' ``generate``, batched up to ``max_batch_size`` and streamable."""
import threading
from typing import Iterator

import torch
from transformers import PreTrainedModel, StoppingCriteriaList, TextIteratorStreamer

from ..protocol import (ChatCompletionResponse, ChatCompletionResponseChoice, ChatCompletionStreamResponse,
                        ChatCompletionStreamResponseChoice, ChatMessage, DeltaMessage, InferRequest, RequestConfig,
                        UsageInfo)
from ..template import Template
from ..utils import SwiftError
from .base import InferEngine
from .stopping import StopWordsCriteria, truncate_at_stop

DEFAULT_MAX_TOKENS = 2048


class PtEngine(InferEngine):

    def __init__(self, model: PreTrainedModel, template: Template, max_batch_size: int = 1,
                 model_name: str | None = None):
        self.model = model.eval()
        self.template = template
        self.tokenizer = template.tokenizer
        self.max_batch_size = max_batch_size
        self.model_name = model_name or getattr(model, 'model_dir', None) or 'model'

    @classmethod
    def from_model_template(cls, model: PreTrainedModel, template: Template, max_batch_size: int = 1) -> 'PtEngine':
        """The seeds' constructor: an engine over an already loaded model and template."""
        return cls(model, template, max_batch_size=max_batch_size)

    # ---- public ----------------------------------------------------------------------------------------------
    def infer(self, infer_requests: list[InferRequest], request_config: RequestConfig | None = None,
              adapter: str | None = None):
        config = request_config or RequestConfig()
        if config.stream:
            return [self._stream(request, config) for request in infer_requests]
        responses = []
        for start in range(0, len(infer_requests), self.max_batch_size):
            responses += self._generate_batch(infer_requests[start:start + self.max_batch_size], config)
        return responses

    # ---- batching --------------------------------------------------------------------------------------------
    def _encode_prompts(self, requests: list[InferRequest]) -> list[list[int]]:
        prompts = []
        for request in requests:
            encoded = self.template.encode({'messages': request.messages}, add_generation_prompt=True)
            if encoded is None:
                raise SwiftError(f'the prompt is longer than --max_length {self.template.max_length} tokens')
            prompts.append(encoded['input_ids'])
        return prompts

    def _left_padded(self, prompts: list[list[int]]) -> dict[str, torch.Tensor]:
        longest = max(map(len, prompts))
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (longest - len(p)) + p for p in prompts])
        attention_mask = torch.tensor([[0] * (longest - len(p)) + [1] * len(p) for p in prompts])
        return {'input_ids': input_ids.to(self.model.device), 'attention_mask': attention_mask.to(self.model.device)}

    def _generate_kwargs(self, config: RequestConfig, prompt_length: int) -> dict:
        greedy = not config.temperature
        kwargs = {'max_new_tokens': config.max_tokens or DEFAULT_MAX_TOKENS, 'do_sample': not greedy,
                  'pad_token_id': self.tokenizer.pad_token_id, 'eos_token_id': self._stop_token_ids()}
        if not greedy:
            kwargs.update(temperature=config.temperature, top_p=config.top_p, top_k=config.top_k)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if config.repetition_penalty:
            kwargs['repetition_penalty'] = config.repetition_penalty
        stop_words = [*self.template.stop_words, *config.stop]
        kwargs['stopping_criteria'] = StoppingCriteriaList([StopWordsCriteria(self.tokenizer, stop_words, prompt_length)])
        if config.seed is not None:
            torch.manual_seed(config.seed)
        return kwargs

    def _stop_token_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id}
        for word in self.template.stop_words:
            token_ids = self.tokenizer.encode(word, add_special_tokens=False)
            if len(token_ids) == 1:
                ids.add(token_ids[0])
        return sorted(i for i in ids if i is not None)

    @torch.inference_mode()
    def _generate_batch(self, requests: list[InferRequest], config: RequestConfig) -> list[ChatCompletionResponse]:
        prompts = self._encode_prompts(requests)
        inputs = self._left_padded(prompts)
        kwargs = self._generate_kwargs(config, inputs['input_ids'].shape[1])
        output = self.model.generate(**inputs, **kwargs)
        completions = output[:, inputs['input_ids'].shape[1]:].tolist()
        return [self._response(prompt, completion, config, kwargs['max_new_tokens'])
                for prompt, completion in zip(prompts, completions)]

    def _response(self, prompt: list[int], completion: list[int], config: RequestConfig,
                  max_new_tokens: int) -> ChatCompletionResponse:
        stop_ids = set(self._stop_token_ids())
        ended = next((i for i, t in enumerate(completion) if t in stop_ids), None)
        tokens = completion if ended is None else completion[:ended]
        text, stopped = truncate_at_stop(self.template.decode(tokens), [*self.template.stop_words, *config.stop])
        finish = 'stop' if ended is not None or stopped or len(tokens) < max_new_tokens else 'length'
        n_completion = len(tokens) + (ended is not None)
        usage = UsageInfo(len(prompt), n_completion, len(prompt) + n_completion)
        choice = ChatCompletionResponseChoice(0, ChatMessage('assistant', text), finish)
        return ChatCompletionResponse(self.model_name, [choice], usage)

    # ---- streaming -------------------------------------------------------------------------------------------
    def _stream(self, request: InferRequest, config: RequestConfig) -> Iterator[ChatCompletionStreamResponse]:
        prompt = self._encode_prompts([request])[0]
        inputs = self._left_padded([prompt])
        kwargs = self._generate_kwargs(config, len(prompt))
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        thread = threading.Thread(target=self._generate_quietly, kwargs={**inputs, **kwargs, 'streamer': streamer})
        thread.start()
        sent = ''
        stop_words = [*self.template.stop_words, *config.stop]
        for piece in streamer:
            text, stopped = truncate_at_stop(sent + piece, stop_words)
            if text[len(sent):]:
                yield self._chunk(text[len(sent):], None)
                sent = text
            if stopped:
                break
        thread.join()
        yield self._chunk('', 'stop')

    @torch.inference_mode()
    def _generate_quietly(self, **kwargs) -> None:
        self.model.generate(**kwargs)

    def _chunk(self, text: str, finish_reason: str | None) -> ChatCompletionStreamResponse:
        choice = ChatCompletionStreamResponseChoice(0, DeltaMessage('assistant', text), finish_reason)
        return ChatCompletionStreamResponse(self.model_name, [choice])
