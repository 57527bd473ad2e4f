from .prepare import LoraSettings, prepare_model
from .swift import Swift
