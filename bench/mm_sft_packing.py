#!/usr/bin/env python3
"""Multimodal SFT throughput: ``swift sft --packing true`` against without, on the same image rows, and both against
ms-swift 4.6 on the same command. CPU, offline.

Builds a tiny Qwen2.5-VL (random weights, 2-block vision tower, ``--hidden`` wide text model of ``--layers`` layers;
swift/utils/tiny_models.py) and ``--rows`` rows of one or two PNG squares (56 to 224 pixels a side, multiples of 28,
so 4 to 64 vision tokens each) with a question and an answer of 4 to 60 words. Each run is
``swift sft --tuner_type lora --target_modules all-linear`` (ms-swift 4 knows no --train_type) for one epoch,
batch 4, fp32, then reports real tokens/s = the rows' tokens (text and vision, as swift's template encodes them:
the processor's own count) / ``train_runtime`` from the run's logging.jsonl, and the command's wall time.
Ratios at the end. ``--gradient_accumulation_steps 1`` on both sides: ms-swift 4 otherwise accumulates 16 / batch steps.

    .venv/bin/python bench/mm_sft_packing.py --peer /work/peers/ms-swift-venv/bin/swift \\
        --peer-pythonpath /work/peers/ms-swift-mm-site

ms-swift needs ``--model_type qwen2_5_vl --template qwen2_5_vl --check_model false`` for a local folder offline,
and for Qwen2.5-VL the packages qwen_vl_utils and torchvision, which its venv lacks: ``--peer-pythonpath`` names a
folder that holds them (bench/README.md says how it was made). Run it under ``flock /tmp/bench.lock``.
"""
import argparse
import glob
import json
import os
import random
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SIZES = (56, 84, 112, 140, 168, 196, 224)
COLOURS = {'red': (220, 30, 30), 'green': (30, 180, 60), 'blue': (40, 60, 220), 'yellow': (240, 220, 40)}
COMMON = ['--tuner_type', 'lora', '--target_modules', 'all-linear', '--num_train_epochs', '1',
          '--per_device_train_batch_size', '4', '--gradient_accumulation_steps', '1', '--learning_rate', '1e-4',
          '--max_length', '2048', '--torch_dtype', 'float32', '--split_dataset_ratio', '0', '--save_strategy', 'no',
          '--report_to', 'none', '--logging_steps', '5', '--dataloader_num_workers', '0']
PEER_EXTRA = ['--model_type', 'qwen2_5_vl', '--template', 'qwen2_5_vl', '--check_model', 'false']


def prepare(workdir: str, n_rows: int, hidden: int, layers: int, seed: int = 0) -> tuple[str, str]:
    """The model folder and the dataset (images beside it), built once per settings."""
    from PIL import Image, ImageDraw

    from swift.utils.tiny_models import _WORDS, build_tiny_model
    model_dir, data = os.path.join(workdir, f'model-{hidden}x{layers}'), os.path.join(workdir, f'train-{n_rows}.jsonl')
    if not os.path.isfile(os.path.join(model_dir, 'config.json')):
        build_tiny_model(model_dir, 'qwen2_5_vl', hidden_size=hidden, num_layers=layers)
    rng = random.Random(seed)
    os.makedirs(os.path.join(workdir, 'pics'), exist_ok=True)
    with open(data, 'w', encoding='utf-8') as f:
        for i in range(n_rows):
            images = []
            for j in range(rng.choice((1, 1, 2))):
                size, colour = rng.choice(SIZES), rng.choice(list(COLOURS))
                path = os.path.join(workdir, 'pics', f'{i}-{j}.png')
                image = Image.new('RGB', (size, size), (255, 255, 255))
                ImageDraw.Draw(image).rectangle([size // 8, size // 8, size - size // 8, size - size // 8],
                                                fill=COLOURS[colour])
                image.save(path)
                images.append(path)
            answer = ' '.join(rng.choice(_WORDS) for _ in range(rng.randint(4, 60)))
            question = '<image>' * len(images) + 'Describe the picture.'
            f.write(json.dumps({'messages': [{'role': 'user', 'content': question},
                                             {'role': 'assistant', 'content': answer}], 'images': images}) + '\n')
    return model_dir, data


def count_tokens(model_dir: str, data: str) -> int:
    from swift.model import MODEL_REGISTRY, load_processor
    from swift.template import get_template
    processor = load_processor(model_dir, MODEL_REGISTRY['qwen2_5_vl'])
    template = get_template('qwen2_5_vl', processor)
    with open(data, encoding='utf-8') as f:
        return sum(len(template.encode(json.loads(line))['input_ids']) for line in f)


def run(name: str, exe: str, args: list[str], output_dir: str, env: dict) -> dict:
    """One ``swift sft`` run: its train_runtime (logging.jsonl) and wall time, or the reason it failed."""
    started = time.time()
    os.makedirs(os.path.dirname(output_dir), exist_ok=True)
    log_path = output_dir + '.log'
    with open(log_path, 'w') as log:
        result = subprocess.run([exe, 'sft', *args, '--output_dir', output_dir], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **env})
    wall = time.time() - started
    records = [json.loads(line) for path in glob.glob(os.path.join(output_dir, '**', 'logging.jsonl'),
                                                      recursive=True) for line in open(path) if line.strip()]
    runtime = next((r['train_runtime'] for r in records if 'train_runtime' in r), None)
    if result.returncode or runtime is None:
        tail = open(log_path, errors='replace').read().strip().splitlines()[-1:] or ['']
        return {'name': name, 'error': f'exit {result.returncode}: {tail[0][:300]}', 'log': log_path}
    return {'name': name, 'train_runtime': runtime, 'wall': wall, 'log': log_path}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--ours', default=os.path.join(os.path.dirname(sys.executable), 'swift'))
    parser.add_argument('--peer', help="ms-swift's swift executable (left out: swift alone)")
    parser.add_argument('--peer-pythonpath', default='', help='a folder with qwen_vl_utils and torchvision for it')
    parser.add_argument('--workdir', default='/tmp/swift-bench-mm')
    parser.add_argument('--rows', type=int, default=96)
    parser.add_argument('--hidden', type=int, default=256)
    parser.add_argument('--layers', type=int, default=4)
    parser.add_argument('--json', help='also write the results here')
    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    model_dir, data = prepare(args.workdir, args.rows, args.hidden, args.layers)
    tokens = count_tokens(model_dir, data)
    base = ['--model', model_dir, '--dataset', data, *COMMON]
    env = {'MAX_PIXELS': str(224 * 224), 'TOKENIZERS_PARALLELISM': 'false'}
    peer_env = {**env, 'PYTHONPATH': args.peer_pythonpath} if args.peer_pythonpath else env
    sides = [('swift', args.ours, [], env)] + ([('ms-swift', args.peer, PEER_EXTRA, peer_env)] if args.peer else [])
    results = []
    for side, exe, extra, side_env in sides:
        for packing in ('false', 'true'):
            name = f'{side} packing={packing}'
            out = os.path.join(args.workdir, 'runs', f'{side}-packing-{packing}-{int(time.time())}')
            print(f'# {name}: {shlex.join([exe, "sft", *base, *extra, "--packing", packing])}', flush=True)
            result = run(name, exe, [*base, *extra, '--packing', packing], out, side_env)
            if 'train_runtime' in result:
                result['tokens_per_s'] = tokens / result['train_runtime']
            print(json.dumps(result), flush=True)
            results.append(result)
    report(results, tokens, args.rows)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'tokens': tokens, 'rows': args.rows, 'results': results}, f, indent=1)


def report(results: list[dict], tokens: int, rows: int) -> None:
    print(f'\n{rows} rows, {tokens} tokens (text + vision)\n')
    print('| run | real tokens/s | train_runtime s | wall s |\n|---|---|---|---|')
    speed = {}
    for r in results:
        if 'error' in r:
            print(f"| {r['name']} | failed: {r['error']} | | |")
            continue
        speed[r['name']] = r['tokens_per_s']
        print(f"| {r['name']} | {r['tokens_per_s']:.0f} | {r['train_runtime']:.1f} | {r['wall']:.1f} |")
    pairs = [('swift packing=true', 'swift packing=false'), ('ms-swift packing=true', 'ms-swift packing=false'),
             ('swift packing=false', 'ms-swift packing=false'), ('swift packing=true', 'ms-swift packing=true')]
    for a, b in pairs:
        if a in speed and b in speed:
            print(f'{a} / {b}: {speed[a] / speed[b]:.2f}')


if __name__ == '__main__':
    main()
