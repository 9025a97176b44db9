"""WideNgrams: a sparse linear model over each token list's words and word pairs, beside the network.

On sentence polarity the neural text classifier lost to plain linear models over uni+bigrams
(issue 18: CNN 0.750, NB-weighted logistic regression 0.782). A "wide" part next to the "deep"
one (Cheng et al. 2016) with fastText's hashed bigrams (Joulin et al. 2017) gives the network
that linear model: one weight per label for every word of the column's vocabulary and for every
bigram, hashed into ``buckets`` rows, summed over the list and scaled by 1/sqrt(terms); its
scores are added to the network's logits. The weights start at zero, so an untrained wide part
changes nothing, and the two parts are trained together. Bigrams are formed from the word ids
(unknown words share the OOV id), so no new input is needed and applying stays unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from lfengine.builder.encoders import length_mask
from lfengine.data.batch import InputLayout

#: multiplier of the first word id in the bigram hash (a prime well above any vocabulary size)
HASH_PRIME = 1_000_003
#: most hashed bigram rows, and most weights (rows x labels) the bigram table may hold
MAX_BUCKETS = 2**18
MAX_BIGRAM_WEIGHTS = 2**22


def bigram_buckets(num_outputs: int) -> int:
    """2^18 rows, fewer for many labels so the table stays below 4M weights (16 MiB)."""
    return max(1024, min(MAX_BUCKETS, MAX_BIGRAM_WEIGHTS // max(num_outputs, 1)))


class WideNgrams(nn.Module):
    """Per list column: an ``nn.Embedding`` (vocabulary + buckets, outputs) of n-gram weights."""

    def __init__(self, layout: InputLayout, num_outputs: int, ngrams: int) -> None:
        super().__init__()
        if ngrams not in (1, 2):
            raise ValueError(f"wide n-grams must be 1 (words) or 2 (words and bigrams), got {ngrams}")
        self.ngrams = ngrams
        self.vocab_sizes = [layout.embeddings[emb_id].vocab_size for _, emb_id in layout.lists]
        self.buckets = bigram_buckets(num_outputs) if ngrams > 1 else 0
        self.tables = nn.ModuleList(nn.Embedding(v + self.buckets, num_outputs) for v in self.vocab_sizes)
        for table in self.tables:
            nn.init.zeros_(table.weight)

    def forward(self, lists: list[torch.Tensor], lengths: list[torch.Tensor]) -> torch.Tensor:
        """(B, outputs) scores from the (B, L) word ids and (B,) lengths of every list column."""
        total: torch.Tensor | None = None
        for table, vocab, ids, length in zip(self.tables, self.vocab_sizes, lists, lengths, strict=True):
            mask = length_mask(length, ids.shape[1])
            terms, keep = [ids], [mask]
            if self.ngrams > 1 and ids.shape[1] > 1:
                pairs = (ids[:, :-1] * HASH_PRIME + ids[:, 1:]) % self.buckets + vocab
                terms.append(pairs)
                keep.append(mask[:, 1:])
            term_ids, term_mask = torch.cat(terms, dim=1), torch.cat(keep, dim=1)
            weights = table(term_ids) * term_mask.unsqueeze(-1).to(table.weight.dtype)
            count = term_mask.sum(dim=1, keepdim=True).clamp(min=1).to(weights.dtype)
            scores = weights.sum(dim=1) / count.sqrt()
            total = scores if total is None else total + scores
        if total is None:
            raise ValueError("WideNgrams needs at least one list column")
        return total
