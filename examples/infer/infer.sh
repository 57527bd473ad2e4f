#!/usr/bin/env bash
# Interactive chat with a LoRA checkpoint (base model and system prompt come from its args.json),
# then batch inference over the run's held-out split.
set -euo pipefail
CKPT="${1:?usage: infer.sh output/vx-xxx/checkpoint-xxx}"
swift infer --adapters "$CKPT" --infer_backend pt --stream true --temperature 0 --max_new_tokens 2048
swift infer --adapters "$CKPT" --infer_backend pt --temperature 0 --max_new_tokens 2048 --load_data_args true \
    --max_batch_size 8
