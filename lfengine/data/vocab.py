"""Vocabularies with the old library's index conventions (lf-format.md §8).

Index compatibility matters: the oracle numbers of lf-format.md §12 (sizes, heads, digests,
converted indices) hold for vocabularies built here.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

PAD = ""
OOV = "<<oov>>"
PAD_INDEX = 0
OOV_INDEX = 1


def sorted_by_count(counts: Mapping[str, int]) -> list[str]:
    """Count descending, ties by code point: the sort key ``(-count, string)``."""
    return [s for s, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def dims_heuristic(n: int) -> int:
    """``int(log2(n) ** 1.8) + 1`` with n including PAD/OOV (lf-format.md §8.4); n < 2 -> n."""
    if n < 2:
        return max(n, 1)
    return int(math.log2(n) ** 1.8) + 1


@dataclass
class Vocabulary:
    """index -> string (``itos``) and back; unknown strings map to OOV, or PAD for onehot (D11)."""

    itos: list[str]
    onehot: bool = False
    stoi: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        self.stoi[None] = PAD_INDEX  # JSON null is the missing value (lf-format.md §5.2)

    @property
    def unknown_index(self) -> int:
        return PAD_INDEX if self.onehot else OOV_INDEX

    def __len__(self) -> int:
        return len(self.itos)

    def lookup(self, values: Iterable, count: int = -1) -> np.ndarray:
        """Vectorised lookup; raises TypeError on unhashable values (lists), which callers report."""
        get, unk = self.stoi.get, self.unknown_index
        return np.fromiter((get(v, unk) for v in values), dtype=np.int32, count=count)

    def map_to_unknown(self, rows: Iterable[int]) -> None:
        """Make the strings of ``rows`` look up as unknown: rows training never updated are not
        used. ``itos`` (and with it the index conventions and the digest) stays as it is."""
        unk, first = self.unknown_index, self.unknown_index + 1  # never a special row
        for row in rows:
            if row >= first:
                self.stoi[self.itos[row]] = unk

    def digest(self) -> str:
        """First 16 hex digits of SHA-256 over itos joined with newlines (lf-format.md §12)."""
        return hashlib.sha256("\n".join(self.itos).encode("utf-8")).hexdigest()[:16]

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], *, minfreq: int = 1, onehot: bool = False) -> Vocabulary:
        """lf-format.md §8.1: drop PAD/OOV keys, keep count >= minfreq, sort, prepend specials."""
        kept = {s: c for s, c in counts.items() if s not in (PAD, OOV) and c >= minfreq}
        specials = [PAD] if onehot else [PAD, OOV]
        return cls(specials + sorted_by_count(kept), onehot=onehot)


def sum_counts(stat_counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in stat_counts:
        for s, c in counts.items():
            total[s] = total.get(s, 0) + c
    return total


def label_list(counts: Mapping[str, int]) -> list[str]:
    """Target labels in index order (lf-format.md §8.5): no special entries."""
    return sorted_by_count({s: c for s, c in counts.items()})


def char_vocabulary(word_counts: Mapping[str, int]) -> Vocabulary:
    """Characters of the token-string column, weighted by word counts; PAD 0, OOV 1."""
    chars: dict[str, int] = {}
    for word, count in word_counts.items():
        for ch in word:
            chars[ch] = chars.get(ch, 0) + count
    return Vocabulary([PAD, OOV] + sorted_by_count(chars))
