"""Inference with embedding and reranker models (``--task_type embedding|reranker|generative_reranker``).

As ms-swift's engines answer them: an embedding model's ``infer`` gives one ``EmbeddingResponse`` per request (the
conversation's vector in ``data[0].embedding``); a reranker's gives a chat response whose content is the score of
the conversation's last turn (the document) against what comes before it (the query). ``embed`` and ``rerank`` are
the direct calls the server's ``/v1/embeddings`` and ``/v1/rerank`` use.
"""
import torch

from ..model.retrieval import embed, rerank_logits, yes_no_ids
from ..protocol import (ChatCompletionResponse, ChatCompletionResponseChoice, ChatMessage, EmbeddingData,
                        EmbeddingResponse, InferRequest, UsageInfo)
from ..template.retrieval import embedding_ids, pad_right, pair_ids
from ..utils import SwiftError


class RetrievalRunner:
    """Batched forward passes of an engine's retrieval model. ``engine`` is a ``PtEngine``: its model, template,
    lock and adapter switching are used as they are."""

    def __init__(self, engine, task_type: str, use_activation: bool = True):
        self.engine, self.task_type, self.use_activation = engine, task_type, use_activation
        self.yes_no = yes_no_ids(engine.tokenizer) if task_type == 'generative_reranker' else None

    # ---- embeddings --------------------------------------------------------------------------------------------
    def embed(self, conversations: list[list[dict]], adapter: str | None = None) -> tuple[list[list[float]], int]:
        """Unit vectors of each conversation, and the number of tokens read."""
        ids = [self._checked(embedding_ids(self.engine.template, messages)) for messages in conversations]
        vectors = self._batched(ids, adapter, lambda model, batch: embed(model, **batch))
        return vectors.tolist(), sum(map(len, ids))

    # ---- scores ------------------------------------------------------------------------------------------------
    def rerank(self, query: list[dict], documents: list[list[dict]], adapter: str | None = None
               ) -> tuple[list[float], int]:
        """The score of each document for ``query`` (sigmoid of the logit unless --reranker_use_activation
        false), and the number of tokens read."""
        ids = [self._checked(pair_ids(self.engine.template, query, document)) for document in documents]
        logits = self._batched(ids, adapter, lambda model, batch: rerank_logits(
            model, self.task_type, batch['input_ids'], batch['attention_mask'], self.yes_no))
        scores = torch.sigmoid(logits) if self.use_activation else logits
        return scores.tolist(), sum(map(len, ids))

    # ---- ms-swift's infer ----------------------------------------------------------------------------------------
    def responses(self, requests: list[InferRequest], model_name: str, adapter: str | None = None) -> list:
        return [self._response(request, model_name, adapter) for request in requests]

    def _response(self, request: InferRequest, model_name: str, adapter: str | None):
        if request.images or request.videos or request.audios:
            raise SwiftError(f'--task_type {self.task_type}: text only here; this request has media')
        if self.task_type == 'embedding':
            (vector,), tokens = self.embed([request.messages], adapter)
            return EmbeddingResponse(model_name, [EmbeddingData(vector)], UsageInfo(tokens, 0, tokens))
        query, document = split_query_document(request.messages)
        (score,), tokens = self.rerank(query, [document], adapter)
        choice = ChatCompletionResponseChoice(0, ChatMessage('assistant', f'{score:.6g}'), 'stop')
        return ChatCompletionResponse(model_name, [choice], UsageInfo(tokens, 0, tokens))

    # ---- shared ------------------------------------------------------------------------------------------------
    def _checked(self, ids: list[int] | None) -> list[int]:
        limit = self.engine.max_model_len
        if ids is None:
            raise SwiftError(f'a text is longer than --max_length {self.engine.template.max_length} tokens')
        if limit is not None and len(ids) > limit:
            raise SwiftError(f"this model's maximum context length is {limit} tokens, but a text has {len(ids)}")
        return ids

    def _batched(self, ids: list[list[int]], adapter: str | None, forward) -> torch.Tensor:
        engine, size = self.engine, max(1, self.engine.max_batch_size)
        outputs = []
        with engine._lock, engine._adapter(adapter), torch.no_grad():
            for start in range(0, len(ids), size):
                batch = pad_right(ids[start:start + size], engine.tokenizer.pad_token_id)
                outputs.append(forward(engine.model, {k: v.to(engine.model.device) for k, v in batch.items()}))
        return torch.cat(outputs).float().cpu()


def split_query_document(messages: list[dict]) -> tuple[list[dict], list[dict]]:
    """ms-swift's reranker request: the query's conversation, then the document as the last message (an
    assistant turn in its examples)."""
    if len(messages) < 2 or messages[-1]['role'] not in ('assistant', 'user'):
        raise SwiftError('a reranker scores a query and a document: send the query, then the document as the last '
                         'message (role assistant)')
    document = messages[-1]
    return messages[:-1], [{'role': 'assistant', 'content': document['content']}]
