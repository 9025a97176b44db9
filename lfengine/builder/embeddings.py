"""Input layers: embedding tables shared per ``emb_id``, and the numeric input.

Index 0 is PAD (and the missing value): its vector is zero in every mode and stays zero, so
padding adds nothing to any sum or convolution downstream.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from lfengine.builder.dropout import Dropout
from lfengine.data.batch import EmbeddingInfo
from lfengine.errors import ModelError

EMB_MODES = ("yes", "no", "mapping", "onehot")


def table_key(emb_id: str, taken: Iterable[str] = ()) -> str:
    """A module name for an emb_id (``""`` and dots are not allowed as torch module names)."""
    base = "emb_" + re.sub(r"[^0-9A-Za-z_]", "_", emb_id)
    key, n = base, 1
    taken = set(taken)
    while key in taken:
        n += 1
        key = f"{base}_{n}"
    return key


def onehot_matrix(vocab_size: int) -> np.ndarray:
    """PAD row zero, value i (i >= 1) has a one in column i-1: a shifted identity."""
    matrix = np.zeros((vocab_size, max(vocab_size - 1, 0)), dtype=np.float32)
    matrix[1:, :] = np.eye(vocab_size - 1, dtype=np.float32)
    return matrix


def _initial_matrix(info: EmbeddingInfo, init: dict[str, np.ndarray] | None) -> torch.Tensor | None:
    """The rows to start from, or None to keep torch's default (the state dict will overwrite)."""
    if info.mode == "onehot":
        matrix = onehot_matrix(info.vocab_size)
    elif init is None:
        return None
    elif info.emb_id in init:
        matrix = np.asarray(init[info.emb_id], dtype=np.float32)
    elif info.pretrained:
        raise ModelError(f"no initial matrix given for the pretrained embeddings {info.emb_id!r}")
    else:
        return None
    if matrix.shape != (info.vocab_size, info.dims):
        raise ModelError(
            f"initial matrix for embeddings {info.emb_id!r} has shape {matrix.shape}, "
            f"expected ({info.vocab_size}, {info.dims})"
        )
    return torch.from_numpy(matrix.copy())


class FeatureEmbeddings(nn.Module):
    """One table per emb_id, shared by all columns with that id; modes as in lf-format.md §7.2.

    yes: trainable. no: frozen. mapping: frozen rows followed by a learned Linear(d, d) shared
    by the id's columns, started at the identity so training begins from the pretrained vectors
    (no bias, so PAD stays zero). onehot: frozen one-hot rows (the old wrapper trained them,
    defect C3).
    """

    def __init__(
        self,
        infos: dict[str, EmbeddingInfo],
        used_ids: Iterable[str],
        init: dict[str, np.ndarray] | None,
        dropout: float,
    ) -> None:
        super().__init__()
        self.infos: dict[str, EmbeddingInfo] = {}
        self.keys: dict[str, str] = {}
        self.tables = nn.ModuleDict()
        self.mappings = nn.ModuleDict()
        for emb_id in dict.fromkeys(used_ids):
            if emb_id not in infos:
                raise ModelError(f"column refers to unknown embeddings {emb_id!r}")
            info = infos[emb_id]
            if info.mode not in EMB_MODES:
                raise ModelError(f"embeddings {emb_id!r} have unknown mode {info.mode!r}")
            key = table_key(emb_id, self.keys.values())
            self.infos[emb_id] = info
            self.keys[emb_id] = key
            table = nn.Embedding(info.vocab_size, info.dims, padding_idx=0)
            matrix = _initial_matrix(info, init)
            with torch.no_grad():
                if matrix is not None:
                    table.weight.copy_(matrix)
                table.weight[0].zero_()
            table.weight.requires_grad_(info.mode == "yes")
            self.tables[key] = table
            if info.mode == "mapping":
                mapping = nn.Linear(info.dims, info.dims, bias=False)
                with torch.no_grad():
                    mapping.weight.copy_(torch.eye(info.dims))
                self.mappings[key] = mapping
        self.dropout = Dropout(dropout)

    def dims(self, emb_id: str) -> int:
        return self.infos[emb_id].dims

    def describe_labels(self) -> dict[str, str]:
        """Child path -> label for describe: the user's emb_id and the table's settings."""
        labels = {}
        for emb_id, key in self.keys.items():
            info = self.infos[emb_id]
            source = ", pretrained" if info.pretrained else ""
            labels[f"tables.{key}"] = f"{emb_id!r} (train={info.mode}{source})"
            labels[f"mappings.{key}"] = f"{emb_id!r} mapping"
        return labels

    def lookup(self, emb_id: str, ids: torch.Tensor, dropout: bool = True) -> torch.Tensor:
        """(...,) ids -> (..., dims) vectors, mapped and (with ``dropout``) dropped out as configured."""
        key = self.keys[emb_id]
        vectors = self.tables[key](ids)
        if key in self.mappings:
            vectors = self.mappings[key](vectors)
        return self.dropout(vectors) if dropout else vectors


class NominalInput(nn.Module):
    """Scalar nominal columns -> the concatenation of their embeddings, in column order."""

    def __init__(self, columns: tuple[tuple[str, str], ...], embeddings: FeatureEmbeddings) -> None:
        super().__init__()
        self.columns = columns
        self.output_size = sum(embeddings.dims(emb_id) for _, emb_id in columns)
        # Runs of adjacent columns with the same emb_id (a window) are looked up in one call.
        self.runs: list[tuple[int, int, str]] = []
        for i, (_, emb_id) in enumerate(columns):
            if self.runs and self.runs[-1][2] == emb_id and self.runs[-1][1] == i:
                self.runs[-1] = (self.runs[-1][0], i + 1, emb_id)
            else:
                self.runs.append((i, i + 1, emb_id))

    def forward(self, ids: torch.Tensor, embeddings: FeatureEmbeddings) -> torch.Tensor:
        """(..., Cn) ids -> (..., sum of dims). The tables are passed in, not owned (shared)."""
        if ids.shape[-1] != len(self.columns):
            raise ModelError(
                f"batch has {ids.shape[-1]} nominal columns, the model expects {len(self.columns)}"
            )
        parts = [
            embeddings.lookup(emb_id, ids[..., start:end]).flatten(-2) for start, end, emb_id in self.runs
        ]
        if not parts:
            return ids.new_zeros((*ids.shape[:-1], 0), dtype=torch.float32)
        return torch.cat(parts, dim=-1)


class NumericInput(nn.Module):
    """Numeric and boolean columns, used as they come (the data layer standardises them)."""

    def __init__(self, columns: tuple[str, ...]) -> None:
        super().__init__()
        self.columns = columns
        self.output_size = len(columns)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        if values.shape[-1] != self.output_size:
            raise ModelError(
                f"batch has {values.shape[-1]} numeric columns, the model expects {self.output_size}"
            )
        return values.float()
