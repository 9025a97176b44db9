"""InputFeatures: every column of the layout -> one vector per instance or per sequence element.

Nominal columns are looked up in their shared tables, numeric columns pass through, each list
column gets its own encoder over its shared table, and (for sequences) a character CNN and
word-shape flags can add a vector per token. The parts are concatenated in that order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from lfengine.builder.affixes import AffixEmbeddings
from lfengine.builder.config import ModelConfig
from lfengine.builder.embeddings import FeatureEmbeddings, NominalInput, NumericInput
from lfengine.builder.encoders import (
    CharEncoder,
    WordShape,
    encode_positions,
    list_encoder_size,
    make_list_encoder,
)
from lfengine.data.batch import Batch, InputLayout
from lfengine.data.kinds import kind_named
from lfengine.errors import ModelError, OptionError


def feature_width(layout: InputLayout, settings: Any) -> int:
    """Width of the nominal, numeric, list-column and column-kind features concatenated
    (characters and word shape aside): the one rule both ``InputFeatures`` and the size heuristics use.

    ``settings``: a ModelConfig, or any object with its list-encoder attributes (the heuristics
    pass the values chosen so far); they are read only when the layout has list columns.
    """
    embeddings = layout.embeddings
    size = sum(embeddings[emb_id].dims for _, emb_id in layout.nominal if emb_id in embeddings)
    size += len(layout.numeric)
    for _, emb_id in layout.lists:
        dims = embeddings[emb_id].dims if emb_id in embeddings else 0
        size += list_encoder_size(
            settings.list_encoder,
            dims,
            settings.cnn_kernels,
            settings.cnn_channels,
            settings.list_lstm_hidden,
        )
    size += sum(kind_named(name).width(kind_settings, settings) for name, kind_settings in layout.kinds)
    return size


class InputFeatures(nn.Module):
    def __init__(
        self,
        layout: InputLayout,
        config: ModelConfig,
        init: dict[str, np.ndarray] | None,
        use_chars: bool = False,
        use_shape: bool = False,
        affix_dims: int = 0,
    ) -> None:
        super().__init__()
        self.is_sequence = layout.is_sequence
        self.list_columns = layout.lists
        used_ids = [emb_id for _, emb_id in layout.nominal] + [emb_id for _, emb_id in layout.lists]
        self.embeddings = FeatureEmbeddings(layout.embeddings, used_ids, init, config.embedding_dropout)
        self.nominal = NominalInput(layout.nominal, self.embeddings)
        self.numeric = NumericInput(layout.numeric)
        self.lists = nn.ModuleList(
            make_list_encoder(
                config.list_encoder,
                self.embeddings.dims(emb_id),
                config.cnn_kernels,
                config.cnn_channels,
                config.list_lstm_hidden,
            )
            for _, emb_id in layout.lists
        )
        self.chars: CharEncoder | None = None
        if use_chars:
            if layout.chars is None or not layout.is_sequence:
                raise OptionError("char_encoder needs sequence data with a character column")
            self.chars = CharEncoder(
                layout.chars.vocab_size,
                config.char_dims,
                config.char_filters,
                config.char_kernel,
                config.embedding_dropout,
            )
        self.shape: WordShape | None = None
        if use_shape:
            if layout.chars is None or not layout.is_sequence:
                raise OptionError("word-shape flags need sequence data with a character column")
            self.shape = WordShape(layout.chars.alphabet, layout.chars.vocab_size)
        self.affixes: AffixEmbeddings | None = None
        if affix_dims:
            if layout.chars is None or not layout.is_sequence:
                raise OptionError("affix embeddings need sequence data with a character column")
            self.affixes = AffixEmbeddings(affix_dims)
        if layout.kinds:  # registered column kinds (data/kinds.py), after the built-in parts
            self.kinds = nn.ModuleDict(
                {name: kind_named(name).module(settings, config) for name, settings in layout.kinds}
            )
        self.output_size = (
            feature_width(layout, config)
            + (self.chars.output_size if self.chars is not None else 0)
            + (self.shape.output_size if self.shape is not None else 0)
            + (self.affixes.output_size if self.affixes is not None else 0)
        )
        if self.output_size == 0:
            raise OptionError("the data have no input features: nothing for a network to learn from")

    def describe_labels(self) -> dict[str, str]:
        """Child path -> label for describe: list encoders by their column."""
        return {f"lists.{i}": f"list {column!r}" for i, (column, _) in enumerate(self.list_columns)}

    def forward(self, batch: Batch) -> torch.Tensor:
        """(B, D) for classification/regression, (B, T, D) for sequences."""
        if len(batch.lists) != len(self.lists) or len(batch.list_lengths) != len(self.lists):
            raise ModelError(
                f"batch has {len(batch.lists)} list columns, the model expects {len(self.lists)}"
            )
        mask = batch.mask if self.is_sequence else None
        parts = [self.nominal(batch.nominal, self.embeddings), self.numeric(batch.numeric)]
        for (_, emb_id), encoder, ids, lengths in zip(
            self.list_columns, self.lists, batch.lists, batch.list_lengths, strict=True
        ):
            vectors = self.embeddings.lookup(emb_id, ids)
            if mask is None:
                parts.append(encoder(vectors, lengths))
            else:
                parts.append(encode_positions(encoder, vectors, lengths, mask))
        if self.chars is not None:
            if batch.chars is None:
                raise ModelError("the model uses characters but the batch has none")
            parts.append(self.chars(batch.chars, mask))
        if self.shape is not None:
            if batch.chars is None:
                raise ModelError("the model uses word shapes but the batch has no characters")
            parts.append(self.shape(batch.chars))
        if self.affixes is not None:
            if batch.chars is None:
                raise ModelError("the model uses affixes but the batch has no characters")
            parts.append(self.affixes(batch.chars))
        for name, module in self.kinds.items() if "kinds" in self._modules else ():
            if name not in batch.kinds:
                raise ModelError(f"the model uses column kind {name!r} but the batch has none")
            parts.append(module(batch.kinds[name], batch.kind_lengths.get(name), mask))
        return torch.cat(parts, dim=-1)
