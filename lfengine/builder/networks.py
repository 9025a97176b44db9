"""The auto-built networks for classification, sequence tagging and regression.

Classifier: features -> [Linear -> ReLU -> Dropout] x hidden_layers -> Linear(C), plus, with
token-list columns and ``wide_ngrams``, a linear model over their words and bigrams (wide.py);
with ``linear_text`` its label distribution mixed with a fitted classical model's (linear_text.py),
that model read, with ``gated_evidence``, through context gates that train beside the network
(gated_evidence.py).
Regressor:  the same trunk -> Linear(1).
SequenceTagger: per-token features -> Dropout -> packed BiLSTM -> Dropout -> Linear(C) ->
optional CRF; with ``linear_crf`` its marginals averaged with a classical CRF's (linear_crf.py).
Packing (enforce_sorted=False) makes every result independent of the padding.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lfengine.builder.base import Prediction, TaskModel
from lfengine.builder.config import ModelConfig
from lfengine.builder.crf import Crf
from lfengine.builder.dropout import Dropout
from lfengine.builder.features import InputFeatures
from lfengine.builder.gated_evidence import GatedEvidence
from lfengine.builder.linear_crf import LinearCrf
from lfengine.builder.linear_text import LinearText, carried_by
from lfengine.builder.wide import WideNgrams
from lfengine.data.batch import Batch, InputLayout
from lfengine.data.encoding import Encoded
from lfengine.errors import OptionError
from lfengine.evaluation.metrics import is_chunk_label_set


def _require_task(name: str, layout: InputLayout, task: str) -> None:
    if layout.task != task or layout.is_sequence != (task == "sequence"):
        kind = "sequence" if layout.is_sequence else "instance"
        raise OptionError(f"{name} handles {task} data, but the data are {layout.task} ({kind} records)")


class FeedForward(nn.Module):
    """Hidden layers of a classifier or regressor; the ReLU/dropout pair sits after each Linear."""

    def __init__(self, input_size: int, hidden_size: int, layers: int, dropout: float) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        size = input_size
        for _ in range(layers):
            blocks += [nn.Linear(size, hidden_size), nn.ReLU(), Dropout(dropout)]
            size = hidden_size
        self.layers = nn.Sequential(*blocks)
        self.output_size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Classifier(TaskModel):
    """All columns -> concatenation -> hidden layer(s) -> label logits (B, C)."""

    def __init__(
        self, layout: InputLayout, config: ModelConfig, init: dict[str, np.ndarray] | None = None
    ) -> None:
        super().__init__(layout, config, init)
        self.features = InputFeatures(layout, config, init)
        # Without hidden layers (the text CNN) hidden_size and dropout have nothing to act on: not
        # read, so that a user who sets them is told they are ignored (planning._warn_unused).
        self.hidden = (
            FeedForward(self.features.output_size, config.hidden_size, config.hidden_layers, config.dropout)
            if config.hidden_layers
            else FeedForward(self.features.output_size, 0, 0, 0.0)
        )
        self.output = nn.Linear(self.hidden.output_size, self._output_size(layout))
        self.wide: WideNgrams | None = None
        if layout.lists and config.wide_ngrams:
            self.wide = WideNgrams(layout, self._output_size(layout), config.wide_ngrams)
        self.linear: LinearText | None = None
        self.gate: GatedEvidence | None = None
        if carried_by(layout, config):
            self.linear = LinearText(layout)  # from zeros, drawing nothing
            if config.gated_evidence:
                with torch.random.fork_rng(devices=[]):  # the rest of the network starts as without it
                    self.gate = GatedEvidence(layout, self.features.embeddings)

    @classmethod
    def check_layout(cls, layout: InputLayout) -> None:
        _require_task(cls.__name__, layout, "classification")

    @staticmethod
    def _output_size(layout: InputLayout) -> int:
        return layout.num_labels

    def forward(self, batch: Batch) -> torch.Tensor:
        scores = self.output(self.hidden(self.features(batch)))
        if self.wide is not None:
            scores = scores + self.wide(batch.lists, batch.list_lengths)
        return scores

    def gated_scores(self, batch: Batch) -> torch.Tensor | None:
        """(B, C) the gated linear model's label scores (None without it)."""
        if self.gate is None or self.linear is None or not self.linear.fitted:
            return None
        return self.gate(batch, self.features.embeddings, self.linear)

    def loss(self, batch: Batch) -> torch.Tensor:
        """The network's loss; in training, plus the gated linear model's, which trains beside it
        (validation reports the network's own, as without the gate)."""
        own = super().loss(batch)
        gated = self.gated_scores(batch) if self.training else None
        if gated is None:
            return own
        return own + nn.functional.cross_entropy(gated, batch.targets.long())

    def predict(self, batch: Batch) -> Prediction:
        if self.linear is None or not self.linear.fitted:
            return super().predict(batch)
        gated = self.gated_scores(batch)
        linear = None if gated is None else torch.softmax(gated.double(), dim=-1)
        return self.linear.mix(batch, torch.softmax(self(batch).float(), dim=-1), linear)

    def fit_before_training(self, train: Encoded) -> None:
        if self.linear is not None and not self.linear.fitted:
            self.linear.fit(train)
        if self.gate is not None and self.linear is not None:
            self.linear.fit_folds(train)

    def choose_on_validation(self, val: Encoded) -> None:
        if self.linear is not None:
            self.linear.choose_share(val, self, self.gated_scores if self.gate is not None else None)


class Regressor(Classifier):
    """The classifier's trunk with one output: a standardised value per instance (B,)."""

    @classmethod
    def check_layout(cls, layout: InputLayout) -> None:
        _require_task(cls.__name__, layout, "regression")

    @staticmethod
    def _output_size(layout: InputLayout) -> int:
        return 1

    def forward(self, batch: Batch) -> torch.Tensor:
        return super().forward(batch).squeeze(-1)


class SequenceTagger(TaskModel):
    """Per-token features -> BiLSTM -> emissions (B, T, C), decoded by a CRF when configured."""

    #: Always add casing/shape flags of each token (encoders.WordShape) to its features, whatever
    #: the ``word_shape`` setting says.
    word_shape: bool = False

    def __init__(
        self, layout: InputLayout, config: ModelConfig, init: dict[str, np.ndarray] | None = None
    ) -> None:
        super().__init__(layout, config, init)
        shape = self.word_shape or config.word_shape
        self.features = InputFeatures(
            layout, config, init, use_chars=config.char_encoder, use_shape=shape, affix_dims=config.affix_dims
        )
        self.input_dropout = Dropout(config.dropout)
        self.lstm = nn.LSTM(
            self.features.output_size,
            config.lstm_hidden,
            num_layers=config.lstm_layers,
            batch_first=True,
            bidirectional=True,
            dropout=config.dropout if config.lstm_layers > 1 else 0.0,
        )
        self.output_dropout = Dropout(config.dropout)
        self.output = nn.Linear(2 * config.lstm_hidden, layout.num_labels)
        self.crf = (
            Crf(layout.num_labels, layout.labels if config.chunk_constraints else None)
            if config.crf
            else None
        )
        self.linear: LinearCrf | None = None
        if config.linear_crf:  # from zeros, drawing nothing: the network trains as it would without it
            with torch.random.fork_rng(devices=[]):
                self.linear = LinearCrf(layout, layout.labels if config.chunk_constraints else None)

    @classmethod
    def check_layout(cls, layout: InputLayout) -> None:
        _require_task(cls.__name__, layout, "sequence")

    @classmethod
    def check_config(cls, layout: InputLayout, config: ModelConfig) -> None:
        for name in ("char_encoder", "word_shape", "affix_dims"):
            if getattr(config, name) and layout.chars is None:
                raise OptionError(f"{name} is on, but the data have no character column")
        if config.chunk_constraints and not (config.crf and is_chunk_label_set(layout.labels)):
            raise OptionError(
                "chunk_constraints needs the CRF (crf=true) and chunk labels (O, X|B, X|I); "
                "drop chunk_constraints=true"
            )

    def forward(self, batch: Batch) -> torch.Tensor:
        features = self.features(batch)
        size, steps = features.shape[:2]
        if size == 0 or steps == 0:
            return features.new_zeros((size, steps, self.layout.num_labels))
        features = self.input_dropout(features)
        lengths = batch.lengths.cpu()
        if bool((lengths == steps).all()):
            encoded, _ = self.lstm(features)  # no padding (e.g. a single sentence): no packing needed
        else:
            # Length-0 sequences are run as length 1 (packing needs >= 1) and masked afterwards.
            packed = pack_padded_sequence(
                features, lengths.clamp(min=1), batch_first=True, enforce_sorted=False
            )
            encoded, _ = self.lstm(packed)
            encoded, _ = pad_packed_sequence(encoded, batch_first=True, total_length=steps)
        return self.output(self.output_dropout(encoded))

    def loss(self, batch: Batch) -> torch.Tensor:
        if self.crf is None:
            return super().loss(batch)
        if batch.targets is None:
            raise ValueError("loss needs a batch with targets")
        mask = batch.mask
        nll = self.crf.neg_log_likelihood(self(batch), batch.targets, mask)
        nonempty = int((batch.lengths > 0).sum())
        return nll.sum() / max(nonempty, 1)

    def predict(self, batch: Batch) -> Prediction:
        if self.linear is not None and self.linear.fitted:  # decoded once, from the average
            return self.linear.mix(batch, self.distribution(batch))
        if self.crf is None:
            return super().predict(batch)
        return self.crf.prediction(self(batch), batch.mask, batch.lengths)

    def distribution(self, batch: Batch) -> torch.Tensor:
        """(B, T, C) the network's label probabilities per token: the CRF's marginals, or softmax."""
        if self.crf is None:
            return torch.softmax(self(batch).float(), dim=-1)
        return self.crf.marginals(self(batch).double(), batch.mask)

    def fit_before_training(self, train: Encoded) -> None:
        if self.linear is not None and not self.linear.fitted:
            self.linear.fit(train)


_AUTO_BY_TASK: dict[str, type[TaskModel]] = {
    "classification": Classifier,
    "sequence": SequenceTagger,
    "regression": Regressor,
}


class AutoNetwork(TaskModel):
    """The default: constructing it builds the auto network for the layout's task.

    ``AutoNetwork(layout, config, init)`` returns a Classifier, SequenceTagger or Regressor, so
    that the registry can hand out one class for "auto" like for any other module.
    """

    def __new__(cls, layout: InputLayout, config: ModelConfig, init: dict[str, np.ndarray] | None = None):
        return cls.network_for(layout)(layout, config, init)

    @classmethod
    def network_for(cls, layout: InputLayout) -> type[TaskModel]:
        if layout.task not in _AUTO_BY_TASK:
            raise OptionError(f"unknown task {layout.task!r}; expected one of {', '.join(_AUTO_BY_TASK)}")
        network = _AUTO_BY_TASK[layout.task]
        network.check_layout(layout)
        return network

    @classmethod
    def check_layout(cls, layout: InputLayout) -> None:
        cls.network_for(layout)

    @classmethod
    def check_config(cls, layout: InputLayout, config: ModelConfig) -> None:
        cls.network_for(layout).check_config(layout, config)
