#!/usr/bin/env bash
# Quantized copies of a model (docs/export.md), each answering once: GPTQ int4 calibrated on sample rows, FP8
# (no data), and bitsandbytes int4. GPTQ and FP8 need llmcompressor (scripts/setup.sh installs it).
set -euo pipefail
. "$(dirname "$0")/../_model.sh"
swift export --model "$MODEL" --quant_method gptq --quant_bits 4 --dataset examples/data/alpaca_zh_sample.jsonl \
    --quant_n_samples 64 --max_length 512 --output_dir output/quant/gptq-int4
swift export --model "$MODEL" --quant_method fp8 --output_dir output/quant/fp8
swift export --model "$MODEL" --quant_method bnb --quant_bits 4 --output_dir output/quant/bnb-int4
for out in gptq-int4 fp8 bnb-int4; do
    swift infer --model "output/quant/$out" --val_dataset examples/data/alpaca_zh_sample.jsonl#1 --max_new_tokens 16
done
