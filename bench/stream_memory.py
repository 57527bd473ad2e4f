"""Peak memory of `swift sft --streaming true` on a 2 GB jsonl against a 20 MB one: it should not grow with the file.

    flock /tmp/bench.lock nice -n 0 .venv/bin/python bench/stream_memory.py [--big-gb 2] [--steps 30]

Writes both corpora (rows of about 1 KB) and a tiny random-weight Qwen2 model under a temporary folder in /tmp,
trains each corpus for --steps steps with --streaming true in its own process, prints each run's peak RSS (the
process's ru_maxrss from wait4) and their ratio, then deletes the folder. A run reads only the rows its steps need
(plus the --shuffle_buffer_size buffer), so the ratio should be about 1; without --streaming the same command reads,
normalises and encodes every row before the first step.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_corpus(path: str, size_bytes: int) -> int:
    """Rows of about 1 KB, written in 10 MB chunks until ``size_bytes``; returns the row count."""
    words = 'the quick brown fox jumps over a lazy dog while seven wizards quietly box'.split()
    chunk, rows = [], 0
    for i in range(10_000):
        answer = ' '.join(words[(i + k) % len(words)] for k in range(170))
        chunk.append(json.dumps({'messages': [{'role': 'user', 'content': f'row {i}: tell me a story'},
                                              {'role': 'assistant', 'content': answer}]}) + '\n')
    block = ''.join(chunk).encode()
    written = 0
    with open(path, 'wb') as f:
        while written < size_bytes:
            f.write(block)
            written += len(block)
            rows += len(chunk)
    return rows


def peak_rss_of_training(model: str, corpus: str, out: str, steps: int) -> tuple[float, float, int]:
    """(peak RSS in MiB, seconds, exit status) of one streaming training run in its own process."""
    argv = [sys.executable, '-m', 'swift.cli.main', 'sft', '--model', model, '--dataset', corpus,
            '--streaming', 'true', '--max_steps', str(steps), '--per_device_train_batch_size', '4',
            '--max_length', '256', '--truncation_strategy', 'right', '--save_steps', str(steps),
            '--logging_steps', '10', '--report_to', 'none', '--output_dir', out]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1'})
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        print(stderr.decode(errors='replace')[-2000:], file=sys.stderr)
    return usage.ru_maxrss / 1024, time.perf_counter() - start, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--big-gb', type=float, default=2.0)
    parser.add_argument('--small-mb', type=float, default=20.0)
    parser.add_argument('--steps', type=int, default=30)
    args = parser.parse_args()
    sys.path.insert(0, REPO)
    from swift.utils.tiny_models import build_tiny_model
    work = tempfile.mkdtemp(prefix='swift-stream-bench-', dir='/tmp')
    try:
        model = build_tiny_model(os.path.join(work, 'model'), 'qwen2')
        results = {}
        for name, size in (('small', args.small_mb * 2**20), ('big', args.big_gb * 2**30)):
            corpus = os.path.join(work, f'{name}.jsonl')
            rows = write_corpus(corpus, int(size))
            rss, seconds, status = peak_rss_of_training(model, corpus, os.path.join(work, f'out-{name}'),
                                                        args.steps)
            results[name] = rss
            print(f'{name:5s} corpus {os.path.getsize(corpus) / 2**20:9.1f} MiB, {rows:>9,} rows: peak RSS '
                  f'{rss:7.1f} MiB, {seconds:5.1f} s, exit {status}', flush=True)
            os.remove(corpus)
        print(f'peak RSS ratio big/small: {results["big"] / results["small"]:.3f}')
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
