from .callbacks import tuner_callbacks
from .loraplus import loraplus_optimizer
from .arguments import TunerArguments
from .peft_tuners import PEFT_TUNERS
from .prepare import prepare_model
from .swift import Swift
