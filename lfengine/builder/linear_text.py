"""LinearText: NB-weighted logistic regression over token lists, beside the text classifier.

On little text a sparse linear model over words and word pairs beats the text CNN on unseen
documents (issue 18: polarity-1k NB-weighted logistic regression 0.689, the CNN 0.647; the real
8.5k-sentence polarity set 0.782 against 0.750), while the CNN wins on more made-up text. So the
classifier carries the strongest of those linear models, Wang & Manning (2012)'s NBSVM with a
logistic loss: binary uni+bigram features, each scaled per label by its naive-Bayes log-count
ratio, under a softmax with an L2 penalty. It is fitted first, by L-BFGS on the training split
(convex: no seed, no epochs), then stays fixed while the network trains. Every prediction is
``share * linear + (1 - share) * network``; at each validation the share is set, on a grid of
0-1, to the one that gives the validation split the lowest negative log-likelihood, so a small
set leans on the linear model and a large one on the network, and early stopping keeps the
network that best complements it. Without a validation split the share stays at 1/2.

With ``gated_evidence`` the mix takes, in this model's place, the distribution of the same weights
read through the gates that train beside the network (gated_evidence.py); ``fit_folds`` fits the
out-of-fold weight tables those gates train on.

Features come from the word ids of the batch (padding excluded; a word unknown at training
time is the OOV id, whose features training saw only if its own items had OOV words), so
applying needs no new input.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from lfengine.builder.base import Prediction
from lfengine.builder.encoders import length_mask
from lfengine.builder.sparse_weights import (
    FIT_DTYPE,
    VALUE_MASK,
    SparseWeights,
    bag_sums,
    blocks,
    frozen,
    salted,
)
from lfengine.data.batch import Batch, InputLayout
from lfengine.data.batching import collate
from lfengine.data.encoding import Encoded

log = logging.getLogger("lfengine.trainer")

#: liblinear's C (the loss summed over items against half the squared weights), the smoothing of
#: the log-count ratios and the most L-BFGS iterations. C measured on the held-out tails below.
C = 0.3
SMOOTHING = 1.0
MAX_ITERATIONS = 100
#: the shares of the linear model tried at each validation
SHARES = tuple(i / 20 for i in range(21))
#: out-of-fold fits for the gated evidence (gated_evidence.py)
FOLDS = 5
_BLOCK_KEYS = 2**20  # most (item, feature) slots per block of the full-batch objective
_Fit = tuple[torch.Tensor, torch.Tensor, float]


def carried_by(layout: InputLayout, config: Any) -> bool:
    """Whether the auto classifier (and its ejected source) carries the linear model."""
    return bool(layout.lists) and layout.task == "classification" and bool(config.linear_text)


def word_and_pair_keys(ids: torch.Tensor, vocab: int, column: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) word ids of list column ``column`` -> the (B, L) keys of its words and the (B, L - 1)
    keys of its word pairs (a pair's value is exact below 2^20 words, hashed above)."""
    pairs = (ids[:, :-1] * vocab + ids[:, 1:]) % VALUE_MASK
    return salted(ids, 2 * column + 1), salted(pairs, 2 * column + 2)


class TextFeatures(nn.Module):
    """(B, L) word ids of each list column -> (B, K) distinct word and word-pair keys, and the mask of
    those present (each key once per item: the features are binary)."""

    def __init__(self, layout: InputLayout) -> None:
        super().__init__()
        self.vocab_sizes = [layout.embeddings[emb_id].vocab_size for _, emb_id in layout.lists]

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        keys: list[torch.Tensor] = []
        present: list[torch.Tensor] = []
        for column, (vocab, ids, length) in enumerate(zip(self.vocab_sizes, batch.lists, batch.list_lengths)):
            ids = ids.long()
            words = length_mask(length, ids.shape[1]) & (ids != 0)
            word_keys, pair_keys = word_and_pair_keys(ids, vocab, column)
            keys.append(word_keys)
            present.append(words)
            if ids.shape[1] > 1:
                keys.append(pair_keys)
                present.append(words[:, :-1] & words[:, 1:])
        if not keys:
            empty = torch.zeros((batch.size, 0), dtype=torch.long, device=batch.numeric.device)
            return empty, empty.bool()
        ordered, _ = torch.cat(keys, dim=1).masked_fill(~torch.cat(present, dim=1), -1).sort(dim=1)
        repeated = torch.cat(
            [torch.zeros_like(ordered[:, :1], dtype=torch.bool), ordered[:, 1:] == ordered[:, :-1]], 1
        )
        return ordered, (ordered >= 0) & ~repeated


class LinearText(SparseWeights):
    """Label weights per word and word pair (the log-count ratios folded in) and label biases,
    fitted by ``fit``; ``share`` is the linear model's weight in the average."""

    def __init__(self, layout: InputLayout) -> None:
        super().__init__(layout.num_labels)
        self.features = TextFeatures(layout)
        self.bias = frozen(torch.zeros(layout.num_labels))
        self.register_buffer("share", torch.tensor(0.5))
        #: (FOLDS, F, C) out-of-fold weights, for training only: not stored, refitted on resume
        self.fold_weights: torch.Tensor | None = None
        self.fold_items = 0

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        share = state_dict.get(prefix + "share")
        if isinstance(share, torch.Tensor) and not (share.numel() == 1 and 0 <= float(share) <= 1):
            raise RuntimeError(f"{prefix}share must be one number within 0..1, got {share.tolist()}")
        super()._load_from_state_dict(state_dict, prefix, *args)

    def describe_detail(self) -> str:
        if not self.fitted:
            return "words and word pairs, fitted before training"
        return f"{len(self.keys):,} words and word pairs, share {float(self.share):.2f}"

    def scores(self, batch: Batch) -> torch.Tensor:
        """(B, C) label scores."""
        rows, known = self.lookup(*self.features(batch))
        return bag_sums(rows, known, self.weights) + self.bias

    def mix(self, batch: Batch, network: torch.Tensor, linear: torch.Tensor | None = None) -> Prediction:
        """The network's (B, C) label distributions averaged with this model's (or ``linear``,
        those of the gated model built on it)."""
        share = self.share.to(network.dtype)
        own = self.probabilities(batch) if linear is None else linear
        average = share * own.to(network.dtype) + (1 - share) * network
        confidence, label_ids = average.max(dim=-1)
        return Prediction(label_ids=label_ids, confidence=confidence, distribution=average)

    def probabilities(self, batch: Batch) -> torch.Tensor:
        """(B, C) label distributions, in float64."""
        return torch.softmax(self.scores(batch).double(), dim=-1)

    def choose_share(
        self,
        val: Encoded,
        network: Callable[[Batch], torch.Tensor],
        linear: Callable[[Batch], torch.Tensor | None] | None = None,
    ) -> float:
        """Set (and return) the share under which the labels of ``val`` are likeliest, given the
        network's (B, C) label scores (logits) of a batch (and ``linear``'s, in place of this
        model's own)."""
        if not self.fitted or val.targets is None or not len(val):
            return float(self.share)
        mine, theirs = [], []
        for batch in _batches(val, self.keys.device):
            gold = batch.targets.long().unsqueeze(1)
            theirs.append(torch.softmax(network(batch).double(), dim=-1).gather(1, gold))
            own = None if linear is None else linear(batch)
            probabilities = self.probabilities(batch) if own is None else torch.softmax(own.double(), dim=-1)
            mine.append(probabilities.gather(1, gold))
        ours, others = torch.cat(mine), torch.cat(theirs)
        losses = [float(-(s * ours + (1 - s) * others).clamp(min=1e-30).log().mean()) for s in SHARES]
        before = float(self.share)
        self.share.fill_(SHARES[int(np.argmin(losses))])
        if float(self.share) != before:  # shown as it moves: how much of each prediction is linear
            log.info("linear text model's share of the mix: %.2f (was %.2f)", float(self.share), before)
        return float(self.share)

    # --- fitting --------------------------------------------------------------------------
    def fit(self, train: Encoded) -> None:
        """Maximise the L2-penalised log-likelihood of the training split by L-BFGS, from zero:
        deterministic, whatever the seed."""
        started = time.process_time()
        self.fold_items = len(train)
        batches, features = self._features(train)
        self.learn_keys(features)
        if not self.fitted:
            return
        fitted = self._fit_weights(self._inputs(batches, features), None)
        if fitted is None:
            return
        weights, bias, loss = fitted
        with torch.no_grad():
            self.weights = frozen(weights.to(self.bias.dtype))
            self.bias.copy_(bias)
        log.info(
            "linear text model fitted: %d words and word pairs, %d items, loss %.4f per item, %.1f CPU s",
            len(self.keys),
            len(train),
            loss,
            time.process_time() - started,
        )

    def fit_folds(self, train: Encoded) -> None:
        """Fit ``FOLDS`` more weight tables over the same keys, each leaving out one contiguous
        block of the training items (whole documents, as LF writes them in order): the evidence a
        training item's words carry, as the model would weigh it had it never seen the item."""
        if not self.fitted or self.fold_weights is not None:
            return
        started = time.process_time()
        self.fold_items = len(train)
        batches, features = self._features(train)
        inputs = self._inputs(batches, features)
        tables = []
        for fold in range(FOLDS):
            fitted = self._fit_weights(inputs, fold)
            if fitted is None:
                self.fold_weights = None
                return
            tables.append(fitted[0].to(self.bias.dtype))
        self.fold_weights = torch.stack(tables)
        log.info("linear text model's %d out-of-fold fits: %.1f CPU s", FOLDS, time.process_time() - started)

    def folds_of(self, items: torch.Tensor) -> torch.Tensor:
        """(B,) the fold that leaves out each of these training items."""
        return (items * FOLDS // max(self.fold_items, 1)).clamp(max=FOLDS - 1)

    def _features(self, train: Encoded) -> tuple[list[Batch], list[tuple[torch.Tensor, torch.Tensor]]]:
        device = self.keys.device
        batches = [collate(train, items).to(device) for items in blocks(_feature_slots(train), _BLOCK_KEYS)]
        return batches, [self.features(batch) for batch in batches]

    def _inputs(self, batches: list[Batch], features: list[tuple[torch.Tensor, torch.Tensor]]) -> list[tuple]:
        """Per block: weight rows, known mask, targets and each item's fold."""
        return [
            (*self.lookup(keys, present), batch.targets.long(), self.folds_of(batch.items))
            for (keys, present), batch in zip(features, batches)
        ]

    def _fit_weights(self, inputs: list[tuple], left_out: int | None) -> _Fit | None:
        """(F, C) weights, (C,) biases and the loss per item of the fit on every item but those of
        fold ``left_out`` (None: every item); None when training was asked to stop."""
        kept = [
            (rows, known, targets, folds != (-1 if left_out is None else left_out))
            for rows, known, targets, folds in inputs
        ]
        inputs = [(rows, known & keep.unsqueeze(1), targets, keep) for rows, known, targets, keep in kept]
        ratios = self._log_count_ratios(inputs)  # float64, as the fit (sparse_weights.FIT_DTYPE)
        items = max(sum(int(keep.sum()) for *_, keep in inputs), 1)
        scaled = torch.zeros_like(ratios, requires_grad=True)
        bias = torch.zeros_like(self.bias, dtype=FIT_DTYPE, requires_grad=True)

        def block_losses() -> Iterator[torch.Tensor]:
            for rows, known, targets, keep in inputs:
                scores = bag_sums(rows, known, scaled * ratios) + bias
                losses = nn.functional.cross_entropy(scores, targets, reduction="none")
                yield (losses * keep).sum() / items

        def penalty() -> torch.Tensor:
            return scaled.square().sum() / (2 * C * items)

        loss = self.minimise_unless_stopped(
            "linear text model", [scaled, bias], block_losses, penalty, MAX_ITERATIONS
        )
        if loss is None:
            return None
        return (scaled * ratios).detach(), bias.detach(), loss

    def _log_count_ratios(
        self, inputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """(F, C) log of how much likelier each feature is in the items of a label than in the
        others' (one against the rest, counts smoothed; Wang & Manning 2012)."""
        counts = self.weights.new_zeros(len(self.keys), self.output_size, dtype=FIT_DTYPE)
        for rows, known, targets, _ in inputs:
            labels = targets.unsqueeze(1).expand_as(rows)
            flat = (rows * self.output_size + labels)[known]
            counts.view(-1).index_add_(0, flat, torch.ones_like(flat, dtype=counts.dtype))
        inside = counts + SMOOTHING
        outside = counts.sum(dim=1, keepdim=True) - counts + SMOOTHING
        return (inside / inside.sum(dim=0)).log() - (outside / outside.sum(dim=0)).log()


def _feature_slots(data: Encoded) -> np.ndarray:
    """Per item, the word and word-pair slots of its lists (before padding)."""
    sizes = np.zeros(len(data), dtype=np.int64)
    for ragged in data.lists:
        sizes += 2 * np.diff(ragged.offsets)
    return sizes


def _batches(data: Encoded, device: torch.device, items_per_batch: int = 512) -> list[Batch]:
    """Every item of ``data`` in batches, in order."""
    count = math.ceil(len(data) / items_per_batch)
    return [collate(data, part).to(device) for part in np.array_split(np.arange(len(data)), max(count, 1))]
