"""One forward per GRPO group: the completions of a prompt share its forward, in the reference's and the loss's
log-probability passes.

trl runs the model over every ``prompt + completion`` row, so each prompt goes through it ``num_generations`` times
in each pass. Here a group of rows with the same prompt becomes one packed row::

    prompt[0:P] completion_1   prompt[P-1] completion_2   prompt[P-1] completion_3 ...
    \\_______ segment 0 _____/  \\____ segment 1 _______/  \\____ segment 2 ___...

Segment 0 is plain causal; each later segment sees ``prompt[0:P-1]`` of segment 0 and itself. Every token keeps the
position id of its column in its own trl row (trl's forward passes none, so left padding shifts them; kept as is),
so each completion token sees the same tokens at the same positions as in the plain row: the log-probabilities are
trl's up to float rounding, for ``P + sum(L_i + 1) - 1`` tokens a group instead of ``G * (P + C)``. Only the
completion positions go through the LM head (trl's chunked log-prob kernel, with its temperature).
"""
import torch
from torch import Tensor
from trl.kernels import ChunkedLogProbFunction

from .packed_forward import CHUNK_SIZE


class PackedGroups:
    """Where each token of a GRPO batch (left-padded prompts of width W, right-padded completions) sits in the
    packed rows, one per prompt (its rows in batch order)."""

    def __init__(self, input_ids: Tensor, attention_mask: Tensor, completion_width: int):
        width = input_ids.size(1) - completion_width  # W, the padded prompt width
        prompt_lengths = attention_mask[:, :width].sum(-1)
        lengths = attention_mask[:, width:].sum(-1)
        groups = {}  # rows by prompt, wherever they sit: trl shuffles the rows before the loss's pass
        for row, prompt in enumerate(input_ids[:, :width].tolist()):
            groups.setdefault(tuple(prompt), []).append(row)
        self.groups = list(groups.values())
        self.width, self.completion_width = width, completion_width
        rows, cols, segs = [], [], []
        for members in self.groups:
            p = int(prompt_lengths[members[0]])
            r_rows, r_cols, r_segs = [], [], []
            for seg, row in enumerate(members):
                start = width - p if seg == 0 else width - 1
                span = list(range(start, width + int(lengths[row])))
                r_rows += [row] * len(span)
                r_cols += span
                r_segs += [seg] * len(span)
            rows.append(r_rows), cols.append(r_cols), segs.append(r_segs)
        size = max(len(r) for r in rows)
        pad = lambda values, fill: torch.tensor([v + [fill] * (size - len(v)) for v in values])  # noqa: E731
        device = input_ids.device
        self.rows, self.columns = pad(rows, 0).to(device), pad(cols, 0).to(device)
        self.segments = pad(segs, -1).to(device)
        self.valid = self.segments >= 0
        self.packed_ids = input_ids[self.rows, self.columns]
        self.lengths = lengths

    @classmethod
    def of(cls, input_ids: Tensor, attention_mask: Tensor, completion_width: int) -> 'PackedGroups | None':
        """None where no two rows share a prompt, the completions are not right-padded, or packing would not pay:
        the packed rows' attention area (groups x T^2, a dense mask) must not exceed the plain rows' (rows x width^2),
        which holds where prompts outweigh completions; long completions keep trl's rows."""
        completion_mask = attention_mask[:, input_ids.size(1) - completion_width:]
        lengths = completion_mask.sum(-1)
        ones = torch.arange(completion_width, device=lengths.device)[None] < lengths[:, None]
        if not torch.equal(completion_mask.bool(), ones):
            return None
        packed = cls(input_ids, attention_mask, completion_width)
        packed_area = len(packed.groups) * packed.packed_ids.size(1) ** 2
        if len(packed.groups) == len(input_ids) or packed_area > input_ids.numel() * input_ids.size(1):
            return None
        return packed

    def attention_mask(self) -> Tensor:
        """(groups, 1, T, T) boolean: causal within a segment; later segments also see segment 0's prompt bar its
        last token."""
        seg, cols, valid = self.segments, self.columns, self.valid
        slots = torch.arange(seg.size(1), device=seg.device)
        causal = slots[None, :, None] >= slots[None, None, :]
        shared_prompt = (seg[:, None, :] == 0) & (cols[:, None, :] < self.width - 1) & (seg[:, :, None] > 0)
        visible = (causal & (seg[:, :, None] == seg[:, None, :])) | shared_prompt
        visible = visible & valid[:, :, None] & valid[:, None, :]
        visible = visible | torch.eye(seg.size(1), dtype=torch.bool, device=seg.device)  # padding sees itself
        return visible[:, None]

    def scored_slots(self, completion_ids: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """For each completion token (row, j < its length): the packed group, the slot predicting it, its row and
        column in the (rows, completion width) output, and its label."""
        rows, js = (torch.arange(self.completion_width, device=self.lengths.device)[None]
                    < self.lengths[:, None]).nonzero(as_tuple=True)
        # the slot holding column W - 1 + j of the row's own segment predicts completion token j
        target = (self.rows[:, :, None] == rows[None, None]) & (self.columns[:, :, None] == (self.width - 1 + js))
        target &= self.valid[:, :, None]
        group, slot, token = target.nonzero(as_tuple=True)
        order = token.argsort()
        return group[order], slot[order], torch.stack([rows, js]), completion_ids[rows, js]


def packed_logps(causal_lm: torch.nn.Module, packed: PackedGroups, completion_ids: Tensor, temperature: float,
                 compute_entropy: bool) -> tuple[Tensor, Tensor | None]:
    """Per-token log-probabilities (and entropies) of the completions, (rows, completion width), zero past each
    completion's end, from one forward of the packed groups."""
    lm_head = causal_lm.get_output_embeddings()
    mask = packed.attention_mask()
    if causal_lm.config._attn_implementation != 'sdpa':
        mask = torch.zeros(mask.shape, dtype=lm_head.weight.dtype, device=mask.device).masked_fill(
            ~mask, torch.finfo(lm_head.weight.dtype).min)
    hidden = causal_lm.base_model(input_ids=packed.packed_ids, attention_mask=mask, position_ids=packed.columns,
                                  use_cache=False).last_hidden_state
    group, slot, (rows, js), labels = packed.scored_slots(completion_ids)
    outputs = ('log_probs', 'entropy') if compute_entropy else ('log_probs',)
    log_probs, entropy, *_ = ChunkedLogProbFunction.apply(hidden[group, slot], lm_head.weight, lm_head.bias, labels,
                                                          temperature, CHUNK_SIZE, None, 1.0, outputs)
    shape = (len(packed.lengths), packed.completion_width)
    logps = log_probs.new_zeros(shape).index_put((rows, js), log_probs)
    entropies = entropy.new_zeros(shape).index_put((rows, js), entropy) if compute_entropy else None
    return logps, entropies
