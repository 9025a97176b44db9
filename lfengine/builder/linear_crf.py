"""LinearCrf: a classical linear-chain CRF over sparse token features, beside the neural tagger.

On unseen documents a CRF over the columns plus the usual CoNLL features (lowercased word, 1-4
character prefixes and suffixes, casing shape, the neighbours' words and shapes) beat the
BiLSTM-CRF, and the two err on different tokens: the average of their per-token probabilities
beats both (held-out tails, seeds 1-5: ner-synth-1500 span F1 tagger 0.762, CRF 0.784, average
0.796; seq-pos1 token accuracy 0.894, 0.904, 0.905; docs/training.md). So the tagger carries
one. It is fitted first, by L-BFGS on the whole training split (convex: no seed, no epochs),
then stays fixed while the network trains; every prediction (validation included, so early
stopping picks the network that best complements it) averages the two models' marginals and
decodes the average, under the chunk constraints where the tagger has them.

Features are keyed, not hashed into buckets (sparse_weights.py). Everything is computed from
the batch tensors (word ids, character ids), so applying needs no new input.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from lfengine.builder.affixes import affix_ids
from lfengine.builder.base import Prediction
from lfengine.builder.crf import Crf, viterbi
from lfengine.builder.encoders import WordShape
from lfengine.builder.sparse_weights import (
    FIT_DTYPE,
    VALUE_MASK,
    SparseWeights,
    bag_sums,
    blocks,
    frozen,
    salted,
)
from lfengine.data.batch import Batch, CharInfo, InputLayout
from lfengine.data.batching import collate
from lfengine.data.encoding import Encoded

log = logging.getLogger("lfengine.trainer")

_EDGE = VALUE_MASK  # the neighbour of the first or last token
_PRIME = 2_147_483_647  # the lowercased word's rolling hash (2^31 - 1: products stay in int64)
_BASE = 1_000_003
_SHAPE_BITS = torch.tensor([1 << i for i in range(9)])
#: The L2 strength (per training sentence, against the summed log-likelihood) and the most
#: L-BFGS iterations. Measured alone on the held-out tails (L2 0.1 / 0.3 / 1 at 50 iterations):
#: seq-pos1 0.912 / 0.912 / 0.905, ner-synth-1500 - / 0.784 / 0.785, pos-synth-1500 - / 0.961 /
#: 0.962; 100 iterations gained nothing for twice the time.
L2 = 0.3
MAX_ITERATIONS = 50
_BLOCK_TOKENS = 16384  # most padded tokens per block of the full-batch objective


def _neighbours(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) values of the previous and the next token; _EDGE beyond the sentence."""
    edged = values.masked_fill(~mask, _EDGE)
    edge = torch.full_like(values[:, :1], _EDGE)
    return torch.cat([edge, edged[:, :-1]], dim=1), torch.cat([edged[:, 1:], edge], dim=1)


class TokenFeatures(nn.Module):
    """(B, T) tokens -> (B, T, K) feature keys and a (B, T, K) mask of those present."""

    def __init__(self, layout: InputLayout) -> None:
        super().__init__()
        self.nominal = len(layout.nominal)
        self.chars: CharInfo | None = layout.chars
        lower = list(range(layout.chars.vocab_size)) if layout.chars else []
        if layout.chars is not None:
            index = {ch: i for i, ch in enumerate(layout.chars.alphabet)}
            for i, ch in enumerate(layout.chars.alphabet[2:], start=2):
                lower[i] = index.get(ch.lower(), i)
            self.shape = WordShape(layout.chars.alphabet, layout.chars.vocab_size)
        self.register_buffer("lower_of", torch.tensor(lower, dtype=torch.long), persistent=False)

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        mask = batch.mask
        keys: list[torch.Tensor] = []
        present: list[torch.Tensor] = []
        salt = 0

        def add(values: torch.Tensor, here: torch.Tensor) -> None:
            nonlocal salt
            salt += 1
            keys.append(salted(values, salt))
            present.append(here & mask)

        for column in range(self.nominal):  # each column's value (a window export has neighbours)
            ids = batch.nominal[..., column].long()
            add(ids, ids != 0)
        if self.chars is not None and batch.chars is not None:
            chars = batch.chars.long()
            lower = self.lower_of[chars]
            word = torch.zeros_like(chars[..., 0])
            for step in range(chars.shape[-1]):
                c = lower[..., step]
                word = torch.where(c != 0, (word * _BASE + c + 1) % _PRIME, word)
            shape = (self.shape(batch.chars).long() * _SHAPE_BITS.to(chars.device)).sum(-1)
            nonempty = (chars != 0).any(-1)
            for values in (word, shape):
                add(values, nonempty)
                for side in _neighbours(values, mask):
                    add(side, mask)
            affixes, has = affix_ids(chars, _EDGE)
            for k in range(affixes.shape[-2]):
                for end in range(2):
                    add(affixes[..., k, end], has[..., k])
        if not keys:
            empty = mask.new_zeros((*mask.shape, 0))
            return empty.long(), empty
        return torch.stack(keys, dim=-1), torch.stack(present, dim=-1)


class LinearCrf(SparseWeights):
    """Sparse feature weights, numeric column weights and label biases, with a Crf's transitions:
    all fitted by ``fit``, none trained by the network's optimizer (they are frozen)."""

    def __init__(self, layout: InputLayout, chunk_labels: Sequence[str] | None) -> None:
        labels = layout.num_labels
        super().__init__(labels)
        self.features = TokenFeatures(layout)
        self.numeric = frozen(torch.zeros(len(layout.numeric), labels))
        self.bias = frozen(torch.zeros(labels))
        self.crf = Crf(labels, chunk_labels)
        for parameter in self.crf.parameters():
            nn.init.zeros_(parameter)
            parameter.requires_grad_(False)

    def describe_detail(self) -> str:
        if not self.fitted:
            return "sparse token features, fitted before training"
        return f"{len(self.keys):,} sparse token features"

    @staticmethod
    def _emissions(
        rows: torch.Tensor, known: torch.Tensor, numeric: torch.Tensor, weights: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        sparse, dense, bias = weights
        return numeric.to(dense.dtype) @ dense + bias + bag_sums(rows, known, sparse)

    def emissions(self, batch: Batch) -> torch.Tensor:
        """(B, T, C) per-token label scores."""
        rows, known = self.lookup(*self.features(batch))
        return self._emissions(rows, known, batch.numeric, (self.weights, self.numeric, self.bias))

    def marginals(self, batch: Batch) -> torch.Tensor:
        """(B, T, C) p(label | sentence) per token, in float64 (as the tagger's CRF computes)."""
        return self.crf.marginals(self.emissions(batch).double(), batch.mask)

    def mix(self, batch: Batch, network: torch.Tensor) -> Prediction:
        """The network's (B, T, C) label distributions averaged with this CRF's marginals,
        decoded as the best path through the average that the chunk constraints allow."""
        mask = batch.mask
        average = (network.double() + self.marginals(batch)) / 2
        transitions, start, end = self.crf.constraint_scores(average.dtype)
        path = viterbi(average.clamp(min=1e-30).log(), mask, transitions, start, end)
        chosen = average.gather(2, path.clamp(min=0).unsqueeze(2)).squeeze(2)
        return Prediction(
            label_ids=path,
            confidence=chosen.masked_fill(~mask, 0.0),
            distribution=average * mask.unsqueeze(-1),
            lengths=batch.lengths,
        )

    # --- fitting --------------------------------------------------------------------------
    def fit(self, train: Encoded) -> None:
        """Maximise the L2-penalised log-likelihood of the (labelled) training split by L-BFGS,
        from zero: deterministic, whatever the seed."""
        started = time.process_time()
        device = self.keys.device
        batches = [collate(train, items).to(device) for items in blocks(train.lengths(), _BLOCK_TOKENS)]
        features = [self.features(batch) for batch in batches]
        self.learn_keys(features)
        if not self.fitted:
            return
        sentences = sum(int((b.lengths > 0).sum()) for b in batches)
        # In FIT_DTYPE (float64): every CPU ends the fit at the same weights.
        weights = [
            torch.zeros(len(self.keys), self.output_size, device=device, dtype=FIT_DTYPE, requires_grad=True),
            torch.zeros_like(self.numeric, dtype=FIT_DTYPE, requires_grad=True),
            torch.zeros_like(self.bias, dtype=FIT_DTYPE, requires_grad=True),
        ]
        crf = copy.deepcopy(self.crf).to(FIT_DTYPE).requires_grad_(True)
        inputs = [(*self.lookup(keys, present), batch) for (keys, present), batch in zip(features, batches)]

        def block_losses() -> Iterator[torch.Tensor]:
            for rows, known, batch in inputs:
                emissions = self._emissions(rows, known, batch.numeric, weights)
                yield crf.neg_log_likelihood(emissions, batch.targets, batch.mask).sum() / sentences

        def penalty() -> torch.Tensor:
            return (weights[0].square().sum() + weights[1].square().sum()) * (L2 / sentences)

        loss = self.minimise_unless_stopped(
            "linear CRF", [*weights, *crf.parameters()], block_losses, penalty, MAX_ITERATIONS
        )
        if loss is None:
            return
        with torch.no_grad():
            self.weights = frozen(weights[0].detach().to(self.numeric.dtype))
            self.numeric.copy_(weights[1])
            self.bias.copy_(weights[2])
            for mine, fitted in zip(self.crf.parameters(), crf.parameters(), strict=True):
                mine.copy_(fitted)
        log.info(
            "linear CRF fitted: %d features, %d sentences, loss %.4f per sentence, %.1f CPU s",
            len(self.keys),
            sentences,
            loss,
            time.process_time() - started,
        )
