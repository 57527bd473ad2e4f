"""Run under torchrun by tests/rlhf/test_ppo.py: a real PPO run (rlhf_main) whose every training step is followed
by each process writing a digest of its value model to ``<out>/rank<N>.txt``, so the test can compare processes.

    python -m torch.distributed.run --nproc_per_node 2 tests/rlhf/ppo_ranks_worker.py OUT_DIR FLAG ...
"""
import os
import sys

from swift.llm import rlhf_main
from swift.rlhf import ppo

OUT_DIR, FLAGS = sys.argv[1], sys.argv[2:]
training_step = ppo.PPOTrainer.training_step


def training_step_then_digest(trainer, *args, **kwargs):
    loss = training_step(trainer, *args, **kwargs)
    digest = sum(param.detach().double().sum().item() for param in trainer.value_model.parameters())
    with open(os.path.join(OUT_DIR, f'rank{trainer.accelerator.process_index}.txt'), 'a') as f:
        f.write(f'{digest!r}\n')
    return loss


ppo.PPOTrainer.training_step = training_step_then_digest
rlhf_main(FLAGS)
