"""Dropout whose mask costs a quarter of torch's on the CPU.

torch's CPU dropout draws its mask with ``bernoulli_``, which costs four times as much as
drawing uniform numbers with ``rand`` and comparing them (measured, one thread, a
32 x 40 x 698 float tensor: 13 ms against 3.5 ms). On the seq-pos1 tagger the masks of its two
dropout layers were 30 % of the CPU time of a training epoch (bench/bench_speed.py). Same
distribution, same scaling, same module (a subclass of nn.Dropout, so its state and its
description do not change); other devices keep torch's fused kernel.
"""

from __future__ import annotations

import torch
from torch import nn


class Dropout(nn.Dropout):
    """nn.Dropout with the mask drawn by ``rand`` on the CPU: a share ``p`` of the elements
    zeroed while training, the rest scaled by 1 / (1 - p); the identity in eval mode."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or inputs.device.type != "cpu" or self.p == 1 or self.inplace:
            return super().forward(inputs)
        keep = torch.rand_like(inputs).ge_(self.p).mul_(1.0 / (1.0 - self.p))
        return inputs * keep
