"""The ``Features`` class of an ejected network (``lfengine eject``): every input column to one
vector, written out with its sizes resolved, mirroring ``builder.features.InputFeatures``
module by module so that stored weights load into it. eject_source.py writes the rest.

Every name, label and path comes from a meta file or a model directory (data a stranger may
have written), so each reaches the source as a literal written by ``py`` (in code, comments and
the docstring alike), and every number as a checked int; eject_source.checked_source parses
the result before it is written.
"""

from __future__ import annotations

import json
import textwrap

from lfengine.builder.affixes import AFFIX_BUCKETS, AFFIX_LENGTHS
from lfengine.builder.config import ModelConfig
from lfengine.builder.encoders import SHAPE_FLAGS, list_encoder_size
from lfengine.data.batch import EmbeddingInfo, InputLayout
from lfengine.errors import ModelError

WIDTH = 88  # ruff's default line length: the file passes `ruff check` with default settings


def comment(text: str, indent: int) -> list[str]:
    pad = " " * indent
    return wrap(text, WIDTH, initial_indent=pad + "# ", subsequent_indent=pad + "# ")


def wrap(text: str, width: int, **kwargs: str) -> list[str]:
    """Wrap at spaces only (file names and column names stay whole)."""
    return textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False, **kwargs)


def py(value: object) -> str:
    """A Python literal in the style ruff format writes (double quotes, lists for tuples).

    Strings are double-quoted with every quote, backslash and unprintable character escaped, so
    that one is a single literal wherever it lands (code, a comment, the docstring). A value of
    any other type than these is refused: it can only come from a garbled model.json."""
    if isinstance(value, str):
        return "".join(_escape(c) for c in json.dumps(value, ensure_ascii=False))
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(py(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, EmbeddingInfo):
        return (
            f"EmbeddingInfo(\n        {py(value.emb_id)},\n        vocab_size={whole(value.vocab_size)},\n"
            f"        dims={whole(value.dims)},\n        mode={py(value.mode)},\n"
            f"        pretrained={py(bool(value.pretrained))},\n    )"
        )
    raise ModelError(f"eject cannot write a {type(value).__name__} value ({value!r:.60}) into Python source")


def _escape(char: str) -> str:
    """json.dumps escapes quotes, backslashes and C0 controls; the rest of the unprintable
    characters (DEL, C1 controls, line and paragraph separators, bidi overrides) too."""
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def whole(value: object) -> int:
    """A size (vocabulary, dims, characters) read from the data: a non-negative int, else refused."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ModelError(f"eject needs a whole number for a size, got {type(value).__name__} {value!r:.60}")
    return value


def _nominal_runs(layout: InputLayout) -> list[tuple[int, int, str]]:
    """Adjacent columns with the same emb_id, as NominalInput looks them up (one call per run)."""
    runs: list[tuple[int, int, str]] = []
    for i, (_, emb_id) in enumerate(layout.nominal):
        if runs and runs[-1][2] == emb_id and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1, emb_id)
        else:
            runs.append((i, i + 1, emb_id))
    return runs


def _encoder_call(config: ModelConfig, dims: int) -> tuple[str, str]:
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


class FeaturesWriter:
    """Writes the Features class; keeps the diagram lines and the feature size for the network."""

    def __init__(self, layout: InputLayout, config: ModelConfig) -> None:
        self.layout = layout
        self.config = config
        self.used_ids = list(dict.fromkeys([e for _, e in layout.nominal] + [e for _, e in layout.lists]))
        self.chars = layout.is_sequence and config.char_encoder and layout.chars is not None
        self.shape = layout.is_sequence and config.word_shape and layout.chars is not None
        self.affixes = config.affix_dims if layout.is_sequence and layout.chars is not None else 0
        self.encoders = {_encoder_call(config, 1)[0].split("(")[0]} if layout.lists else set()
        self.diagram: list[str] = []
        self.size = 0

    # --- the Features module ---------------------------------------------------------------
    def features_init(self) -> list[str]:
        c, lines = self.config, []
        if self.used_ids:
            lines += comment("One table per emb_id, shared by every column that names it.", 8)
            lines += [
                "        self.embeddings = FeatureEmbeddings(",
                f"            EMBEDDINGS, {py(tuple(self.used_ids))}, init, dropout={c.embedding_dropout!r}",
                "        )",
            ]
        if self.layout.lists:
            lines.append("        self.lists = nn.ModuleList(")
            lines.append("            [")
            for i, (column, emb_id) in enumerate(self.layout.lists):
                dims = whole(self.layout.embeddings[emb_id].dims)
                call, what = _encoder_call(c, dims)
                size = list_encoder_size(
                    c.list_encoder, dims, c.cnn_kernels, c.cnn_channels, c.list_lstm_hidden
                )
                lines += comment(f"list column {i} {py(column)}: {what} -> {size}", 16)
                lines.append(f"                {call},")
            lines.append("            ]")
            lines.append("        )")
        if self.chars:
            info = self.layout.chars
            lines += comment(
                f"characters of {py(info.column)} (up to {whole(info.max_chars)} per token): "
                f"{c.char_dims}-dim embeddings -> CNN width {c.char_kernel} x {c.char_filters} filters",
                8,
            )
            lines.append(
                f"        self.chars = CharEncoder({whole(info.vocab_size)}, dims={c.char_dims}, "
                f"filters={c.char_filters}, kernel={c.char_kernel}, dropout={c.embedding_dropout!r})"
            )
        if self.shape:
            lines += comment(
                f"{len(SHAPE_FLAGS)} casing/shape flags per token ({', '.join(SHAPE_FLAGS)}), from "
                "the character classes of the alphabet (no weights)",
                8,
            )
            lines.append("        self.shape = WordShape(alphabet)")
        if self.affixes:
            lines += comment(
                f"1-{max(AFFIX_LENGTHS)} character prefixes and suffixes, hashed into "
                f"{AFFIX_BUCKETS} rows of {self.affixes}",
                8,
            )
            lines.append(f"        self.affixes = AffixEmbeddings({self.affixes})")
        return lines

    def features_forward(self) -> list[str]:
        layout, c = self.layout, self.config
        lines = ["        parts = ["]
        for start, end, emb_id in _nominal_runs(layout):
            dims = whole(layout.embeddings[emb_id].dims)
            columns = [py(name) for name, _ in layout.nominal[start:end]]
            span = f"column {start}" if end - start == 1 else f"columns {start}-{end - 1}"
            width = (end - start) * dims
            lines += comment(
                f"nominal {span}: {', '.join(columns)} -> table {py(emb_id)}, "
                f"{end - start} x {dims} = {width}",
                12,
            )
            lookup = f"self.embeddings.lookup({py(emb_id)}, batch.nominal[..., {start}:{end}])"
            lines.append(f"            {lookup}.flatten(-2),")
            self.diagram.append(f"{span} ({columns[0]}{' ...' if end - start > 1 else ''}) -> {width}")
            self.size += width
        if layout.numeric:
            shown = ", ".join(map(py, layout.numeric[:6])) + (" ..." if len(layout.numeric) > 6 else "")
            lines += comment(
                f"{len(layout.numeric)} numeric/boolean columns (z-scored by the data layer): {shown}", 12
            )
            lines.append("            batch.numeric.float(),")
            self.diagram.append(f"{len(layout.numeric)} numeric columns -> {len(layout.numeric)}")
            self.size += len(layout.numeric)
        for i, (column, emb_id) in enumerate(layout.lists):
            dims = whole(layout.embeddings[emb_id].dims)
            size = list_encoder_size(c.list_encoder, dims, c.cnn_kernels, c.cnn_channels, c.list_lstm_hidden)
            lines += comment(f"list column {i}: {py(column)} -> table {py(emb_id)} -> encoder -> {size}", 12)
            vectors = f"self.embeddings.lookup({py(emb_id)}, batch.lists[{i}])"
            if layout.is_sequence:
                lines += [
                    "            encode_positions(",
                    f"                self.lists[{i}], {vectors}, batch.list_lengths[{i}], mask",
                    "            ),",
                ]
            else:
                lines += [
                    f"            self.lists[{i}](",
                    f"                {vectors}, batch.list_lengths[{i}]",
                    "            ),",
                ]
            self.diagram.append(f"list {py(column)} -> {c.list_encoder} -> {size}")
            self.size += size
        if self.chars:
            lines += comment(f"characters of {py(layout.chars.column)} -> {c.char_filters}", 12)
            lines.append("            self.chars(batch.chars, mask),")
            self.diagram.append(f"characters of {py(layout.chars.column)} -> char CNN -> {c.char_filters}")
            self.size += c.char_filters
        if self.shape:
            part = f"characters of {py(layout.chars.column)} -> casing/shape flags -> {len(SHAPE_FLAGS)}"
            lines += comment(part, 12)
            lines.append("            self.shape(batch.chars),")
            self.diagram.append(part)
            self.size += len(SHAPE_FLAGS)
        if self.affixes:
            part = f"characters of {py(layout.chars.column)} -> prefix, suffix sums -> {2 * self.affixes}"
            lines += comment(part, 12)
            lines.append("            self.affixes(batch.chars),")
            self.diagram.append(part)
            self.size += 2 * self.affixes
        lines.append("        ]")
        return lines

    def features_class(self) -> list[str]:
        shape = "(B, T, {})" if self.layout.is_sequence else "(B, {})"
        init = self.features_init()
        forward = self.features_forward()
        lines = [
            "class Features(nn.Module):",
            f'    """The LF columns -> one vector of {self.size} values per '
            f'{"token" if self.layout.is_sequence else "instance"}."""',
            "",
            *(
                [
                    "    def __init__(",
                    "        self, init: dict[str, np.ndarray] | None, alphabet: tuple[str, ...]",
                    "    ) -> None:",
                ]
                if self.shape
                else ["    def __init__(self, init: dict[str, np.ndarray] | None) -> None:"]
            ),
            "        super().__init__()",
            *init,
            "        self.output_size = " + str(self.size),
            "",
            "    def forward(self, batch: Batch) -> torch.Tensor:",
            f'        """{shape.format(self.size)}."""',
        ]
        if self.layout.is_sequence and (self.layout.lists or self.chars):
            lines.append("        mask = batch.mask  # (B, T): True at real tokens")
        lines += forward
        lines.append("        return torch.cat(parts, dim=-1)")
        return lines

    # --- the network ----------------------------------------------------------------------------
