"""The parts of ``InputFeatures``: one class per input feature kind, the one definition of it.

A part says which shared embedding tables it looks up, builds its torch module (held by
InputFeatures under ``attr``, so the state-dict names are the part's), says how wide its vector
is, reads its field of the batch in ``forward``, and writes its share of an ejected network
(``source``: the same module construction and the same reading of the batch, as Python). Both
``InputFeatures`` and eject's ``FeaturesWriter`` are loops over ``feature_parts``, so a part is
built, sized and ejected by the same class. The column parts (nominal, numeric, token lists)
live here; the parts over characters in char_parts.py, the registered column kinds in
kind_parts.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lfengine.builder.embeddings import FeatureEmbeddings, NominalInput, NumericInput
from lfengine.builder.encoders import encode_positions, list_encoder_size, make_list_encoder
from lfengine.builder.literals import comment, py, whole
from lfengine.data.batch import Batch, InputLayout
from lfengine.errors import ModelError


@dataclass
class PartSource:
    """A part's share of the ejected ``Features`` class (every string from data via ``py``)."""

    init: list[str] = field(default_factory=list)  # lines of Features.__init__
    forward: list[str] = field(default_factory=list)  # items of the ``parts`` list in forward
    diagram: list[str] = field(default_factory=list)  # lines of the docstring's network diagram
    width: int = 0
    #: lfengine names the lines use, per module (``{"lfengine.builder.encoders": {"CharEncoder"}}``)
    imports: dict[str, set[str]] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)  # class sources written before Features
    uses_mask: bool = False  # forward reads ``mask`` (B, T) for sequences
    uses_alphabet: bool = False  # __init__ reads the character alphabet


class FeaturePart:
    """Base of a part; subclasses set ``attr`` and implement the methods."""

    attr: str = ""

    def tables(self) -> tuple[str, ...]:
        """The emb_ids of the shared tables this part looks up (InputFeatures builds each once)."""
        return ()

    @property
    def width(self) -> int:
        raise NotImplementedError

    def build(self, embeddings: FeatureEmbeddings) -> nn.Module | None:
        """The module InputFeatures holds as ``attr`` (built in part order: seeded init stays)."""
        raise NotImplementedError

    def forward(
        self, module: Any, batch: Batch, mask: torch.Tensor | None, embeddings: FeatureEmbeddings
    ) -> list[torch.Tensor]:
        """The part's vectors, (..., width) in all, from its field of ``batch``."""
        raise NotImplementedError

    def describe_labels(self) -> dict[str, str]:
        return {}

    def source(self) -> PartSource:
        raise NotImplementedError


class NominalPart(FeaturePart):
    """Scalar nominal columns, each looked up in the table of its emb_id (shared by name)."""

    attr = "nominal"

    def __init__(self, layout: InputLayout) -> None:
        self.layout = layout

    def tables(self) -> tuple[str, ...]:
        return tuple(emb_id for _, emb_id in self.layout.nominal)

    @property
    def width(self) -> int:
        dims = self.layout.embeddings
        return sum(dims[emb_id].dims for _, emb_id in self.layout.nominal if emb_id in dims)

    def build(self, embeddings: FeatureEmbeddings) -> nn.Module:
        return NominalInput(self.layout.nominal, embeddings)

    def forward(self, module: Any, batch: Batch, mask: Any, embeddings: FeatureEmbeddings) -> list:
        return [module(batch.nominal, embeddings)]

    def runs(self) -> list[tuple[int, int, str]]:
        """Adjacent columns with the same emb_id, as NominalInput looks them up (one call per run)."""
        runs: list[tuple[int, int, str]] = []
        for i, (_, emb_id) in enumerate(self.layout.nominal):
            if runs and runs[-1][2] == emb_id and runs[-1][1] == i:
                runs[-1] = (runs[-1][0], i + 1, emb_id)
            else:
                runs.append((i, i + 1, emb_id))
        return runs

    def source(self) -> PartSource:
        layout, out = self.layout, PartSource()
        for start, end, emb_id in self.runs():
            dims = whole(layout.embeddings[emb_id].dims)
            columns = [py(name) for name, _ in layout.nominal[start:end]]
            span = f"column {start}" if end - start == 1 else f"columns {start}-{end - 1}"
            width = (end - start) * dims
            out.forward += comment(
                f"nominal {span}: {', '.join(columns)} -> table {py(emb_id)}, "
                f"{end - start} x {dims} = {width}",
                12,
            )
            lookup = f"self.embeddings.lookup({py(emb_id)}, batch.nominal[..., {start}:{end}])"
            out.forward.append(f"            {lookup}.flatten(-2),")
            out.diagram.append(f"{span} ({columns[0]}{' ...' if end - start > 1 else ''}) -> {width}")
            out.width += width
        return out


class NumericPart(FeaturePart):
    """Numeric and boolean columns, as the data layer z-scored them."""

    attr = "numeric"

    def __init__(self, layout: InputLayout) -> None:
        self.columns = layout.numeric

    @property
    def width(self) -> int:
        return len(self.columns)

    def build(self, embeddings: FeatureEmbeddings) -> nn.Module:
        return NumericInput(self.columns)

    def forward(self, module: Any, batch: Batch, mask: Any, embeddings: FeatureEmbeddings) -> list:
        return [module(batch.numeric)]

    def source(self) -> PartSource:
        out, n = PartSource(), len(self.columns)
        if n:
            shown = ", ".join(map(py, self.columns[:6])) + (" ..." if n > 6 else "")
            out.forward += comment(f"{n} numeric/boolean columns (z-scored by the data layer): {shown}", 12)
            out.forward.append("            batch.numeric.float(),")
            out.diagram.append(f"{n} numeric columns -> {n}")
            out.width = n
        return out


def _encoder_call(config: Any, dims: int) -> tuple[str, str]:
    """The constructor ``make_list_encoder`` calls for these settings, as source, and its summary."""
    kind = config.list_encoder
    if kind == "cnn":
        kernels = ", ".join(str(k) for k in config.cnn_kernels)
        kernels += "," if len(config.cnn_kernels) == 1 else ""
        return (
            f"MaskedCnnEncoder({dims}, kernels=({kernels}), channels={config.cnn_channels})",
            f"CNN, widths {', '.join(map(str, config.cnn_kernels))} x {config.cnn_channels} filters, "
            "max over the real tokens",
        )
    if kind == "attention":
        return (
            f"MaskedAttentionEncoder({dims}, hidden_size={config.list_lstm_hidden})",
            f"BiLSTM {config.list_lstm_hidden} per direction, attention pooling",
        )
    if kind == "lstm":
        return (
            f"MaskedLstmEncoder({dims}, hidden_size={config.list_lstm_hidden})",
            f"BiLSTM {config.list_lstm_hidden} per direction, final states",
        )
    return f"MaskedMeanEncoder({dims})", "mean of the token vectors"


class ListsPart(FeaturePart):
    """Token-list columns (N, LISTSEP): each its own encoder over the table of its emb_id.

    ``settings``: a ModelConfig, or any object with its list-encoder attributes (the size
    heuristics pass the values chosen so far); read only when the layout has list columns."""

    attr = "lists"

    def __init__(self, layout: InputLayout, settings: Any) -> None:
        self.layout, self.settings = layout, settings

    def tables(self) -> tuple[str, ...]:
        return tuple(emb_id for _, emb_id in self.layout.lists)

    def _dims(self, emb_id: str) -> int:
        info = self.layout.embeddings.get(emb_id)
        return info.dims if info is not None else 0

    def _size(self, dims: int) -> int:
        s = self.settings
        return list_encoder_size(s.list_encoder, dims, s.cnn_kernels, s.cnn_channels, s.list_lstm_hidden)

    @property
    def width(self) -> int:
        return sum(self._size(self._dims(emb_id)) for _, emb_id in self.layout.lists)

    def build(self, embeddings: FeatureEmbeddings) -> nn.Module:
        s = self.settings
        return nn.ModuleList(
            make_list_encoder(
                s.list_encoder, embeddings.dims(emb_id), s.cnn_kernels, s.cnn_channels, s.list_lstm_hidden
            )
            for _, emb_id in self.layout.lists
        )

    def forward(self, module: Any, batch: Batch, mask: Any, embeddings: FeatureEmbeddings) -> list:
        if len(batch.lists) != len(module) or len(batch.list_lengths) != len(module):
            raise ModelError(f"batch has {len(batch.lists)} list columns, the model expects {len(module)}")
        vectors = []
        for (_, emb_id), encoder, ids, lengths in zip(
            self.layout.lists, module, batch.lists, batch.list_lengths, strict=True
        ):
            embedded = embeddings.lookup(emb_id, ids)
            if mask is None:
                vectors.append(encoder(embedded, lengths))
            else:
                vectors.append(encode_positions(encoder, embedded, lengths, mask))
        return vectors

    def describe_labels(self) -> dict[str, str]:
        return {f"lists.{i}": f"list {column!r}" for i, (column, _) in enumerate(self.layout.lists)}

    def source(self) -> PartSource:
        layout, c, out = self.layout, self.settings, PartSource()
        if not layout.lists:
            return out
        out.uses_mask = layout.is_sequence
        out.init += ["        self.lists = nn.ModuleList(", "            ["]
        for i, (column, emb_id) in enumerate(layout.lists):
            dims = whole(layout.embeddings[emb_id].dims)
            call, what = _encoder_call(c, dims)
            size = self._size(dims)
            out.init += comment(f"list column {i} {py(column)}: {what} -> {size}", 16)
            out.init.append(f"                {call},")
            out.imports.setdefault("lfengine.builder.encoders", set()).add(call.split("(")[0])
            reads = f"list column {i}: {py(column)} -> table {py(emb_id)} -> encoder -> {size}"
            out.forward += comment(reads, 12)
            vectors = f"self.embeddings.lookup({py(emb_id)}, batch.lists[{i}])"
            if layout.is_sequence:
                out.forward += [
                    "            encode_positions(",
                    f"                self.lists[{i}], {vectors}, batch.list_lengths[{i}], mask",
                    "            ),",
                ]
            else:
                out.forward += [
                    f"            self.lists[{i}](",
                    f"                {vectors}, batch.list_lengths[{i}]",
                    "            ),",
                ]
            out.diagram.append(f"list {py(column)} -> {c.list_encoder} -> {size}")
            out.width += size
        out.init += ["            ]", "        )"]
        if layout.is_sequence:
            out.imports["lfengine.builder.encoders"].add("encode_positions")
        return out
