#!/usr/bin/env bash
# One tuner of docs/tuners.md on the sample data, then an answer from its checkpoint:
#   bash examples/train/tuners/train.sh reft        (lora, dora, qlora, lora-ga, pissa, adalora, longlora, reft,
#                                                    adapter, llamapro, vera, boft, fourierft, bone, full, lisa)
set -euo pipefail
. "$(dirname "$0")/../../_model.sh"
TUNER="${1:?usage: train.sh TUNER (see the list at the top of this file)}"
case "$TUNER" in
    qlora) FLAGS=(--train_type qlora --bnb_4bit_quant_type nf4 --bnb_4bit_use_double_quant true) ;;
    lora-ga|pissa) FLAGS=(--train_type lora --init_weights "$TUNER") ;;
    reft) FLAGS=(--train_type reft --reft_rank 4) ;;
    lisa) FLAGS=(--train_type full --lisa_activated_layers 1 --lisa_step_interval 5) ;;
    llamapro) FLAGS=(--train_type llamapro --llamapro_num_new_blocks 2) ;;  # one per layer of the tiny demo model
    *) FLAGS=(--train_type "$TUNER") ;;
esac
swift sft \
    --model "$MODEL" \
    --dataset examples/data/alpaca_zh_sample.jsonl#64 \
    "${FLAGS[@]}" \
    --max_steps 8 \
    --per_device_train_batch_size 2 \
    --max_length 512 \
    --logging_steps 2 \
    --save_steps 8 \
    --output_dir "output/tuners/$TUNER"
CKPT=$(last_checkpoint "output/tuners/$TUNER")
# Full training and LLaMA-Pro save whole models; the others save adapters.
case "$TUNER" in full|lisa|llamapro) LOAD=(--model "$CKPT") ;; *) LOAD=(--adapters "$CKPT") ;; esac
swift infer "${LOAD[@]}" --val_dataset examples/data/alpaca_zh_sample.jsonl#2 --max_new_tokens 16
