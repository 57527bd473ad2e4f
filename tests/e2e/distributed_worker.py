"""Run under torchrun by tests/e2e/test_distributed.py: several trainings in one process group (one start-up for all,
for the suite's time budget); global rank 0 writes each one's per-step losses to ``<out>/<name>.json``.

    python -m torch.distributed.run --nproc_per_node 2 tests/e2e/distributed_worker.py OUT_DIR MODEL SFT_ROWS NAME...
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.e2e.distributed_runs import run  # noqa: E402

OUT_DIR, MODEL, SFT_ROWS, NAMES = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
for name in NAMES:
    losses = run(name, MODEL, SFT_ROWS, os.path.join(OUT_DIR, name), per_device=2)
    if int(os.environ.get('RANK', '0')) == 0:
        with open(os.path.join(OUT_DIR, f'{name}.json'), 'w') as f:
            json.dump(losses, f)
