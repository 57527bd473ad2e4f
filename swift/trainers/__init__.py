from .callbacks import JsonlLoggingCallback, MaxEpochsCallback, ProgressBarCallback, SaveAtEndCallback
from .data import EncodeStats, LazyEncodedDataset, encode_rows
from .plots import plot_logging
from .trainer import SwiftTrainer, SwiftTrainerMixin, count_real_tokens
