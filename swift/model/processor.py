"""Processors of multimodal models, built from their parts so that no torchvision is needed.

transformers' ``AutoProcessor`` also loads a model's video processor, which needs torchvision; a CPU environment
cannot have it (the only torchvision build on PyPI breaks the CPU torch). The processors here hold the image
processor (its PIL backend) and the tokenizer only; templates turn video frames into pixels themselves.
"""
from transformers import AutoImageProcessor, PreTrainedTokenizerBase, ProcessorMixin


class _SwiftProcessor:
    """What a processor lacks, its tokenizer answers (``pad_token_id``, ``eos_token``, ...), as in ms-swift, so code
    written for a tokenizer accepts the processor. Saving also writes the image processor's (or the audio feature
    extractor's) own preprocessor_config.json, which transformers 4 reads (5 reads processor_config.json)."""

    def __getattr__(self, name: str):
        tokenizer = self.__dict__.get('tokenizer')  # absent while unpickling or copying: no recursion then
        if tokenizer is None or name.startswith('__'):
            raise AttributeError(name)
        return getattr(tokenizer, name)

    def save_pretrained(self, save_directory: str, *args, **kwargs):
        saved = super().save_pretrained(save_directory, *args, **kwargs)
        for part in ('image_processor', 'feature_extractor'):
            if part in self.__dict__:
                self.__dict__[part].save_pretrained(save_directory)
        return saved


def image_only(processor_cls: type[ProcessorMixin], module: str) -> type[ProcessorMixin]:
    """``processor_cls`` without its video processor, to be bound in ``module`` as ``ImageOnly<name>``. It keeps the
    name it saves under (``processor_class`` in processor_config.json), so plain transformers loads a folder it
    saved; pickle finds it by its module and qualname."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        processor_cls.__init__(self, image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    cls = type(f'ImageOnly{processor_cls.__name__}', (_SwiftProcessor, processor_cls), {'__init__': __init__})
    cls.__name__, cls.__module__ = processor_cls.__name__, module
    return cls


def load_image_processor(model_dir: str):
    """The image processor saved in ``model_dir`` (preprocessor_config.json or processor_config.json)."""
    return AutoImageProcessor.from_pretrained(model_dir)


def build_processor(processor_cls: type[ProcessorMixin], model_dir: str,
                    tokenizer: PreTrainedTokenizerBase) -> ProcessorMixin:
    return processor_cls(load_image_processor(model_dir), tokenizer, chat_template=tokenizer.chat_template)
