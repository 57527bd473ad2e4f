# Sourced by the example scripts: MODEL is a local model folder; a tiny one is built offline if none is given.
# Swap in any Hugging Face folder or hub id: MODEL=Qwen/Qwen2.5-7B-Instruct bash examples/train/lora_sft.sh
: "${MODEL:=demo/model}"
if [ ! -d "$MODEL" ] && [ "$MODEL" = demo/model ]; then
    python -m swift.utils.tiny_models "$MODEL" --family qwen2 --hidden 128 --layers 2 --vocab 2000
fi
last_checkpoint() { ls -d "$1"/v*/checkpoint-* | sort -V | tail -1; }
