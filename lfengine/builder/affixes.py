"""Prefix and suffix embeddings of each token, hashed from its character ids.

The CRF baseline's strongest features on unseen words are its 1-4 character prefixes and
suffixes (``-ski`` marks a surname, ``-ly`` an adverb, ``Mc-`` a name). The character CNN sees
them only through max-pooled trigrams without position; this module gives each affix its own
vector. Affixes are hashed into ``buckets`` rows (no vocabulary to store: the hash of the
character ids is fixed once the character vocabulary is), and the table starts at zero, so an
affix training never saw adds nothing rather than noise. Output per token: the sum of its prefix
vectors and the sum of its suffix vectors, concatenated (2 x dims); zeros for padding.
"""

from __future__ import annotations

import torch
from torch import nn

#: Rows of the hashed affix table: enough that the few thousand affixes of a corpus rarely share.
AFFIX_BUCKETS = 16384
#: Prefix and suffix lengths looked up.
AFFIX_LENGTHS = (1, 2, 3, 4)
_PRIME = 2_147_483_647  # the rolling hash's modulus (2^31 - 1: products stay within int64)
_BASE = 1_000_003


def affix_ids(chars: torch.Tensor, buckets: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., W) character ids -> bucket ids (..., K, 2) in [0, buckets) (prefix, suffix per length)
    and a (..., K) mask of the lengths the token has. Hashed from the ids alone: no table needed."""
    lengths = (chars != 0).sum(dim=-1, keepdim=True)  # (..., 1)
    width = chars.shape[-1]
    steps = torch.arange(max(AFFIX_LENGTHS), device=chars.device)
    forward = chars[..., : max(AFFIX_LENGTHS)].long()
    if forward.shape[-1] < len(steps):
        forward = nn.functional.pad(forward, (0, len(steps) - forward.shape[-1]))
    back_index = (lengths - 1 - steps).clamp(min=0, max=max(width - 1, 0))
    backward = chars.long().gather(-1, back_index) if width else torch.zeros_like(forward)
    prefix = suffix = torch.zeros_like(forward[..., 0])
    ids, present = [], []
    for i in range(max(AFFIX_LENGTHS)):
        prefix = (prefix * _BASE + forward[..., i] + 1) % _PRIME
        suffix = (suffix * _BASE + backward[..., i] + 1) % _PRIME
        if i + 1 in AFFIX_LENGTHS:
            salt = 2 * (i + 1)
            ids.append(torch.stack([(prefix * 16 + salt) % buckets, (suffix * 16 + salt + 1) % buckets], -1))
            present.append(lengths[..., 0] > i)
    return torch.stack(ids, dim=-2), torch.stack(present, dim=-1)


class AffixEmbeddings(nn.Module):
    def __init__(self, dims: int, buckets: int = AFFIX_BUCKETS) -> None:
        super().__init__()
        self.buckets = buckets
        self.table = nn.Embedding(buckets, dims)
        nn.init.zeros_(self.table.weight)  # unseen affixes contribute nothing
        self.output_size = 2 * dims

    def affix_ids(self, chars: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., W) character ids -> this table's rows (..., K, 2) and the (..., K) mask (``affix_ids``)."""
        return affix_ids(chars, self.buckets)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """(..., W) character ids -> (..., 2 * dims)."""
        ids, present = self.affix_ids(chars)
        vectors = self.table(ids) * present.unsqueeze(-1).unsqueeze(-1).to(self.table.weight.dtype)
        summed = vectors.sum(dim=-3)  # (..., 2, dims): over the lengths
        return summed.flatten(-2)
