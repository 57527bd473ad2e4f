"""ms-swift's weighted agent loss scales (--loss_scale react, hermes, agentflan, ...): each token's weight as its
config files give it, the weights carried through the collator into the trainer's loss, and a run that trains."""
import json

import pytest
import torch
import torch.nn.functional as F

from swift.dataset import normalize_row
from swift.template import get_template
from swift.template.collator import DataCollator
from swift.utils import SwiftError

from .test_agent import ANSWER, ROW

REACT_TURN = ("Action: realtime_aqi\nAction Input: {'city': 'Beijing'}\nAction: realtime_aqi\nAction Input: "
              "{'city': '上海'}\nObservation:")
HERMES_CALLS = [f'<tool_call>\n{{"name": "realtime_aqi", "arguments": {{"city": "{city}"}}}}\n</tool_call>'
                for city in ('Beijing', '上海')]


@pytest.fixture(scope='module')
def qwen2_5_tokenizer():
    from swift.utils.tiny_models import build_tokenizer
    return build_tokenizer('qwen2_5', 600)


def _weighted_runs(tokenizer, encoded) -> list[tuple[str, float]]:
    """Runs of consecutive tokens with the same non-zero weight, decoded, with the weight."""
    runs, run, weight = [], [], 0.0
    for token, w in zip(encoded['input_ids'] + [None], encoded['loss_scale'] + [0.0]):
        if w != weight and run:
            runs.append((tokenizer.decode(run), weight))
            run = []
        weight = w
        if w:
            run.append(token)
    return runs


def _encode(tokenizer, agent_template, loss_scale, row=ROW):
    return get_template('qwen2_5', tokenizer, agent_template=agent_template, loss_scale=loss_scale).encode(
        normalize_row(row))


def test_react_weights_calls_and_the_observation_keyword_twice_and_drops_the_results(qwen2_5_tokenizer):
    encoded = _encode(qwen2_5_tokenizer, 'react_en', 'react')
    # react.json: Action:/Action Input: and what follows 2.0, Observation: 2.0 and its result 0; the answer after
    # the result (a piece of its own, as in ms-swift) and the turn's end 1.0
    assert _weighted_runs(qwen2_5_tokenizer, encoded) == [(REACT_TURN, 2.0), (ANSWER + '<|im_end|>', 1.0)]
    # a weight of 0 is a -100 label; every labelled token has a weight
    assert [lab != -100 for lab in encoded['labels']] == [w > 0 for w in encoded['loss_scale']]
    assert _encode(qwen2_5_tokenizer, 'react_en', 'default')['labels'] == encoded['labels']


def test_hermes_weights_each_tool_call_block_twice(qwen2_5_tokenizer):
    encoded = _encode(qwen2_5_tokenizer, 'hermes', 'hermes')
    # hermes.json: each <tool_call>.+?</tool_call> match 2.0, the rest of the answer 1.0
    assert _weighted_runs(qwen2_5_tokenizer, encoded) == [
        (HERMES_CALLS[0], 2.0), ('\n', 1.0), (HERMES_CALLS[1], 2.0), ('<|im_end|>', 1.0), (ANSWER + '<|im_end|>', 1.0)]


def test_agentflan_weights_arguments_and_whole_answers_to_its_questions(qwen2_5_tokenizer):
    runs = _weighted_runs(qwen2_5_tokenizer, _encode(qwen2_5_tokenizer, 'react_en', 'agentflan'))
    # agentflan.json: the keyword 1.0, what follows it 3.0
    assert runs[:2] == [('Action:', 1.0), (' realtime_aqi\n', 3.0)] and runs[-2][1] == 2.0  # Observation:
    row = {'messages': [{'role': 'user', 'content': 'What is the tool you want to use?'},
                        {'role': 'assistant', 'content': 'Action: search'}]}
    assert _weighted_runs(qwen2_5_tokenizer, _encode(qwen2_5_tokenizer, 'react_en', 'agentflan', row)) == [
        ('Action: search', 3.0), ('<|im_end|>', 1.0)]  # a query key weighs the whole answer (not the turn's end)


def test_binary_scales_add_no_weights_and_bad_names_stop_in_one_line(qwen2_5_tokenizer):
    for scale in ('default', 'last_round', 'all', 'ignore_empty_think'):
        assert 'loss_scale' not in _encode(qwen2_5_tokenizer, 'hermes', scale)
    last = _encode(qwen2_5_tokenizer, 'hermes', 'last_round+hermes')
    assert _weighted_runs(qwen2_5_tokenizer, last) == [(ANSWER + '<|im_end|>', 1.0)]
    with pytest.raises(SwiftError, match="'nonsense' is not built"):
        _encode(qwen2_5_tokenizer, 'hermes', 'hermes+nonsense')
    with pytest.raises(SwiftError, match='one weighted scale at a time'):
        _encode(qwen2_5_tokenizer, 'hermes', 'react+hermes')


def test_the_trainer_weighs_each_tokens_cross_entropy_as_ms_swift(qwen2_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

    from swift.arguments.train_args import TrainerSettings
    from swift.trainers.trainer import SwiftTrainer
    tokenizer = AutoTokenizer.from_pretrained(qwen2_dir)
    model = AutoModelForCausalLM.from_pretrained(qwen2_dir).eval()
    template = get_template('qwen', tokenizer, agent_template='react_en', loss_scale='react')
    plain = {'messages': [{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': 'Final Answer: yes'}]}
    rows = [template.encode(normalize_row(ROW)), template.encode(plain)]
    batch = DataCollator(tokenizer.pad_token_id)(rows)
    assert batch['loss_scale'].dtype == torch.float32 and batch['loss_scale'][1, len(rows[1]['input_ids']):].eq(0).all()
    flat = DataCollator(tokenizer.pad_token_id, padding_free=True)(rows)  # padding-free and packed batches
    assert flat['loss_scale'].tolist() == [rows[0]['loss_scale'] + rows[1]['loss_scale']]
    trainer = SwiftTrainer(model=model, args=TrainingArguments(str(tmp_path), report_to=[], use_cpu=True))
    trainer.settings = TrainerSettings()
    with torch.no_grad():
        weighted = trainer.compute_loss(model, dict(batch))
        logits = model(input_ids=batch['input_ids'], attention_mask=batch['attention_mask']).logits[:, :-1]
        labels = batch['labels'][:, 1:]
        token_ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                                   ignore_index=-100, reduction='none')
        by_hand = (token_ce * batch['loss_scale'][:, 1:].reshape(-1)).sum() / (labels != -100).sum()
        assert weighted.item() == pytest.approx(by_hand.item(), rel=1e-5)
        assert by_hand.item() != pytest.approx((token_ce.sum() / (labels != -100).sum()).item(), rel=1e-3)
        # without weights the batch is the 0/1 one and the loss the model's own, as before
        unweighted = {k: v for k, v in batch.items() if k != 'loss_scale'}
        fresh = SwiftTrainer(model=model, args=TrainingArguments(str(tmp_path), report_to=[], use_cpu=True))
        fresh.settings = TrainerSettings()
        assert fresh.compute_loss_func is None
        assert fresh.compute_loss(model, unweighted).item() == pytest.approx(model(**unweighted).loss.item(), rel=1e-6)


def test_sft_with_loss_scale_react_trains(qwen2_dir, tmp_path):
    from swift.llm import sft_main
    data = tmp_path / 'agent.jsonl'
    data.write_text(''.join(json.dumps(ROW, ensure_ascii=False) + '\n' for _ in range(8)))

    def losses(loss_scale: str, epochs: str) -> list[float]:
        result = sft_main(['--model', qwen2_dir, '--dataset', str(data), '--output_dir', str(tmp_path / loss_scale),
                           '--loss_scale', loss_scale, '--agent_template', 'react_en', '--train_type', 'full',
                           '--learning_rate', '1e-2', '--per_device_train_batch_size', '4', '--num_train_epochs',
                           epochs, '--logging_steps', '1', '--save_strategy', 'no', '--report_to', 'none'])
        return [log['loss'] for log in result['log_history'] if 'loss' in log]

    weighted = losses('react', '4')
    assert len(weighted) == 8 and weighted[-1] < weighted[0] * 0.7, weighted
    # the first step's loss (same weights, same batch) differs from the 0/1 run's: the weights reached the loss
    assert weighted[0] != pytest.approx(losses('default', '0.5')[0], rel=1e-3)


def test_rlhf_refuses_weighted_scales_in_one_line(qwen2_dir, tmp_path):
    from swift.llm import rlhf_main
    data = tmp_path / 'dpo.jsonl'
    data.write_text(json.dumps({'messages': [{'role': 'user', 'content': 'hi'},
                                             {'role': 'assistant', 'content': 'Action: a'}],
                                'rejected_response': 'Action: b'}) + '\n')
    with pytest.raises(SwiftError, match='--loss_scale react: weighted loss scales are built for swift sft'):
        rlhf_main(['--rlhf_type', 'dpo', '--model', qwen2_dir, '--dataset', str(data), '--loss_scale', 'react',
                   '--output_dir', str(tmp_path / 'out'), '--report_to', 'none'])
