#!/usr/bin/env python3
"""SFT throughput benchmark: our ``swift sft`` against ms-swift's, on CPU, offline.

Builds (deterministically, no network) a ~4.7M-parameter Qwen2 model with random
weights, a small byte-level BPE tokenizer with a chatml chat template, and a
160-row multi-turn ``messages`` jsonl dataset averaging ~300 tokens a row; then
runs ``swift sft`` (LoRA rank 8, all-linear, fp32, batch 4, 1 epoch) with each
executable given and reports, per side:

* tokens/s       -- real (non-padding) training tokens / ``train_runtime``; the
                    token count is the chat-templated rows truncated to
                    ``--max-length``, times the number of epochs;
* first step     -- seconds from process start to the first training-progress
                    output (a training tqdm bar at n >= 1, or a printed log dict
                    with a loss), else to the first ``logging.jsonl`` record;
* outside train  -- total wall time minus ``train_runtime``;
* wall           -- wall time of the whole command;
* peak memory    -- peak of the process tree's summed PSS (RSS with shared pages
                    split, so forked children are not counted twice; sampled
                    every 3 s or at a 5% higher RSS sum), and the peak RSS of its
                    largest process (/proc polled every 0.1 s).

The sides alternate (ours, peer, ours, peer, ...) for ``--repeats`` rounds; the table shows each figure's
median, and the goal ratios of issue 18 are printed last, from the medians:

* speed, whole process      -- peer wall / ours wall (goal: at least 2.0);
* peak memory               -- ours / peer, for the largest process's peak RSS and for the tree's peak PSS,
                               both polled from /proc the same way for both sides (goal: at most 1.0);
* time to the first step    -- ours / peer (goal: at most 0.5).

Also reported: the run's CPU time, and how busy the CPUs were with other
processes in the 2 s before the start and during the run (share of all CPUs):
with few cores any other busy process skews every figure; use a quiet box.

``train_runtime`` is read from ``logging.jsonl`` in the run's output folder
(``<output_dir>/vN-*/logging.jsonl``), the line HF Trainer's final log writes.

Usage::

    .venv/bin/python bench/sft_throughput.py \\
        --ours .venv/bin/swift --peer /work/peers/ms-swift-venv/bin/swift [--repeats 3]
    .venv/bin/python bench/sft_throughput.py --skip-ours \\
        --peer /work/peers/ms-swift-venv/bin/swift --json /tmp/bench.json

Other flags: ``--workdir`` (default /tmp/swift-bench), ``--extra`` (extra
``swift sft`` args for both sides, one string), ``--peer-extra`` (peer only;
default ``--model_type qwen2 --template qwen --check_model false``: ms-swift
cannot guess the first two for a local folder, and its default model check
queries the ModelScope hub, which offline costs ~22 s of timeouts and retries
before training), ``--ours-extra``, ``--epochs``, ``--max-length``, ``--rows``.
"""
import argparse
import glob
import json
import os
import random
import resource
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>']
SYLLABLES = ('ka ri to mo na shi ve lu pa de zo qui ben tar sol mig ra fen '
             'do lo cha wen bri ost pel um ix al tre gon sa vi ne ru').split()
MODEL_SPEC = dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                  num_attention_heads=4, num_key_value_heads=2)
VOCAB_SIZE = 3500
ROW_TOKENS = (220, 360)  # per-row token target range (overshoot brings mean ~300)


# ----------------------------------------------------------------------------
# synthetic text, tokenizer, model, dataset
# ----------------------------------------------------------------------------
def make_lexicon(rng, size=2500):
    """Pseudo-words built from syllables, most frequent first."""
    words = set()
    while len(words) < size:
        words.add(''.join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))))
    return sorted(words, key=lambda w: (len(w), w))


def sentence(rng, lexicon, n_words):
    """A random sentence (skewed to short, frequent words) of about ``n_words`` words."""
    text = ' '.join(lexicon[int(len(lexicon) * rng.random() ** 2)] for _ in range(n_words))
    return text[0].upper() + text[1:] + rng.choice('..?!')


def build_tokenizer(lexicon, seed):
    """Train a byte-level BPE on generated text; wrap it as a fast HF tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    rng = random.Random(seed + 1)
    corpus = [sentence(rng, lexicon, rng.randint(5, 40)) for _ in range(20000)]
    corpus += ['system\nYou are a helpful assistant.\nuser\nassistant\n'] * 200
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token='<|im_end|>',
                                   pad_token='<|endoftext|>', model_max_length=32768)
    fast.add_special_tokens({'additional_special_tokens': SPECIAL_TOKENS[1:]})
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_model(tokenizer, seed):
    """Random-weight Qwen2ForCausalLM sized from ``MODEL_SPEC``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=len(tokenizer), max_position_embeddings=4096,
                         tie_word_embeddings=False,
                         bos_token_id=tokenizer.convert_tokens_to_ids('<|endoftext|>'),
                         eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **MODEL_SPEC)
    return Qwen2ForCausalLM(config).to(torch.float32)


def count_tokens(tokenizer, messages, max_length=None):
    """Tokens of the chat-templated conversation, optionally truncated."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    n = len(tokenizer(text, add_special_tokens=False)['input_ids'])
    return min(n, max_length) if max_length else n


def make_row(rng, lexicon, tokenizer):
    """One multi-turn conversation grown turn by turn up to a token target."""
    target = rng.randint(*ROW_TOKENS)
    messages = []
    if rng.random() < 0.3:
        messages.append({'role': 'system', 'content': sentence(rng, lexicon, rng.randint(4, 12))})
    while True:
        messages.append({'role': 'user', 'content': sentence(rng, lexicon, rng.randint(5, 20))})
        reply = ' '.join(sentence(rng, lexicon, rng.randint(6, 18)) for _ in range(rng.randint(1, 3)))
        messages.append({'role': 'assistant', 'content': reply})
        if count_tokens(tokenizer, messages) >= target:
            return {'messages': messages}


def prepare(workdir, n_rows, seed=42):
    """Write model+tokenizer to ``workdir/model`` and the dataset to ``workdir/train.jsonl``."""
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    rng = random.Random(seed)
    lexicon = make_lexicon(rng)
    tokenizer = build_tokenizer(lexicon, seed)
    model_dir = os.path.join(workdir, 'model')
    shutil.rmtree(model_dir, ignore_errors=True)
    model = build_model(tokenizer, seed)
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    rows = [make_row(rng, lexicon, tokenizer) for _ in range(n_rows)]
    data_path = os.path.join(workdir, 'train.jsonl')
    with open(data_path, 'w', encoding='utf-8') as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + '\n' for r in rows)
    n_params = sum(p.numel() for p in model.parameters())
    from transformers import AutoTokenizer  # count with the tokenizer as the trainers load it
    return model_dir, data_path, AutoTokenizer.from_pretrained(model_dir), rows, n_params


# ----------------------------------------------------------------------------
# running and measuring one side
# ----------------------------------------------------------------------------
def cpu_jiffies():
    """(total, busy) CPU time of the whole machine so far, in seconds (/proc/stat)."""
    with open('/proc/stat') as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    hz = os.sysconf('SC_CLK_TCK')
    return sum(vals) / hz, (sum(vals) - vals[3] - vals[4]) / hz  # idle and iowait are not busy


def cpu_busy(seconds=2.0):
    """Fraction of all CPUs busy over the next ``seconds``: other load on the box."""
    total0, busy0 = cpu_jiffies()
    time.sleep(seconds)
    total1, busy1 = cpu_jiffies()
    return (busy1 - busy0) / max(total1 - total0, 1e-9)


def _cpu_s(before, after):
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


class CpuMeter:
    """CPU seconds used, from creation to ``stop()``, by our (waited-for) children, by
    this process (the poller), and the share of all CPUs used by anything else."""

    def __init__(self):
        self.start = self._sample()

    @staticmethod
    def _sample():
        return (resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF),
                cpu_jiffies())

    def stop(self):
        (c0, s0, (total0, busy0)), (c1, s1, (total1, busy1)) = self.start, self._sample()
        children, me = _cpu_s(c0, c1), _cpu_s(s0, s1)
        other = max(busy1 - busy0 - children - me, 0) / max(total1 - total0, 1e-9)
        return {'cpu_s': children, 'bench_cpu_s': me, 'other_cpu_busy_during': other}


def proc_rss(pid):
    """RSS of one process in bytes (cheap: /proc/PID/statm)."""
    try:
        with open(f'/proc/{pid}/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except (OSError, IndexError, ValueError):
        return 0


def proc_pss(pid):
    """PSS of one process in bytes (/proc/PID/smaps_rollup, ~20 ms for 1 GB; RSS if unreadable)."""
    try:
        with open(f'/proc/{pid}/smaps_rollup') as f:
            for line in f:
                if line.startswith('Pss:'):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return proc_rss(pid)


def process_tree(root_pid):
    """``root_pid`` and all its descendants, from /proc/*/stat."""
    children = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, stack = [], [root_pid]
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack.extend(children.get(pid, []))
    return tree


class MemoryPeak:
    """Peak memory of a process tree: summed PSS and the largest single RSS.

    PSS, not RSS, is summed: a forked child shares its parent's pages, which
    summed RSS would count twice. To keep the poller's own CPU use small (~1.5%
    of a core), the tree is re-listed and PSS (~20 ms per GB) read every
    ``slow_s`` seconds, or sooner when the tree's summed RSS gets 5% above its
    high; RSS (cheap) is read at every poll."""

    def __init__(self, root_pid, slow_s=3.0):
        self.root_pid, self.slow_s = root_pid, slow_s
        self.pss = self.rss_one = self.rss_sum_high = 0
        self.pids, self.slow_at = [root_pid], 0.0

    def poll(self):
        now = time.monotonic()
        slow = now - self.slow_at >= self.slow_s
        if slow:
            self.pids = process_tree(self.root_pid)
        rss = [proc_rss(pid) for pid in self.pids]
        self.rss_one = max([self.rss_one] + rss)
        if slow or sum(rss) > self.rss_sum_high * 1.05:
            self.rss_sum_high = max(self.rss_sum_high, sum(rss))
            self.pss = max(self.pss, sum(proc_pss(pid) for pid in self.pids))
            self.slow_at = now


# a tqdm update "<desc>: 10%|█  | 1/10 [" -- training bars only (no desc, or one naming "train")
PROGRESS_RE = re.compile(r'(?:^|[\r\n])([^\r\n|]*?)\s*\d+%\|[^|\r\n]*\|\s*(\d+)/(\d+)\s*\[')
STEP_LOG_RE = re.compile(r"""['"]loss['"]\s*:""")  # a printed training-log dict


def shows_first_step(text):
    """True once ``text`` (recent output) shows a finished training step."""
    for m in PROGRESS_RE.finditer(text):
        desc = m.group(1).strip().lower()
        if int(m.group(2)) >= 1 and (not desc or 'train' in desc):
            return True
    return bool(STEP_LOG_RE.search(text))


def pump_output(proc, log_file, t0, marks):
    """Copy the child's output to ``log_file``; note when training progress first shows."""
    buf = b''
    while True:
        chunk = proc.stdout.read1(65536)
        if not chunk:
            break
        log_file.write(chunk)
        buf = (buf + chunk)[-4096:]
        if 'first_step' not in marks and shows_first_step(buf.decode('utf-8', 'replace')):
            marks['first_step'] = time.monotonic() - t0


def first_log_seen(output_dir):
    """Whether a ``logging.jsonl`` with a record exists under ``output_dir`` yet."""
    return any(os.path.getsize(p) for p in glob.glob(os.path.join(output_dir, '**', 'logging.jsonl'),
                                                     recursive=True))


def run_swift(exe, args, output_dir, log_path):
    """Run ``exe`` with ``args``; returns wall, first-step time, peak memory, CPU use, exit code.

    The first step is the first training progress in the output or, failing that,
    the first record in ``logging.jsonl`` (checked once a second)."""
    env = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', PYTHONUNBUFFERED='1',
               TOKENIZERS_PARALLELISM='false')
    marks, cpu = {}, CpuMeter()
    t0 = time.monotonic()
    with open(log_path, 'wb') as log_file:
        proc = subprocess.Popen([exe] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
        pump = threading.Thread(target=pump_output, args=(proc, log_file, t0, marks), daemon=True)
        pump.start()
        memory, polls = MemoryPeak(proc.pid), 0
        while proc.poll() is None:
            memory.poll()
            polls += 1
            if polls % 10 == 0 and 'first_log' not in marks and first_log_seen(output_dir):
                marks['first_log'] = time.monotonic() - t0
            time.sleep(0.1)
        wall = time.monotonic() - t0
        pump.join(timeout=10)
    first_step = marks.get('first_step', marks.get('first_log'))
    return {'wall_s': wall, 'first_step_s': first_step, 'peak_pss_tree_bytes': memory.pss,
            'peak_rss_one_proc_bytes': memory.rss_one, 'returncode': proc.returncode, **cpu.stop()}


def read_train_log(output_dir):
    """``train_runtime`` and related figures from the newest ``logging.jsonl`` under ``output_dir``."""
    paths = sorted(glob.glob(os.path.join(output_dir, '**', 'logging.jsonl'), recursive=True),
                   key=os.path.getmtime)
    if not paths:
        return {}
    found = {'logging_jsonl': paths[-1]}
    with open(paths[-1], encoding='utf-8') as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and 'train_runtime' in rec:
                found.update(train_runtime_s=float(rec['train_runtime']),
                             train_loss=rec.get('train_loss'),
                             train_samples_per_second=rec.get('train_samples_per_second'))
    return found


def sft_args(model_dir, data_path, output_dir, opts, extra):
    """The benchmark's ``swift sft`` command line (without the executable)."""
    # ms-swift 4.x only knows --tuner_type (its 3.x name --train_type is gone); ours takes both
    args = ['sft', '--model', model_dir, '--dataset', data_path, '--tuner_type', 'lora',
            '--lora_rank', '8', '--lora_alpha', '32', '--target_modules', 'all-linear',
            '--torch_dtype', 'float32', '--num_train_epochs', str(opts.epochs),
            '--per_device_train_batch_size', '4', '--learning_rate', '1e-4',
            '--max_length', str(opts.max_length), '--logging_steps', '5', '--save_steps', '1000',
            '--output_dir', output_dir, '--dataloader_num_workers', '0']
    return args + shlex.split(opts.extra) + shlex.split(extra)


def bench_side(name, exe, extra, opts, model_dir, data_path, real_tokens):
    """Run one side and derive its figures."""
    output_dir = os.path.join(opts.workdir, f'out-{name}')
    shutil.rmtree(output_dir, ignore_errors=True)
    args = sft_args(model_dir, data_path, output_dir, opts, extra)
    log_path = os.path.join(opts.workdir, f'{name}.log')
    busy = cpu_busy()
    print(f'[{name}] {exe} {shlex.join(args)}\n[{name}] log: {log_path}', flush=True)
    if busy > 0.15:
        print(f'[{name}] warning: CPUs {busy:.0%} busy before the start; other processes skew figures')
    res = run_swift(exe, args, output_dir, log_path)
    res.update(read_train_log(output_dir), exe=exe, args=args, log=log_path, cpu_busy_before=busy)
    runtime = res.get('train_runtime_s')
    if res['returncode'] != 0 or not runtime:
        print(f'[{name}] FAILED (exit {res["returncode"]}, train_runtime {runtime}); see {log_path}',
              file=sys.stderr)
        return res
    res['tokens_per_s'] = real_tokens / runtime
    res['outside_train_s'] = res['wall_s'] - runtime
    return res


# ----------------------------------------------------------------------------
# reporting
# ----------------------------------------------------------------------------
ROWS = [  # (label, key, format, scale)
    ('tokens/s (real)', 'tokens_per_s', '{:.0f}', 1),
    ('train runtime s', 'train_runtime_s', '{:.1f}', 1),
    ('first step s', 'first_step_s', '{:.1f}', 1),
    ('outside train s', 'outside_train_s', '{:.1f}', 1),
    ('total wall s', 'wall_s', '{:.1f}', 1),
    ('peak tree PSS GB', 'peak_pss_tree_bytes', '{:.2f}', 1e-9),
    ('peak proc RSS GB', 'peak_rss_one_proc_bytes', '{:.2f}', 1e-9),
    ('CPU time s', 'cpu_s', '{:.1f}', 1),
    ('  (bench poller CPU s)', 'bench_cpu_s', '{:.1f}', 1),
    ('others\' CPU % before', 'cpu_busy_before', '{:.0f}', 100),
    ('others\' CPU % during', 'other_cpu_busy_during', '{:.0f}', 100),
]


def fmt(res, key, pattern, scale):
    val = (res or {}).get(key)
    return pattern.format(val * scale) if isinstance(val, (int, float)) else '-'


def medians(runs):
    """Each numeric figure's median over a side's runs (the failed runs left out)."""
    ok = [r for r in runs if r.get('tokens_per_s')] or runs
    keys = {k for r in ok for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {k: statistics.median(r[k] for r in ok if isinstance(r.get(k), (int, float))) for k in keys}


def print_table(results):
    """Figures per side plus the ours/peer ratio."""
    ours, peer = results.get('ours'), results.get('peer')
    print(f'\n{"":22}{"ours":>10}{"peer":>10}{"ours/peer":>11}')
    for label, key, pattern, scale in ROWS:
        a, b = (ours or {}).get(key), (peer or {}).get(key)
        ratio = f'{a / b:.2f}' if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else '-'
        print(f'{label:22}{fmt(ours, key, pattern, scale):>10}{fmt(peer, key, pattern, scale):>10}{ratio:>11}')


GOALS = [  # (label, numerator side, denominator side, key, goal text, met)
    ('speed, whole process (peer wall / ours wall)', 'peer', 'ours', 'wall_s', 'goal >= 2.0', lambda r: r >= 2.0),
    ('peak memory, largest process RSS (ours / peer)', 'ours', 'peer', 'peak_rss_one_proc_bytes', 'goal <= 1.0',
     lambda r: r <= 1.0),
    ('peak memory, process tree PSS (ours / peer)', 'ours', 'peer', 'peak_pss_tree_bytes', 'goal <= 1.0',
     lambda r: r <= 1.0),
    ('time to the first step (ours / peer)', 'ours', 'peer', 'first_step_s', 'goal <= 0.5', lambda r: r <= 0.5),
    ('training tokens/s (ours / peer)', 'ours', 'peer', 'tokens_per_s', '', lambda r: True),
]


def print_goals(results, repeats):
    """Issue 18's ratios, from the medians of both sides."""
    if not (results.get('ours') and results.get('peer')):
        return
    print(f'\nissue 18 ratios (medians of {repeats} alternating run(s) per side)')
    for label, top, bottom, key, goal, met in GOALS:
        a, b = results[top].get(key), results[bottom].get(key)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
            verdict = ('met' if met(a / b) else 'NOT met') if goal else ''
            print(f'  {label:48}{a / b:6.2f}  {goal} {verdict}'.rstrip())


def parse_args(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    default_ours = os.path.join(os.path.dirname(here), '.venv', 'bin', 'swift')
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--ours', default=default_ours if os.path.exists(default_ours) else shutil.which('swift'),
                   help='our `swift` executable (default: .venv/bin/swift, else `swift` on PATH)')
    p.add_argument('--peer', default=None, help='ms-swift `swift` executable (skipped if absent)')
    p.add_argument('--skip-ours', action='store_true', help='run the peer only')
    p.add_argument('--workdir', default='/tmp/swift-bench', help='model, data, logs and outputs go here')
    p.add_argument('--extra', default='', help='extra `swift sft` args for both sides')
    p.add_argument('--peer-extra', default='--model_type qwen2 --template qwen --check_model false',
                   help='extra args for the peer only (see the module docstring)')
    p.add_argument('--ours-extra', default='', help='extra args for ours only')
    p.add_argument('--rows', type=int, default=160, help='dataset rows')
    p.add_argument('--epochs', type=int, default=1, help='--num_train_epochs')
    p.add_argument('--max-length', type=int, default=2048, help='--max_length')
    p.add_argument('--repeats', type=int, default=3, help='rounds of alternating runs; medians are reported')
    p.add_argument('--json', default=None, help='write the figures as JSON here')
    return p.parse_args(argv)


def main(argv=None):
    opts = parse_args(argv)
    os.makedirs(opts.workdir, exist_ok=True)
    model_dir, data_path, tokenizer, rows, n_params = prepare(opts.workdir, opts.rows)
    lengths = [count_tokens(tokenizer, r['messages'], opts.max_length) for r in rows]
    real_tokens = sum(lengths) * opts.epochs
    print(f'model: {model_dir} ({n_params / 1e6:.2f}M params, vocab {len(tokenizer)})\n'
          f'data: {data_path} ({len(rows)} rows, {sum(lengths) / len(rows):.0f} tokens/row avg, '
          f'{real_tokens} real training tokens over {opts.epochs} epoch(s))', flush=True)
    sides = []
    if not opts.skip_ours:
        if opts.ours and os.path.exists(opts.ours):
            sides.append(('ours', opts.ours, opts.ours_extra))
        else:
            print(f'note: ours executable not found ({opts.ours}); skipping ours')
    if opts.peer and os.path.exists(opts.peer):
        sides.append(('peer', opts.peer, opts.peer_extra))
    else:
        print(f'note: no peer executable ({opts.peer}); skipping peer')
    runs = {name: [] for name, _, _ in sides}
    for round_ in range(opts.repeats):
        for name, exe, extra in sides if round_ % 2 == 0 else sides[::-1]:  # alternate which side goes first
            runs[name].append(bench_side(name, exe, extra, opts, model_dir, data_path, real_tokens))
            last = runs[name][-1]
            print(f'[{name}] round {round_ + 1}: wall {last["wall_s"]:.1f} s, first step '
                  f'{last.get("first_step_s") or 0:.1f} s, peak RSS {last["peak_rss_one_proc_bytes"] / 2**20:.0f} MiB',
                  flush=True)
    results = {name: medians(side_runs) for name, side_runs in runs.items()}
    print_table(results)
    print_goals(results, opts.repeats)
    if opts.json:
        meta = {'n_params': n_params, 'rows': len(rows), 'real_tokens': real_tokens,
                'avg_tokens_per_row': sum(lengths) / len(rows), 'epochs': opts.epochs, 'repeats': opts.repeats}
        with open(opts.json, 'w', encoding='utf-8') as f:
            json.dump({'setup': meta, 'medians': results, 'runs': runs}, f, indent=2)
        print(f'\nJSON written to {opts.json}')
    return 0 if all(r.get('tokens_per_s') for side_runs in runs.values() for r in side_runs) else 1


if __name__ == '__main__':
    sys.exit(main())
