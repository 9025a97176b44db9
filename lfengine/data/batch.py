"""What a network sees: the input layout (built once from the meta file) and padded batches.

This is the contract between the data layer and the builder. The data layer fills these; the
builder sizes its layers from an ``InputLayout`` and reads ``Batch`` tensors in ``forward``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch

#: Target value at padded sequence positions; ``torch.nn.functional.cross_entropy`` skips it.
IGNORE_INDEX = -100


@dataclass(frozen=True)
class EmbeddingInfo:
    """One embedding table, shared by every nominal column with the same ``emb_id``."""

    emb_id: str
    vocab_size: int  # including PAD (0) and, except for onehot, OOV (1)
    dims: int
    mode: str  # "yes" (trainable) | "no" (frozen) | "mapping" (frozen + learned map) | "onehot"
    pretrained: bool  # True when rows came from an embeddings file


@dataclass(frozen=True)
class CharInfo:
    """The character encoder's input: the characters of one token-string column."""

    column: str  # name of the source column
    vocab_size: int  # including PAD (0) and OOV (1)
    max_chars: int  # words are cut to this many characters
    alphabet: tuple[str, ...] = ()  # the character of each id (PAD and OOV as their markers)


@dataclass(frozen=True)
class InputLayout:
    """Column groups in the order they appear in the last dimension of the batch tensors."""

    is_sequence: bool
    nominal: tuple[tuple[str, str], ...]  # (column name, emb_id) per scalar nominal column
    numeric: tuple[str, ...]  # numeric and boolean column names
    lists: tuple[tuple[str, str], ...]  # (column name, emb_id) per list column (N, LISTSEP)
    embeddings: dict[str, EmbeddingInfo]
    chars: CharInfo | None
    task: str  # "classification" | "sequence" | "regression"
    labels: tuple[str, ...]  # label names in index order (empty for regression)
    #: (kind name, its codec settings) per registered column kind with columns (data/kinds.py)
    kinds: tuple[tuple[str, dict], ...] = ()

    @property
    def num_labels(self) -> int:
        return len(self.labels)


@dataclass
class Batch:
    """Padded tensors for B instances (classification) or B sequences of up to T elements.

    Shapes: classification ``nominal`` (B, Cn), ``numeric`` (B, Cf), each of ``lists`` (B, L);
    sequences add a T axis after B. Index 0 is PAD (and the missing value ""), 1 is OOV.
    ``targets`` are label indices with ``IGNORE_INDEX`` at padded positions, or standardised
    floats for regression; None for unlabeled instances.
    """

    nominal: torch.Tensor
    numeric: torch.Tensor
    lists: list[torch.Tensor] = field(default_factory=list)
    list_lengths: list[torch.Tensor] = field(default_factory=list)
    chars: torch.Tensor | None = None  # (B, T, W) character ids, sequences only
    lengths: torch.Tensor | None = None  # (B,) number of elements per sequence
    targets: torch.Tensor | None = None
    #: Per column kind (data/kinds.py): its padded part, and for a ragged part the lengths.
    kinds: dict[str, torch.Tensor] = field(default_factory=dict)
    kind_lengths: dict[str, torch.Tensor] = field(default_factory=dict)
    #: (B,) the instances' indices in the data they were drawn from (classification only)
    items: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return int(self.nominal.shape[0])

    @property
    def mask(self) -> torch.Tensor:
        """(B, T) True at real sequence positions."""
        if self.lengths is None:
            raise ValueError("mask is only defined for sequence batches")
        steps = torch.arange(self.nominal.shape[1], device=self.lengths.device)
        return steps.unsqueeze(0) < self.lengths.unsqueeze(1)

    def to(self, device: torch.device | str) -> Batch:
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                value = value.to(device, non_blocking=True)
            elif isinstance(value, list):
                value = [v.to(device, non_blocking=True) for v in value]
            elif isinstance(value, dict):
                value = {k: v.to(device, non_blocking=True) for k, v in value.items()}
            moved[f.name] = value
        return replace(self, **moved)
