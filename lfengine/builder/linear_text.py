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
_BLOCK_KEYS = 2**20  # most (item, feature) slots per block of the full-batch objective


def carried_by(layout: InputLayout, config: Any) -> bool:
    """Whether the auto classifier (and its ejected source) carries the linear model."""
    return bool(layout.lists) and layout.task == "classification" and bool(config.linear_text)


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
            keys.append(salted(ids, 2 * column + 1))
            present.append(words)
            if ids.shape[1] > 1:  # a pair's value is exact below 2^20 words, hashed above
                keys.append(salted((ids[:, :-1] * vocab + ids[:, 1:]) % VALUE_MASK, 2 * column + 2))
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

    def mix(self, batch: Batch, network: torch.Tensor) -> Prediction:
        """The network's (B, C) label distributions averaged with this model's."""
        share = self.share.to(network.dtype)
        average = share * self.probabilities(batch).to(network.dtype) + (1 - share) * network
        confidence, label_ids = average.max(dim=-1)
        return Prediction(label_ids=label_ids, confidence=confidence, distribution=average)

    def probabilities(self, batch: Batch) -> torch.Tensor:
        """(B, C) label distributions, in float64."""
        return torch.softmax(self.scores(batch).double(), dim=-1)

    def choose_share(self, val: Encoded, network: Callable[[Batch], torch.Tensor]) -> float:
        """Set (and return) the share under which the labels of ``val`` are likeliest, given the
        network's (B, C) label scores (logits) of a batch."""
        if not self.fitted or val.targets is None or not len(val):
            return float(self.share)
        mine, theirs = [], []
        for batch in _batches(val, self.keys.device):
            gold = batch.targets.long().unsqueeze(1)
            theirs.append(torch.softmax(network(batch).double(), dim=-1).gather(1, gold))
            mine.append(self.probabilities(batch).gather(1, gold))
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
        device = self.keys.device
        batches = [collate(train, items).to(device) for items in blocks(_feature_slots(train), _BLOCK_KEYS)]
        features = [self.features(batch) for batch in batches]
        self.learn_keys(features)
        if not self.fitted:
            return
        inputs = [
            (*self.lookup(keys, present), batch.targets.long())
            for (keys, present), batch in zip(features, batches)
        ]
        ratios = self._log_count_ratios(inputs)  # float64, as the fit (sparse_weights.FIT_DTYPE)
        items = len(train)
        scaled = torch.zeros_like(ratios, requires_grad=True)
        bias = torch.zeros_like(self.bias, dtype=FIT_DTYPE, requires_grad=True)

        def block_losses() -> Iterator[torch.Tensor]:
            for rows, known, targets in inputs:
                scores = bag_sums(rows, known, scaled * ratios) + bias
                yield nn.functional.cross_entropy(scores, targets, reduction="sum") / items

        def penalty() -> torch.Tensor:
            return scaled.square().sum() / (2 * C * items)

        loss = self.minimise_unless_stopped(
            "linear text model", [scaled, bias], block_losses, penalty, MAX_ITERATIONS
        )
        if loss is None:
            return
        with torch.no_grad():
            self.weights = frozen((scaled * ratios).detach().to(self.bias.dtype))
            self.bias.copy_(bias)
        log.info(
            "linear text model fitted: %d words and word pairs, %d items, loss %.4f per item, %.1f CPU s",
            len(self.keys),
            items,
            loss,
            time.process_time() - started,
        )

    def _log_count_ratios(
        self, inputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """(F, C) log of how much likelier each feature is in the items of a label than in the
        others' (one against the rest, counts smoothed; Wang & Manning 2012)."""
        counts = self.weights.new_zeros(len(self.keys), self.output_size, dtype=FIT_DTYPE)
        for rows, known, targets in inputs:
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
