"""A column kind in one file, as a user would add one (tests/test_house.py trains, saves, loads,
applies and ejects a model with it): the numeric ``score`` column as one of ``BINS`` equal-width
bins over its mean +- 2 deviations, each bin with its own learned vector.

Importing the file registers the kind. Everything else (the codec storing its settings, the
encoder, batches, training noise, the network, describe, eject) goes through the seam of
lfengine/data/kinds.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from lfengine.data import kinds

BINS = 8
DIMS = 4


class BinEmbedding(nn.Module):
    """(..., 1) bin ids -> (..., dims) vectors; bin 0 (hidden by training noise) is zero."""

    def __init__(self, size: int, dims: int) -> None:
        super().__init__()
        self.table = nn.Embedding(size, dims, padding_idx=0)

    def forward(self, part: torch.Tensor, lengths: Any, mask: Any) -> torch.Tensor:
        return self.table(part[..., 0])


class ScoreBins(kinds.ColumnKind):
    name = "score_bins"
    module_class = BinEmbedding

    def __init__(self) -> None:
        self.noised = 0  # training batches the noise hook saw

    def claims(self, spec: Any, column: Any) -> bool:
        return spec.attribute_of(column).feature == "score"

    def settings(self, spec: Any, columns: list) -> dict[str, Any]:
        stats = spec.stats[columns[0].name]
        spread = 2 * (stats.variance**0.5 or 1.0)
        return {"low": stats.mean - spread, "high": stats.mean + spread}

    def encode(self, settings: dict[str, Any], values: list[tuple], error: kinds.ErrorAt) -> np.ndarray:
        (scores,) = values
        for row, value in enumerate(scores):
            if type(value) not in (int, float):
                raise error(row, settings["columns"][0], "wrong value type", expected="a number")
        x = (np.asarray(scores, dtype=np.float64) - settings["low"]) / (settings["high"] - settings["low"])
        return (np.clip(np.floor(x * BINS), 0, BINS - 1) + 1).astype(np.int64).reshape(-1, 1)

    def width(self, settings: dict[str, Any], config: Any) -> int:
        return DIMS

    def module_args(self, settings: dict[str, Any], config: Any) -> tuple:
        return (BINS + 1, DIMS)

    def noise(self, settings: dict[str, Any], part: Any, lengths: Any, config: Any) -> Any:
        """Hide the bin of one training instance in ten, so the model does without it."""
        self.noised += 1
        return part.masked_fill(torch.rand(part.shape, device=part.device) < 0.1, 0)


KIND = kinds.register(ScoreBins())
