"""A toy alignment algorithm in one file, as a user adds one: its flag group, its loss, its trainer, its entry.
Registered by one line: ``ALGORITHMS['toy'] = TOY``. It trains on the chosen answers of preference pairs."""
from dataclasses import dataclass, field
from functools import partial

from swift.rlhf.base import AlignmentArguments, Algorithm
from swift.rlhf.preference import AnswerLogps, PreferenceLoss, make_preference_trainer


@dataclass
class ToyArguments(AlignmentArguments):
    toy_weight: float = field(default=1.0, metadata={'help': 'Toy: weight of the NLL of the chosen answer.'})


def toy_loss(logps: AnswerLogps, weight: float) -> PreferenceLoss:
    return PreferenceLoss(-weight * logps.chosen_mean, logps.chosen, logps.rejected)


def make_trainer(training, settings: ToyArguments, **kwargs):
    return make_preference_trainer(partial(toy_loss, weight=settings.toy_weight), training, **kwargs)


TOY = Algorithm(rows='pair', encoding='pair', make_trainer=make_trainer, arguments=ToyArguments)
