"""The Python source that ``lfengine eject`` writes for an auto-built network.

The generated class mirrors ``networks.Classifier`` / ``Regressor`` / ``SequenceTagger`` module by
module (same attribute names, same construction order), with every size resolved to a number,
so that stored weights load into it and seeded training initialises it identically. Only the
layers are reused from lfengine (embedding tables with their train modes, list and character
encoders, the CRF); the wiring between them is written out for the user to edit.
"""

from __future__ import annotations

import json
import textwrap

from lfengine.builder.config import ModelConfig
from lfengine.builder.encoders import SHAPE_FLAGS, list_encoder_size
from lfengine.data.batch import EmbeddingInfo, InputLayout

WIDTH = 88  # ruff's default line length: the file passes `ruff check` with default settings

#: Settings that define the architecture: written into ``config_defaults`` so that ``describe``
#: and model.json report the sizes the code uses.
ARCHITECTURE = (
    "hidden_size",
    "hidden_layers",
    "dropout",
    "embedding_dropout",
    "list_encoder",
    "cnn_kernels",
    "cnn_channels",
    "list_lstm_hidden",
    "char_encoder",
    "char_dims",
    "char_filters",
    "char_kernel",
    "word_shape",
    "crf",
    "lstm_hidden",
    "lstm_layers",
)
TRAINING = ("learning_rate", "batch_size", "max_epochs", "es_patience", "weight_decay", "grad_clip")


def _comment(text: str, indent: int) -> list[str]:
    pad = " " * indent
    return _wrap(text, WIDTH, initial_indent=pad + "# ", subsequent_indent=pad + "# ")


def _wrap(text: str, width: int, **kwargs: str) -> list[str]:
    """Wrap at spaces only (file names and column names stay whole)."""
    return textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False, **kwargs)


def _py(value: object) -> str:
    """A Python literal in the style ruff format writes (double quotes, lists for tuples)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple):
        return "(" + ", ".join(_py(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, EmbeddingInfo):
        return (
            f"EmbeddingInfo(\n        {_py(value.emb_id)},\n        vocab_size={value.vocab_size},\n"
            f"        dims={value.dims},\n        mode={_py(value.mode)},\n"
            f"        pretrained={value.pretrained},\n    )"
        )
    return repr(value)


def _tuple_lines(name: str, items: list[str]) -> list[str]:
    if not items:
        return [f"{name} = ()"]
    return [f"{name} = ("] + [f"    {item}," for item in items] + [")"]


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


class _Writer:
    def __init__(self, layout: InputLayout, config: ModelConfig) -> None:
        self.layout = layout
        self.config = config
        self.used_ids = list(dict.fromkeys([e for _, e in layout.nominal] + [e for _, e in layout.lists]))
        self.chars = layout.is_sequence and config.char_encoder and layout.chars is not None
        self.shape = layout.is_sequence and config.word_shape and layout.chars is not None
        self.encoders = {_encoder_call(config, 1)[0].split("(")[0]} if layout.lists else set()
        self.diagram: list[str] = []
        self.size = 0

    # --- the Features module ---------------------------------------------------------------
    def features_init(self) -> list[str]:
        c, lines = self.config, []
        if self.used_ids:
            lines += _comment("One table per emb_id, shared by every column that names it.", 8)
            lines += [
                "        self.embeddings = FeatureEmbeddings(",
                f"            EMBEDDINGS, {_py(tuple(self.used_ids))}, init, dropout={c.embedding_dropout!r}",
                "        )",
            ]
        if self.layout.lists:
            lines.append("        self.lists = nn.ModuleList(")
            lines.append("            [")
            for i, (column, emb_id) in enumerate(self.layout.lists):
                dims = self.layout.embeddings[emb_id].dims
                call, what = _encoder_call(c, dims)
                size = list_encoder_size(
                    c.list_encoder, dims, c.cnn_kernels, c.cnn_channels, c.list_lstm_hidden
                )
                lines += _comment(f"list column {i} {column!r}: {what} -> {size}", 16)
                lines.append(f"                {call},")
            lines.append("            ]")
            lines.append("        )")
        if self.chars:
            info = self.layout.chars
            lines += _comment(
                f"characters of {info.column!r} (up to {info.max_chars} per token): "
                f"{c.char_dims}-dim embeddings -> CNN width {c.char_kernel} x {c.char_filters} filters",
                8,
            )
            lines.append(
                f"        self.chars = CharEncoder({info.vocab_size}, dims={c.char_dims}, "
                f"filters={c.char_filters}, kernel={c.char_kernel}, dropout={c.embedding_dropout!r})"
            )
        if self.shape:
            lines += _comment(
                f"{len(SHAPE_FLAGS)} casing/shape flags per token ({', '.join(SHAPE_FLAGS)}), from "
                "the character classes of the alphabet (no weights)",
                8,
            )
            lines.append("        self.shape = WordShape(alphabet)")
        return lines

    def features_forward(self) -> list[str]:
        layout, c = self.layout, self.config
        lines = ["        parts = ["]
        for start, end, emb_id in _nominal_runs(layout):
            dims = layout.embeddings[emb_id].dims
            columns = [name for name, _ in layout.nominal[start:end]]
            span = f"column {start}" if end - start == 1 else f"columns {start}-{end - 1}"
            width = (end - start) * dims
            lines += _comment(
                f"nominal {span}: {', '.join(columns)} -> table {emb_id!r}, {end - start} x {dims} = {width}",
                12,
            )
            lookup = f"self.embeddings.lookup({_py(emb_id)}, batch.nominal[..., {start}:{end}])"
            lines.append(f"            {lookup}.flatten(-2),")
            self.diagram.append(f"{span} ({columns[0]}{' ...' if end - start > 1 else ''}) -> {width}")
            self.size += width
        if layout.numeric:
            shown = ", ".join(layout.numeric[:6]) + (" ..." if len(layout.numeric) > 6 else "")
            lines += _comment(
                f"{len(layout.numeric)} numeric/boolean columns (z-scored by the data layer): {shown}", 12
            )
            lines.append("            batch.numeric.float(),")
            self.diagram.append(f"{len(layout.numeric)} numeric columns -> {len(layout.numeric)}")
            self.size += len(layout.numeric)
        for i, (column, emb_id) in enumerate(layout.lists):
            dims = layout.embeddings[emb_id].dims
            size = list_encoder_size(c.list_encoder, dims, c.cnn_kernels, c.cnn_channels, c.list_lstm_hidden)
            lines += _comment(f"list column {i}: {column} -> table {emb_id!r} -> encoder -> {size}", 12)
            vectors = f"self.embeddings.lookup({_py(emb_id)}, batch.lists[{i}])"
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
            self.diagram.append(f"list {column} -> {c.list_encoder} -> {size}")
            self.size += size
        if self.chars:
            lines += _comment(f"characters of {layout.chars.column} -> {c.char_filters}", 12)
            lines.append("            self.chars(batch.chars, mask),")
            self.diagram.append(f"characters of {layout.chars.column} -> char CNN -> {c.char_filters}")
            self.size += c.char_filters
        if self.shape:
            lines += _comment(f"characters of {layout.chars.column} -> casing/shape flags -> 9", 12)
            lines.append("            self.shape(batch.chars),")
            self.diagram.append(f"characters of {layout.chars.column} -> casing/shape flags -> 9")
            self.size += len(SHAPE_FLAGS)
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
    def classifier_lines(self, name: str) -> list[str]:
        c, layout = self.config, self.layout
        regression = layout.task == "regression"
        outputs = 1 if regression else layout.num_labels
        hidden = []
        size = self.size
        for _ in range(c.hidden_layers):
            hidden += [f"nn.Linear({size}, {c.hidden_size}),", "nn.ReLU(),", f"nn.Dropout({c.dropout!r}),"]
            self.diagram.append(f"Linear {size} -> {c.hidden_size}, ReLU, Dropout {c.dropout}")
            size = c.hidden_size
        what = "one standardised value" if regression else f"{outputs} label scores"
        self.diagram.append(f"Linear {size} -> {outputs} ({what})")
        lines = [
            f"class {name}(TaskModel):",
            f'    """{"Regressor" if regression else "Classifier"}: features -> hidden layer(s) -> '
            f'{what}."""',
            "",
            "    config_defaults: ClassVar[dict[str, Any]] = CONFIG_DEFAULTS",
            "",
            *_INIT_SIGNATURE,
            "        self.features = Features(init)",
            "        self.hidden = Hidden(",
            *[f"            {line}" for line in hidden],
            "        )",
            f"        self.output = nn.Linear({size}, {outputs})",
            *_CHECK_LAYOUT,
            "    def forward(self, batch: Batch) -> torch.Tensor:",
            f'        """{"(B,) standardised values" if regression else f"(B, {outputs}) logits"}."""',
            "        scores = self.output(self.hidden(self.features(batch)))",
            "        return scores.squeeze(-1)" if regression else "        return scores",
        ]
        return lines

    def tagger_lines(self, name: str) -> list[str]:
        c, layout = self.config, self.layout
        n = layout.num_labels
        between = f", dropout={c.dropout!r}" if c.lstm_layers > 1 else ""
        self.diagram += [
            f"Dropout {c.dropout}",
            f"BiLSTM {self.size} -> {c.lstm_hidden} per direction x {c.lstm_layers} layer(s) "
            "(packed: padding never matters)",
            f"Dropout {c.dropout}, Linear {2 * c.lstm_hidden} -> {n} label scores per token",
        ]
        if c.crf:
            self.diagram.append(f"CRF over the {n} labels (Viterbi path, marginals as confidences)")
        lines = [
            f"class {name}(TaskModel):",
            '    """Sequence tagger: per-token features -> BiLSTM -> label scores per token'
            + (' -> CRF."""' if c.crf else '."""'),
            "",
            "    config_defaults: ClassVar[dict[str, Any]] = CONFIG_DEFAULTS",
            "",
            *_INIT_SIGNATURE,
            "        self.features = Features(init, layout.chars.alphabet)"
            if self.shape
            else "        self.features = Features(init)",
            f"        self.input_dropout = nn.Dropout({c.dropout!r})",
            "        self.lstm = nn.LSTM(",
            f"            {self.size}, {c.lstm_hidden}, num_layers={c.lstm_layers}, batch_first=True, "
            f"bidirectional=True{between}",
            "        )",
            f"        self.output_dropout = nn.Dropout({c.dropout!r})",
            f"        self.output = nn.Linear({2 * c.lstm_hidden}, {n})",
        ]
        if c.crf:
            lines.append(f"        self.crf = Crf({n})")
        lines += [
            *_CHECK_LAYOUT,
            "    def forward(self, batch: Batch) -> torch.Tensor:",
            f'        """(B, T, {n}) label scores per token."""',
            "        features = self.features(batch)",
            "        size, steps = features.shape[:2]",
            "        if size == 0 or steps == 0:",
            f"            return features.new_zeros((size, steps, {n}))",
            "        features = self.input_dropout(features)",
            "        lengths = batch.lengths.cpu()",
            "        if bool((lengths == steps).all()):",
            "            encoded, _ = self.lstm(features)",
            "        else:",
            "            # Packed: padding never changes a result (empty sequences run as 1).",
            "            packed = pack_padded_sequence(",
            "                features, lengths.clamp(min=1), batch_first=True, enforce_sorted=False",
            "            )",
            "            encoded, _ = self.lstm(packed)",
            "            encoded, _ = pad_packed_sequence(encoded, batch_first=True, total_length=steps)",
            "        return self.output(self.output_dropout(encoded))",
        ]
        if c.crf:
            lines += [
                "",
                "    def loss(self, batch: Batch) -> torch.Tensor:",
                '        """CRF negative log-likelihood, averaged over the non-empty sequences."""',
                "        nll = self.crf.neg_log_likelihood(self(batch), batch.targets, batch.mask)",
                "        return nll.sum() / max(int((batch.lengths > 0).sum()), 1)",
                "",
                "    def predict(self, batch: Batch) -> Prediction:",
                '        """Viterbi path; confidence = marginal probability of the chosen label."""',
                "        return self.crf.prediction(self(batch), batch.mask, batch.lengths)",
            ]
        return lines


_INIT_SIGNATURE = (
    "    def __init__(",
    "        self,",
    "        layout: InputLayout,",
    "        config: ModelConfig,",
    "        init: dict[str, np.ndarray] | None = None,",
    "    ) -> None:",
    "        super().__init__(layout, config, init)",
)

_CHECK_LAYOUT = (
    "",
    "    @classmethod",
    "    def check_layout(cls, layout: InputLayout) -> None:",
    "        check_same_data(layout)",
    "",
)

_HIDDEN = '''class Hidden(nn.Module):
    """Hidden layers, named ``layers`` inside as in the built network (weights load)."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)'''

_CHECK = '''def check_same_data(layout: InputLayout) -> None:
    """The sizes above are fixed: refuse data with other columns, vocabularies, labels."""
    checks = {{
        "nominal columns": (layout.nominal, NOMINAL_COLUMNS),
        "numeric columns": (layout.numeric, NUMERIC_COLUMNS),
        "list columns": (layout.lists, LIST_COLUMNS),
        "vocabularies": ({{e: layout.embeddings.get(e) for e in EMBEDDINGS}}, EMBEDDINGS),
        "characters": ({chars}, {char_size}),
        "labels": (layout.labels, LABELS),
    }}
    for name, (have, want) in checks.items():
        if have != want:
            raise OptionError(
                f"this network was written for other data ({{name}} differ); "
                "eject it again from the meta file or model you mean to use"
            )'''


def render_source(
    layout: InputLayout,
    config: ModelConfig,
    *,
    class_name: str,
    origin: str,
    meta_hint: str,
    file_name: str,
    version: str,
    first_party: bool = False,
) -> str:
    """The whole file for one layout and configuration."""
    writer = _Writer(layout, config)
    features = writer.features_class()
    is_tagger = layout.task == "sequence"
    network = writer.tagger_lines(class_name) if is_tagger else writer.classifier_lines(class_name)
    chars_expr = "layout.chars.vocab_size if layout.chars else None"
    char_size = layout.chars.vocab_size if writer.chars or writer.shape else None
    if char_size is None:
        chars_expr = "None"
    check = _CHECK.format(chars=chars_expr, char_size=char_size)

    labels = ", ".join(layout.labels[:8]) + (" ..." if len(layout.labels) > 8 else "")
    task_line = f"Task: {layout.task}"
    task_line += f", {layout.num_labels} labels ({labels})." if layout.labels else "."
    diagram = [f"    {line}" for line in writer.diagram]
    doc = [
        f'"""{class_name}: the network lfengine builds for these data, as editable PyTorch source.',
        "",
        *_wrap(
            f"Written by `lfengine eject` (lfengine {version}) from {origin}. {task_line} "
            "Every size is resolved for these data, so the columns, vocabularies and labels must "
            "stay the same (check_layout refuses other data). The attribute names are those of the "
            "built network: the weights of a model trained with the default network load into this "
            "class unchanged.",
            WIDTH,
        ),
        "",
        "Network (per " + ("token" if layout.is_sequence else "instance") + "):",
        *diagram,
        "",
        "Train it (the settings in CONFIG_DEFAULTS apply unless you override them):",
        "",
        f"    lfengine train META MODEL_DIR --module {file_name}:{class_name}",
        "",
        f"with META = {meta_hint}. Run it on a model trained with the default network:",
        "",
        "    from lfengine.eject import load_weights",
        f"    network, codec = load_weights({class_name}, 'MODEL_DIR')",
        '"""',
    ]
    imports = ["from __future__ import annotations", "", "from typing import Any, ClassVar", ""]
    imports += ["import numpy as np", "import torch"]
    from_torch = ["from torch import nn"]
    if is_tagger:
        from_torch.append("from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence")
    uses_crf = is_tagger and config.crf
    lf = [f"from lfengine.builder.base import {'Prediction, ' if uses_crf else ''}TaskModel"]
    lf.append("from lfengine.builder.config import ModelConfig")
    if uses_crf:
        lf.append("from lfengine.builder.crf import Crf")
    if writer.used_ids:
        lf.append("from lfengine.builder.embeddings import FeatureEmbeddings")
    encoder_names = set(writer.encoders)
    if writer.chars:
        encoder_names.add("CharEncoder")
    if writer.shape:
        encoder_names.add("WordShape")
    if layout.is_sequence and layout.lists:
        encoder_names.add("encode_positions")
    if encoder_names:  # isort order: classes (capitalised) before functions
        ordered = sorted(encoder_names, key=lambda n: (n[0].islower(), n))
        line = f"from lfengine.builder.encoders import {', '.join(ordered)}"
        if len(line) > WIDTH:  # isort's wrapped form: one name per line
            line = "from lfengine.builder.encoders import (\n" + "".join(f"    {n},\n" for n in ordered) + ")"
        lf.append(line)
    lf.append("from lfengine.data.batch import Batch, EmbeddingInfo, InputLayout")
    lf.append("from lfengine.errors import OptionError")

    constants = [
        "# The data this network was written for (check_same_data compares them with the layout).",
        *_tuple_lines("NOMINAL_COLUMNS", [_py(pair) for pair in layout.nominal]),
        *_tuple_lines("NUMERIC_COLUMNS", [_py(name) for name in layout.numeric]),
        *_tuple_lines("LIST_COLUMNS", [_py(pair) for pair in layout.lists]),
        *(["EMBEDDINGS = {"] if writer.used_ids else ["EMBEDDINGS: dict[str, EmbeddingInfo] = {}"]),
        *[f"    {_py(emb_id)}: {_py(layout.embeddings[emb_id])}," for emb_id in writer.used_ids],
        *(["}"] if writer.used_ids else []),
        *_tuple_lines("LABELS", [_py(label) for label in layout.labels]),
        "",
        "# The settings this code was written with; training uses them unless you override them.",
        "CONFIG_DEFAULTS: dict[str, Any] = {",
        *[f"    {_py(k)}: {_literal(getattr(config, k))}," for k in ARCHITECTURE + TRAINING],
        "}",
    ]
    # isort sections: lfengine is first-party only for a file inside this source checkout.
    imports += from_torch + [""] + lf if first_party else lf + from_torch
    blocks = [
        "\n".join(doc) + "\n\n" + "\n".join(imports) + "\n\n" + "\n".join(constants),
        check,
        "\n".join(features),
    ]
    if not is_tagger:
        blocks.append(_HIDDEN)
    blocks.append("\n".join(network))
    return "\n\n\n".join(blocks) + "\n"


def _literal(value: object) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_py(v) for v in value) + "]"
    return _py(value)
