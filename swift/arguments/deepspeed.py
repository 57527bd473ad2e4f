"""ms-swift's ``--deepspeed`` shorthands (zero0 ... zero3_offload) as the config dicts transformers' DeepSpeed
integration takes; its 'auto' values are filled from the training arguments (batch sizes, clipping, precision)."""
from typing import Any

# shorthand -> (ZeRO stage, where optimizer states and, for stage 3, parameters live between steps)
SHORTHANDS = {'zero0': (0, 'none'), 'zero1': (1, 'none'), 'zero2': (2, 'none'), 'zero3': (3, 'none'),
              'zero2_offload': (2, 'cpu'), 'zero3_offload': (3, 'cpu')}


def deepspeed_config(shorthand: str) -> dict[str, Any]:
    stage, device = SHORTHANDS[shorthand]
    zero: dict[str, Any] = {'stage': stage, 'overlap_comm': stage == 3, 'contiguous_gradients': True,
                            'reduce_bucket_size': 'auto' if stage == 3 else 2e8}
    if stage:
        zero['offload_optimizer'] = {'device': device, 'pin_memory': True}
    if stage == 2:
        zero.update(allgather_partitions=True, allgather_bucket_size=2e8, reduce_scatter=True)
    if stage == 3:
        # Weights gathered into one 16-bit state dict on save, so checkpoints load without DeepSpeed.
        zero.update(offload_param={'device': device, 'pin_memory': True}, sub_group_size=1e9,
                    stage3_prefetch_bucket_size='auto', stage3_param_persistence_threshold='auto',
                    stage3_max_live_parameters=1e9, stage3_max_reuse_distance=1e9,
                    stage3_gather_16bit_weights_on_model_save=True)
    return {'fp16': {'enabled': 'auto'}, 'bf16': {'enabled': 'auto'}, 'zero_optimization': zero,
            'gradient_accumulation_steps': 'auto', 'gradient_clipping': 'auto', 'train_batch_size': 'auto',
            'train_micro_batch_size_per_gpu': 'auto', 'steps_per_print': 2000, 'wall_clock_breakdown': False}
