"""GatedEvidence: the linear text model's word weights, each weighed by the word's context.

The linear model (linear_text.py) adds up what every word and word pair says about the label,
the same wherever it stands: "good" counts for "pos" in "not good" too, and a word pair it never
saw ("not riveting") says nothing. Rules such as negation can be learnt from a few hundred
sentences, because the words that make them are frequent, but the polarity of each rare word
only the linear model's counts know. So each position's evidence (the weights of its word and of
the word pair it ends) is multiplied by a gate in -1..3 that a width-3 convolution computes from
the network's word vectors there, and the gated sum, plus the linear model's biases, gives label
scores: a second linear model, whose gates start at 1 (the fitted model itself) and learn where
to turn evidence down, up or round.

The gates train beside the network, on their own loss (``Classifier.loss``), and take its place
in the mix with the network's distribution (``LinearText.mix``). They read the network's word
vectors without dropout and without passing gradients back: the network's gradients are its own
(only the clipping of the global gradient norm is shared). Inside the network's own scores, as
one more input, the evidence made the network lean on it and cost 2.6 points on polarity-4k
(docs/training.md, "Against classical models").

A training item's evidence must not come from weights fitted on its own label, or the gates learn
to trust the evidence as far as the training labels do, which is all the way for a word seen
once: while training, each item reads the weights of the linear model's fit that left out its
block of the training split (``LinearText.fit_folds``); validation and applying read the full
fit.
"""

from __future__ import annotations

import torch
from torch import nn

from lfengine.builder.embeddings import FeatureEmbeddings
from lfengine.builder.encoders import length_mask
from lfengine.builder.linear_text import LinearText, word_and_pair_keys
from lfengine.data.batch import Batch, InputLayout

#: the gate's range: 1 + REACH * tanh(...), from 1 - REACH to 1 + REACH
REACH = 2.0


class GatedEvidence(nn.Module):
    """Per token-list column a width-3 convolution: word vectors -> one gate per position."""

    def __init__(self, layout: InputLayout, embeddings: FeatureEmbeddings) -> None:
        super().__init__()
        self.columns = [emb_id for _, emb_id in layout.lists]
        self.vocab_sizes = [layout.embeddings[emb_id].vocab_size for emb_id in self.columns]
        self.gates = nn.ModuleList(
            nn.Conv1d(embeddings.dims(emb_id), 1, 3, padding=1) for emb_id in self.columns
        )
        for gate in self.gates:  # every gate 1 at the start: the linear model's sum
            nn.init.zeros_(gate.weight)
            nn.init.zeros_(gate.bias)
        self.output_size = layout.num_labels

    def describe_detail(self) -> str:
        low, high = 1 - REACH, 1 + REACH
        return f"the linear model's word and word-pair weights, each times a gate in {low:g}..{high:g}"

    def forward(self, batch: Batch, embeddings: FeatureEmbeddings, linear: LinearText) -> torch.Tensor:
        """(B, C) label scores: the gated sum of the evidence of every list column's words, plus the
        linear model's biases."""
        folds = None
        if self.training and linear.fold_weights is not None and batch.items is not None:
            folds = linear.folds_of(batch.items.to(linear.keys.device))
        total = None
        for column, (emb_id, vocab, gate, ids, lengths) in enumerate(
            zip(self.columns, self.vocab_sizes, self.gates, batch.lists, batch.list_lengths, strict=True)
        ):
            ids = ids.long()
            steps = ids.shape[1]
            words = length_mask(lengths, steps) & (ids != 0)
            word_keys, pair_keys = word_and_pair_keys(ids, vocab, column)
            evidence = _evidence(linear, word_keys, words, folds)
            if steps > 1:  # a pair's evidence at the position that ends it
                tail = _evidence(linear, pair_keys, words[:, :-1] & words[:, 1:], folds)
                evidence = evidence + nn.functional.pad(tail, (0, 0, 1, 0))
            vectors = embeddings.lookup(emb_id, ids, dropout=False).detach()
            vectors = vectors.masked_fill(~words.unsqueeze(-1), 0.0)
            weight = 1 + REACH * torch.tanh(gate(vectors.transpose(1, 2)).squeeze(1))  # (B, L)
            gated = (weight.unsqueeze(-1) * evidence.to(weight.dtype)).sum(dim=1)
            total = gated if total is None else total + gated
        if total is None:
            return linear.bias.expand(batch.size, -1)
        return total + linear.bias


def _evidence(
    linear: LinearText, keys: torch.Tensor, present: torch.Tensor, folds: torch.Tensor | None
) -> torch.Tensor:
    """(B, L, C) the linear weights of these (B, L) feature keys; zeros where absent or unseen."""
    rows, known = linear.lookup(keys, present)
    if folds is None:
        values = linear.weights[rows]
    else:
        values = linear.fold_weights[folds.unsqueeze(1).expand_as(rows), rows]
    return values * known.unsqueeze(-1)
