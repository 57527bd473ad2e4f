from .callbacks import tuner_callbacks
from .loraplus import loraplus_optimizer
from .peft_tuners import PEFT_TUNERS, TunerSettings
from .prepare import prepare_model
from .swift import Swift
