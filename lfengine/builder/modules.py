"""Predefined networks selectable by name (``--module NAME``), besides the auto-built default.

Each is a TaskModel with the standard constructor ``(layout, config, init)``; its
``config_defaults`` replace the general heuristics for the settings that define it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lfengine.builder.base import TaskModel
from lfengine.builder.config import ModelConfig
from lfengine.builder.embeddings import FeatureEmbeddings
from lfengine.builder.encoders import MaskedCnnEncoder
from lfengine.builder.networks import Classifier, SequenceTagger
from lfengine.data.batch import Batch, InputLayout
from lfengine.errors import OptionError


class TextCnn(TaskModel):
    """Kim (2014) text classifier over the first list column: embeddings -> CNN -> Dropout -> Linear.

    For data whose whole signal is one text (e.g. class-ngram-sp1); other columns are ignored.
    """

    config_defaults = {"list_encoder": "cnn", "cnn_kernels": (3, 4, 5), "cnn_channels": 100, "dropout": 0.5}

    def __init__(
        self, layout: InputLayout, config: ModelConfig, init: dict[str, np.ndarray] | None = None
    ) -> None:
        super().__init__(layout, config, init)
        emb_id = layout.lists[0][1]
        self.emb_id = emb_id
        self.embeddings = FeatureEmbeddings(layout.embeddings, [emb_id], init, config.embedding_dropout)
        self.encoder = MaskedCnnEncoder(self.embeddings.dims(emb_id), config.cnn_kernels, config.cnn_channels)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(self.encoder.output_size, layout.num_labels)

    @classmethod
    def check_layout(cls, layout: InputLayout) -> None:
        if layout.task != "classification" or layout.is_sequence or not layout.lists:
            raise OptionError("TextCnn needs classification data with at least one token-list (N) column")

    def forward(self, batch: Batch) -> torch.Tensor:
        vectors = self.embeddings.lookup(self.emb_id, batch.lists[0])
        return self.output(self.dropout(self.encoder(vectors, batch.list_lengths[0])))


class BiLstmCrfTagger(SequenceTagger):
    """The auto tagger with the CRF always on (Lample et al. 2016), for any label set."""

    config_defaults = {"crf": True}

    @classmethod
    def check_config(cls, layout: InputLayout, config: ModelConfig) -> None:
        super().check_config(layout, config)
        if not config.crf:
            raise OptionError("BiLstmCrfTagger always uses a CRF; drop crf=false or use the default network")


class MlpClassifier(Classifier):
    """All columns, lists as the mean of their embeddings, two hidden layers: fast and robust."""

    config_defaults = {"list_encoder": "mean", "hidden_layers": 2}
