"""A sequence classifier's output as ms-swift's engines return it (``template.decode_seq_cls``): the prediction is
the answer, with the log-probabilities of the classes in ``logprobs``."""
import torch
import torch.nn.functional as F

SINGLE, MULTI, REGRESSION = 'single_label_classification', 'multi_label_classification', 'regression'


def problem_type_of(config) -> str:
    """The model's problem_type; unset, transformers' and ms-swift's default: regression for one output."""
    return config.problem_type or (REGRESSION if config.num_labels == 1 else SINGLE)


def decode_seq_cls(logits: torch.Tensor, problem_type: str, top_logprobs: int = 20) -> tuple:
    """``(prediction, logprobs)`` of one row's logits: the class index (single-label), the indices whose
    probability is at least 0.5 (multi-label) or the value(s) (regression, whose logprobs are None). ``logprobs``
    has ms-swift's shape: ``{'content': [{'index', 'logprobs', 'top_logprobs': [{'index', 'logprob'}]}]}``."""
    logits = logits.float()
    if problem_type == REGRESSION:
        values = logits.tolist()
        return (values[0] if len(values) == 1 else values), None
    if problem_type == MULTI:
        pred = (torch.sigmoid(logits) >= 0.5).nonzero(as_tuple=True)[0].tolist()
        logprobs = F.logsigmoid(logits)
    else:
        pred = int(logits.argmax(-1))
        logprobs = torch.log_softmax(logits, -1)
    order = logprobs.argsort(descending=True)[:top_logprobs].tolist()
    values = logprobs.tolist()
    entry = {'index': pred, 'logprobs': [values[i] for i in pred] if isinstance(pred, list) else values[pred],
             'top_logprobs': [{'index': i, 'logprob': values[i]} for i in order]}
    return pred, {'content': [entry]}
