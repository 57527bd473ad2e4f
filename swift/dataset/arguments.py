"""The data flags that dataset/ itself reads, composed into the training command's arguments."""
from dataclasses import dataclass, field


@dataclass
class StreamingArguments:
    """ms-swift's streaming flags (its DataArguments); read by the training pipeline."""
    streaming: bool = field(
        default=False, metadata={'help': 'Read the training data lazily while training (jsonl, csv, parquet, '
                                         'folders): memory stays flat whatever the corpus size. Needs --max_steps; '
                                         'the position in the stream is saved in each checkpoint.'})
    shuffle_buffer_size: int = field(
        default=1000, metadata={'help': 'With --streaming: rows shuffled together in a buffer (when '
                                        '--dataset_shuffle is true).'})
