"""InputFeatures: every column of the layout -> one vector per instance or per sequence element.

A loop over the parts of ``feature_parts`` (parts.py, char_parts.py, kind_parts.py): nominal
columns looked up in their shared tables, numeric columns, an encoder per list column, for
sequences the character CNN, word-shape flags and affix embeddings, then the registered column
kinds. The shared embedding tables are built first (one per emb_id any part looks up), then each
part's module in that order, and the parts' vectors are concatenated in the same order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from lfengine.builder.char_parts import AffixPart, CharsPart, ShapePart
from lfengine.builder.config import ModelConfig
from lfengine.builder.embeddings import FeatureEmbeddings
from lfengine.builder.kind_parts import KindsPart
from lfengine.builder.parts import FeaturePart, ListsPart, NominalPart, NumericPart
from lfengine.data.batch import Batch, InputLayout
from lfengine.errors import OptionError


def column_parts(layout: InputLayout, settings: Any) -> list[FeaturePart]:
    """The parts over the LF columns themselves (no characters), in feature-vector order."""
    parts = [NominalPart(layout), NumericPart(layout), ListsPart(layout, settings)]
    return parts + ([KindsPart(layout, settings)] if layout.kinds else [])


def feature_parts(
    layout: InputLayout, config: Any, *, use_chars: bool = False, use_shape: bool = False, affix_dims: int = 0
) -> list[FeaturePart]:
    """Every part of the feature vector, in order: the column parts, the character parts where
    asked for, the registered column kinds last."""
    parts: list[FeaturePart] = [NominalPart(layout), NumericPart(layout), ListsPart(layout, config)]
    if use_chars:
        parts.append(CharsPart(layout, config))
    if use_shape:
        parts.append(ShapePart(layout, config))
    if affix_dims:
        parts.append(AffixPart(layout, config))
    return parts + ([KindsPart(layout, config)] if layout.kinds else [])


def feature_width(layout: InputLayout, settings: Any) -> int:
    """Width of the nominal, numeric, list-column and column-kind features concatenated
    (characters and word shape aside): the one rule both ``InputFeatures`` and the size heuristics use.

    ``settings``: a ModelConfig, or any object with its list-encoder attributes (the heuristics
    pass the values chosen so far); they are read only when the layout has list columns.
    """
    return sum(part.width for part in column_parts(layout, settings))


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
        parts = feature_parts(layout, config, use_chars=use_chars, use_shape=use_shape, affix_dims=affix_dims)
        self.parts = parts
        used_ids = [emb_id for part in parts for emb_id in part.tables()]
        self.embeddings = FeatureEmbeddings(layout.embeddings, used_ids, init, config.embedding_dropout)
        self.chars = self.shape = self.affixes = None  # a part's module, where the part is used
        for part in parts:
            setattr(self, part.attr, part.build(self.embeddings))
        self.output_size = sum(part.width for part in parts)
        if self.output_size == 0:
            raise OptionError("the data have no input features: nothing for a network to learn from")

    def describe_labels(self) -> dict[str, str]:
        """Child path -> label for describe: list encoders by their column."""
        return {path: label for part in self.parts for path, label in part.describe_labels().items()}

    def forward(self, batch: Batch) -> torch.Tensor:
        """(B, D) for classification/regression, (B, T, D) for sequences."""
        mask = batch.mask if self.is_sequence else None
        vectors = []
        for part in self.parts:
            vectors += part.forward(getattr(self, part.attr), batch, mask, self.embeddings)
        return torch.cat(vectors, dim=-1)
