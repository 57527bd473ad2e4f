#!/usr/bin/env bash
# Merge a LoRA checkpoint into its base: writes <checkpoint>-merged/, loadable by plain transformers.
set -euo pipefail
CKPT="${1:?usage: merge_lora.sh output/vx-xxx/checkpoint-xxx}"
swift export --adapters "$CKPT" --merge_lora true
swift infer --model "$CKPT-merged" --temperature 0 --max_new_tokens 64 --stream true <<< $'who are you?\nexit'
