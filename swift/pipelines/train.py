"""``swift sft`` and ``swift pt``: load, encode, tune, train, save.

    swift sft --model Qwen/Qwen2.5-7B-Instruct --dataset data.jsonl --train_type lora --output_dir output
    swift pt  --model Qwen/Qwen2.5-7B --dataset corpus.jsonl --train_type full
"""
import os
from functools import partial
from itertools import islice
from typing import Callable

from transformers import EarlyStoppingCallback, TrainingArguments, set_seed
from transformers.integrations import TensorBoardCallback
from transformers.trainer_utils import IntervalStrategy, get_last_checkpoint

from ..arguments import TrainArguments, group
from ..arguments.eval_args import EvalScopeArguments
from ..arguments.train_args import TrainerSettings
from ..dataset import pack_rows, split_rows
from ..dataset.streaming import RowStream, open_stream
from ..template import DataCollator, Template
from ..template.base import IGNORE_INDEX
from ..trainers.evalscope import EvalScopeCallback
from ..trainers import (JsonlLoggingCallback, LazyEncodedDataset, MaxEpochsCallback, ProgressBarCallback,
                        SaveAtEndCallback, SwiftTrainer, encode_rows, plot_logging)
from ..tuners import TunerArguments, loraplus_optimizer, prepare_model, tuner_callbacks
from ..tuners.longlora import GROUPS as LONGLORA_GROUPS
from ..tuners.multimodal import part_learning_rates_optimizer
from ..utils import SwiftError, get_logger
from ..utils.dist import broadcast_from_main, init_deepspeed_comm
from ..utils.io import write_json
from ..utils.output_dir import next_run_dir
from ..trainers.optimizers import muon_optimizer
from ..trainers.streaming import EncodedStream, StreamingTrainer, load_position
from .common import load_dataset_rows, load_model_and_template, to_arguments
from .retrieval import load_retrieval_data, make_retrieval_trainer
from ..model.retrieval import RETRIEVAL_TASKS
from .seq_cls import check_seq_cls_args, load_seq_cls_data, make_seq_cls_trainer

logger = get_logger()
# How a run loads its encoded (train, val) data, and builds its trainer from the shared keyword arguments.
DataLoaderFn = Callable[[TrainArguments, Template], tuple]
TrainerFactory = Callable[..., SwiftTrainer]


def sft_main(args: TrainArguments | list[str] | None = None) -> dict:
    args = to_arguments(TrainArguments, args)
    if args.task_type == 'seq_cls':  # a classifier: labelled rows, a classification head (pipelines/seq_cls.py)
        return run_training(check_seq_cls_args(args), load_seq_cls_data, partial(make_seq_cls_trainer, args))
    if args.task_type in RETRIEVAL_TASKS:  # embedding and reranker models (pipelines/retrieval.py)
        return run_training(args, load_retrieval_data, partial(make_retrieval_trainer, args))
    return run_training(args)


def pt_main(args: TrainArguments | list[str] | None = None) -> dict:
    """Pre-training: no chat template, loss on every token (``swift sft --use_chat_template false``)."""
    args = to_arguments(TrainArguments, args)
    args.use_chat_template = False
    return run_training(args)


def run_training(args: TrainArguments, load_data: DataLoaderFn | None = None,
                 make_trainer: TrainerFactory | None = None) -> dict:
    """The life of a training run. ``swift rlhf`` passes its own data loading and trainer; the rest is shared."""
    # ---- setup ----
    if args.resume_from_checkpoint and not os.path.isdir(args.resume_from_checkpoint):
        raise SwiftError(f'--resume_from_checkpoint {args.resume_from_checkpoint}: no such folder')
    if args.streaming and load_data is not None:
        raise SwiftError(f'--streaming: --task_type {args.task_type} reads its rows whole; streaming is built for '
                         'causal_lm sft and pt')
    args.check_fsdp_device()
    if args.deepspeed:
        init_deepspeed_comm()  # before the model loads: ZeRO-3 shards its weights as they are created
    set_seed(args.seed)  # before the adapters are created: their initial weights must be reproducible
    model, tokenizer, template = load_model_and_template(args)
    if args.router_aux_loss_coef > 0:
        use_router_aux_loss(model, args.router_aux_loss_coef)
    train_data, val_data = (load_data or _load_datasets)(args, template)
    tuner = group(args, TunerArguments)
    model = prepare_model(model, args.train_type, tuner, bool(args.activation_checkpointing),
                          _lora_ga_step(args, train_data, tokenizer.pad_token_id), args.task_type)
    run_dir = _choose_run_dir(args)  # after the inputs load and the tuner fits, so an error leaves no empty folder
    checkpoint_args = _checkpoint_args(args, model, template, run_dir)
    if args.should_save:
        write_json(os.path.join(run_dir, 'args.json'), checkpoint_args)
    # The trainer gets transformers' own config for this run, not the command line.
    training = group(args, TrainingArguments, output_dir=run_dir,
                     **({} if val_data else {'eval_strategy': IntervalStrategy.NO}))
    trainer = (make_trainer or partial(_sft_trainer, args))(
        training, template=template, model=model, train_dataset=train_data, eval_dataset=val_data or None,
        processing_class=tokenizer,
        optimizers=(_optimizer(args, model), None),
        callbacks=[JsonlLoggingCallback(os.path.join(run_dir, 'logging.jsonl')), SaveAtEndCallback(),
                   *tuner_callbacks(model, args.train_type, tuner, args.seed)],
        checkpoint_args=checkpoint_args)
    trainer.settings = group(args, TrainerSettings)
    if args.early_stop_interval:
        if not val_data:
            raise SwiftError('--early_stop_interval needs evaluation rows: --val_dataset or --split_dataset_ratio')
        trainer.add_callback(EarlyStoppingCallback(early_stopping_patience=args.early_stop_interval))
    if args.max_epochs:
        trainer.add_callback(MaxEpochsCallback(args.max_epochs))
    if args.eval_use_evalscope:
        _add_evalscope(trainer, args, template, run_dir, bool(val_data))
    if args.logging_dir:  # transformers 5 dropped TrainingArguments.logging_dir; its TensorBoard callback keeps one
        for callback in trainer.callback_handler.callbacks:
            if isinstance(callback, TensorBoardCallback):
                callback.logging_dir = os.path.abspath(args.logging_dir)
    _use_own_progress_bar(trainer)

    # ---- train ----
    resume = args.resume_from_checkpoint
    if resume and args.resume_only_model and args.ignore_data_skip:
        # Weights only, and a fresh start at step 0 over all the data (ms-swift's --resume_only_model).
        trainer._load_from_checkpoint(resume)
        resume = None
    trainer.train(resume_from_checkpoint=resume)

    # ---- save ----
    return _finish(trainer, run_dir)


def _add_evalscope(trainer: SwiftTrainer, args: TrainArguments, template: Template, run_dir: str,
                   has_val_data: bool) -> None:
    """--eval_use_evalscope: each evaluation also scores the model on --eval_dataset (pipelines/eval.py)."""
    from .eval import check_datasets, evalscope_scorer, training_task
    task = training_task(group(args, EvalScopeArguments), run_dir, args.per_device_eval_batch_size)
    check_datasets(task)  # a benchmark that cannot load fails now, not at the first evaluation
    score = evalscope_scorer(template, task)
    # With held-out rows it scores when the trainer evaluates; without, on the run's own --eval_strategy/--eval_steps.
    schedule = {} if has_val_data else {'strategy': str(IntervalStrategy(args.eval_strategy).value),
                                        'steps': args.eval_steps}
    trainer.add_callback(EvalScopeCallback(score, trainer.log, **schedule))


def _sft_trainer(args: TrainArguments, training: TrainingArguments, template: Template, **kwargs) -> SwiftTrainer:
    collator = DataCollator(kwargs['processing_class'].pad_token_id, padding_free=args.padding_free or args.packing,
                            pad_to_multiple_of=LONGLORA_GROUPS if args.train_type == 'longlora' else 1)
    trainer_class = StreamingTrainer if isinstance(kwargs['train_dataset'], EncodedStream) else SwiftTrainer
    return trainer_class(args=training, data_collator=collator, weighted_loss_scale=bool(template.weighted_scale),
                        **kwargs)


def _choose_run_dir(args: TrainArguments) -> str:
    """A new ``vN-date-time`` folder under --output_dir, also when resuming: the resumed run only reads the
    checkpoint it starts from, so the source run keeps every file as it was (ms-swift does the same)."""
    run_dir = broadcast_from_main(next_run_dir(args.output_dir, args.add_version) if args.should_save else None)
    os.makedirs(run_dir, exist_ok=True)
    logger.info(f'run folder: {run_dir}')
    return run_dir


def load_train_val_rows(args: TrainArguments, check: Callable[[dict], None] | None = None):
    """Training rows and held-out rows: --val_dataset, or a --split_dataset_ratio share of --dataset."""
    rows = load_dataset_rows(args, args.dataset, check)
    if args.val_dataset:
        return split_rows(rows, 0, args.data_seed, args.dataset_shuffle)[0], load_dataset_rows(args, args.val_dataset,
                                                                                                check)
    return split_rows(rows, args.split_dataset_ratio, args.data_seed, args.dataset_shuffle)


def _load_datasets(args: TrainArguments, template: Template):
    if args.cached_dataset or args.cached_val_dataset:  # rows encoded once by swift export --to_cached_dataset
        from .cached_dataset import load_cached_datasets  # that module uses load_train_val_rows from here
        return load_cached_datasets(args, template)
    if args.streaming:
        return _load_stream(args, template)
    train_rows, val_rows = load_train_val_rows(args)
    if args.lazy_tokenize:
        return LazyEncodedDataset(template, train_rows), (LazyEncodedDataset(template, val_rows) if val_rows else None)
    return encode_split(template, train_rows, args, 'train'), encode_split(template, val_rows, args, 'val')


def _load_stream(args: TrainArguments, template: Template):
    """--streaming: training rows read, encoded and packed while training (dataset/ and trainers/streaming.py),
    from the position a resumed checkpoint saved; --val_dataset rows are encoded now."""
    stream, infos = open_stream(args.dataset, use_hf=args.use_hf, seed=args.data_seed, shuffle=args.dataset_shuffle,
                                shuffle_buffer_size=args.shuffle_buffer_size, interleave_prob=args.interleave_prob,
                                stopping_strategy=args.stopping_strategy, rank=args.process_index,
                                world_size=args.world_size)
    rows = RowStream(stream, infos, columns=args.columns, strict=args.strict, model_name=args.model_name,
                     model_author=args.model_author, auto_columns=not args.disable_auto_column_mapping)
    resume = args.resume_from_checkpoint
    fresh = not resume or (args.resume_only_model and args.ignore_data_skip)
    pack_length = (args.packing_length or args.max_length) if args.packing else None
    if args.packing and pack_length is None:
        raise SwiftError('--packing true needs --max_length or --packing_length')
    train = EncodedStream(rows, template, pack_length, None if fresh else load_position(resume, args.process_index))
    val = encode_split(template, load_dataset_rows(args, args.val_dataset), args, 'val') if args.val_dataset else []
    return train, val


def encode_split(template: Template, rows: list[dict], args: TrainArguments, split: str) -> list[dict]:
    if not rows:
        return []
    if args.load_from_cache_file:  # the encoded rows of an earlier run with the same rows and encoding
        from .cached_dataset import encode_rows_cached
        encoded, stats = encode_rows_cached(template, rows, args)
    else:
        encoded, stats = encode_rows(template, rows, args.dataset_num_proc)
    stats.report(split)
    if not encoded:
        raise SwiftError(f'no {split} row is left to train on: all are longer than --max_length {args.max_length} '
                         'or carry no loss')
    return pack_split(encoded, args, split)


def pack_split(rows: list[dict], args: TrainArguments, split: str) -> list[dict]:
    """Encoded rows packed into sequences of --packing_length (default --max_length) when --packing is on."""
    if not rows or not args.packing:
        return rows
    length = args.packing_length or args.max_length
    if length is None:
        raise SwiftError('--packing true needs --max_length or --packing_length')
    packed = pack_rows(rows, length)
    logger.info(f'{split}: packed into {len(packed)} sequences of at most {length} tokens')
    return packed


def _lora_ga_step(args: TrainArguments, train_data, pad_token_id: int) -> Callable | None:
    """LoRA-GA's gradient estimate: forward and backward over the first --lora_ga_iters batches of
    --lora_ga_batch_size training rows, each cut to --lora_ga_max_length tokens."""
    if args.init_weights != 'lora-ga':
        return None
    limit, wanted = args.lora_ga_max_length, args.lora_ga_batch_size * args.lora_ga_iters
    # Rows whose answer starts after the cut would give a NaN loss and no gradient.
    cut = ({'input_ids': row['input_ids'][:limit], 'labels': row['labels'][:limit]} for row in train_data)
    rows = list(islice((row for row in cut if any(label != IGNORE_INDEX for label in row['labels'])), wanted))
    if not rows:
        raise SwiftError(f'--init_weights lora-ga: no training row has an answer token within its first '
                         f'{limit} tokens (--lora_ga_max_length)')
    count, collate = len(rows), DataCollator(pad_token_id)
    batches = [collate(rows[i:i + args.lora_ga_batch_size]) for i in range(0, count, args.lora_ga_batch_size)]

    def step(model) -> None:
        for batch in batches:
            model(**{key: value.to(model.device) for key, value in batch.items()}).loss.backward()
    return step


def _optimizer(args: TrainArguments, model):
    """None lets transformers build the optimizer from --optim (GaLore's too); LoRA+ and Muon build their own."""
    if args.optimizer == 'multimodal' or args.vit_lr is not None or args.aligner_lr is not None:
        if args.optimizer not in (None, 'multimodal') or args.lorap_lr_ratio is not None:
            raise SwiftError('--vit_lr/--aligner_lr build ms-swift\'s multimodal optimizer; leave --optimizer (or set '
                             'it to multimodal) and --lorap_lr_ratio unset')
        return part_learning_rates_optimizer(model, args.vit_lr, args.aligner_lr, args.learning_rate,
                                             args.weight_decay, (args.adam_beta1, args.adam_beta2), args.adam_epsilon)
    if args.optimizer == 'muon':
        return muon_optimizer(model, args.learning_rate, args.weight_decay, (args.adam_beta1, args.adam_beta2),
                              args.adam_epsilon)
    if args.lorap_lr_ratio is None:
        return None
    return loraplus_optimizer(model, args.lorap_lr_ratio, args.learning_rate, args.weight_decay,
                              (args.adam_beta1, args.adam_beta2), args.adam_epsilon)


def use_router_aux_loss(model, coef: float) -> None:
    """--router_aux_loss_coef: the model returns its router logits and adds ``coef`` times its load-balancing loss
    (transformers' MoE models read the weight from their config at construction, so both are set)."""
    if not hasattr(model.config, 'router_aux_loss_coef'):
        raise SwiftError(f'--router_aux_loss_coef: {model.config.model_type} is not a mixture-of-experts model')
    model.config.router_aux_loss_coef, model.config.output_router_logits = coef, True
    for module in model.modules():
        if hasattr(module, 'router_aux_loss_coef'):
            module.router_aux_loss_coef = coef


def _checkpoint_args(args: TrainArguments, model, template: Template, run_dir: str) -> dict:
    """Every argument, with what was resolved at run time: model folder, template, system prompt, run folder."""
    saved = args.to_dict()
    saved.update(output_dir=run_dir, model=os.path.abspath(args.model) if os.path.isdir(args.model) else args.model,
                 model_type=model.model_meta.model_type, template=template.template_type,
                 system=template.default_system, hub_token=None,
                 resume_from_checkpoint=args.resume_from_checkpoint and os.path.abspath(args.resume_from_checkpoint))
    return saved


def _use_own_progress_bar(trainer: SwiftTrainer) -> None:
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(ProgressBarCallback())


def _finish(trainer: SwiftTrainer, run_dir: str) -> dict:
    last = get_last_checkpoint(run_dir)
    best = trainer.state.best_model_checkpoint
    if trainer.settings.create_checkpoint_symlink and last:  # <run>/last and <run>/best, as ms-swift links them
        links = {os.path.join(run_dir, 'last'): last, os.path.join(run_dir, 'best'): best or last}
        if trainer.args.should_save:
            for path, target in links.items():
                if os.path.islink(path):
                    os.remove(path)
                os.symlink(os.path.abspath(target), path)
        last, best = links
    if trainer.args.should_save:
        plot_logging(os.path.join(run_dir, 'logging.jsonl'), os.path.join(run_dir, 'images'))
        logger.info(f'last_model_checkpoint: {last}')
        logger.info(f'best_model_checkpoint: {best}')
    return {'last_model_checkpoint': last, 'best_model_checkpoint': best, 'run_dir': run_dir,
            'log_history': trainer.state.log_history}
