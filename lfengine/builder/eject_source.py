"""The Python source that ``lfengine eject`` writes for an auto-built network.

The generated class mirrors ``networks.Classifier`` / ``Regressor`` / ``SequenceTagger`` module by
module (same attribute names, same construction order), with every size resolved to a number,
so that stored weights load into it and seeded training initialises it identically. Only the
layers are reused from lfengine (embedding tables with their train modes, list and character
encoders, the CRF); the wiring between them is written out for the user to edit.
"""

from __future__ import annotations

from lfengine.builder.config import ModelConfig
from lfengine.builder.eject_check import checked_source
from lfengine.builder.eject_classical import Classical, classifier_classical, tagger_classical
from lfengine.builder.eject_features import WIDTH, FeaturesWriter, py, whole, wrap
from lfengine.data.batch import InputLayout
from lfengine.data.codec import TASKS
from lfengine.errors import ModelError

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
    "affix_dims",
    "crf",
    "chunk_constraints",
    "linear_crf",
    "lstm_hidden",
    "lstm_layers",
    "wide_ngrams",
    "linear_text",
)
TRAINING = ("learning_rate", "batch_size", "max_epochs", "es_patience", "weight_decay", "grad_clip")


def _tuple_lines(name: str, items: list[str]) -> list[str]:
    if not items:
        return [f"{name} = ()"]
    return [f"{name} = ("] + [f"    {item}," for item in items] + [")"]


class _Writer(FeaturesWriter):
    """Writes the network classes around the Features class."""

    classical: Classical  # the classical model beside the network, set with the network's lines

    def classifier_lines(self, name: str) -> list[str]:
        c, layout = self.config, self.layout
        regression = layout.task == "regression"
        outputs = 1 if regression else layout.num_labels
        hidden = []
        size = self.size
        for _ in range(c.hidden_layers):
            hidden += [f"nn.Linear({size}, {c.hidden_size}),", "nn.ReLU(),", f"Dropout({c.dropout!r}),"]
            self.diagram.append(f"Linear {size} -> {c.hidden_size}, ReLU, Dropout {c.dropout}")
            size = c.hidden_size
        what = "one standardised value" if regression else f"{outputs} label scores"
        self.diagram.append(f"Linear {size} -> {outputs} ({what})")
        wide = bool(layout.lists and c.wide_ngrams)
        if wide:
            grams = "words and hashed bigrams" if c.wide_ngrams > 1 else "words"
            self.diagram.append(f"+ a linear model over the token lists' {grams} -> {outputs} (added)")
        classical = self.classical = classifier_classical(layout, c)
        self.diagram += classical.diagram
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
            *([f"        self.wide = WideNgrams(layout, {outputs}, {c.wide_ngrams})"] if wide else []),
            *classical.init,
            *_CHECK_LAYOUT,
            "    def forward(self, batch: Batch) -> torch.Tensor:",
            f'        """{"(B,) standardised values" if regression else f"(B, {outputs}) logits"}."""',
            "        scores = self.output(self.hidden(self.features(batch)))",
            *(["        scores = scores + self.wide(batch.lists, batch.list_lengths)"] if wide else []),
            "        return scores.squeeze(-1)" if regression else "        return scores",
            *classical.methods,
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
            only = ", valid chunk transitions only" if c.chunk_constraints else ""
            self.diagram.append(f"CRF over the {n} labels (Viterbi path, marginals as confidences{only})")
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
            f"        self.input_dropout = Dropout({c.dropout!r})",
            "        self.lstm = nn.LSTM(",
            f"            {self.size}, {c.lstm_hidden}, num_layers={c.lstm_layers}, batch_first=True, "
            f"bidirectional=True{between}",
            "        )",
            f"        self.output_dropout = Dropout({c.dropout!r})",
            f"        self.output = nn.Linear({2 * c.lstm_hidden}, {n})",
        ]
        if c.crf:
            labels = ", LABELS" if c.chunk_constraints else ""
            lines.append(f"        self.crf = Crf({n}{labels})")
        classical = self.classical = tagger_classical(c)
        lines += classical.init
        self.diagram += classical.diagram
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
            ]
        if c.crf and not c.linear_crf:
            lines += [
                "",
                "    def predict(self, batch: Batch) -> Prediction:",
                '        """Viterbi path; confidence = marginal probability of the chosen label."""',
                "        return self.crf.prediction(self(batch), batch.mask, batch.lengths)",
            ]
        return lines + classical.methods


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
    origin: tuple[str, str],
    meta_hint: str,
    file_name: str,
    version: str,
    first_party: bool = False,
) -> str:
    """The whole file for one layout and configuration. ``origin``: (what, path), e.g.
    ("meta file", "x.meta.json"); every string from the data or the caller is written by
    ``py``, and the file is parsed before it is returned (``checked_source``)."""
    if layout.task not in TASKS or not class_name.isidentifier():
        raise ModelError(f"eject cannot write a network for task {layout.task!r} named {class_name!r}")
    writer = _Writer(layout, config)
    features = writer.features_class()
    is_tagger = layout.task == "sequence"
    network = writer.tagger_lines(class_name) if is_tagger else writer.classifier_lines(class_name)
    chars_expr = "layout.chars.vocab_size if layout.chars else None"
    reads_chars = any(part.attr in ("chars", "shape") for part in writer.parts)
    char_size = whole(layout.chars.vocab_size) if reads_chars else None
    if char_size is None:
        chars_expr = "None"
    check = _CHECK.format(chars=chars_expr, char_size=char_size)
    if layout.kinds:
        labels_check = '        "labels": (layout.labels, LABELS),\n'
        kinds_check = '        "column kinds": (tuple(name for name, _ in layout.kinds), COLUMN_KINDS),\n'
        check = check.replace(labels_check, labels_check + kinds_check)

    labels = ", ".join(map(py, layout.labels[:8])) + (" ..." if len(layout.labels) > 8 else "")
    task_line = f"Task: {layout.task}"
    task_line += f", {layout.num_labels} labels ({labels})." if layout.labels else "."
    diagram = [f"    {line}" for line in writer.diagram]
    doc = [
        f'"""{class_name}: the network lfengine builds for these data, as editable PyTorch source.',
        "",
        *wrap(
            f"Written by `lfengine eject` (lfengine {py(version)}) from {origin[0]} {py(origin[1])}. "
            f"{task_line} "
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
        f"    lfengine train META MODEL_DIR --module {py(f'{file_name}:{class_name}')}",
        "",
        f"with META = {py(meta_hint)}. Run it on a model trained with the default network:",
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
    names = writer.imports()
    names["lfengine.builder.base"] = {"Prediction", "TaskModel"} if uses_crf else {"TaskModel"}
    names["lfengine.builder.config"] = {"ModelConfig"}
    if uses_crf:
        names["lfengine.builder.crf"] = {"Crf"}
    for module, found in writer.classical.imports.items():  # set by the network's lines above
        names[module] = names.get(module, set()) | found
    if is_tagger or config.hidden_layers > 0:  # lfengine's Dropout: the same masks as when built
        names["lfengine.builder.dropout"] = {"Dropout"}
    if not is_tagger and layout.lists and config.wide_ngrams:
        names["lfengine.builder.wide"] = {"WideNgrams"}
    names["lfengine.data.batch"] = {"Batch", "EmbeddingInfo", "InputLayout"}
    names["lfengine.errors"] = {"OptionError"}
    lf = [_import_line(module, names[module]) for module in sorted(names)]

    constants = [
        "# The data this network was written for (check_same_data compares them with the layout).",
        *_tuple_lines("NOMINAL_COLUMNS", [py(pair) for pair in layout.nominal]),
        *_tuple_lines("NUMERIC_COLUMNS", [py(name) for name in layout.numeric]),
        *_tuple_lines("LIST_COLUMNS", [py(pair) for pair in layout.lists]),
        *(["EMBEDDINGS = {"] if writer.used_ids else ["EMBEDDINGS: dict[str, EmbeddingInfo] = {}"]),
        *[f"    {py(emb_id)}: {py(layout.embeddings[emb_id])}," for emb_id in writer.used_ids],
        *(["}"] if writer.used_ids else []),
        *_tuple_lines("LABELS", [py(label) for label in layout.labels]),
        *(_tuple_lines("COLUMN_KINDS", [py(name) for name, _ in layout.kinds]) if layout.kinds else []),
        "",
        "# The settings this code was written with; training uses them unless you override them.",
        "CONFIG_DEFAULTS: dict[str, Any] = {",
        *[f"    {py(k)}: {_literal(getattr(config, k))}," for k in ARCHITECTURE + TRAINING],
        "}",
    ]
    # isort sections: lfengine is first-party only for a file inside this source checkout.
    imports += from_torch + [""] + lf if first_party else lf + from_torch
    blocks = [
        "\n".join(doc) + "\n\n" + "\n".join(imports) + "\n\n" + "\n".join(constants),
        check,
        *writer.classes(),
        "\n".join(features),
    ]
    if not is_tagger:
        blocks.append(_HIDDEN)
    blocks.append("\n".join(network))
    return checked_source("\n\n\n".join(blocks) + "\n")


def _import_line(module: str, names: set[str]) -> str:
    """``from module import names`` in isort's form: classes (capitalised) before functions,
    one name per line where the line would be too long."""
    ordered = sorted(names, key=lambda n: (n[0].islower(), n))
    line = f"from {module} import {', '.join(ordered)}"
    if len(line) > WIDTH:
        line = f"from {module} import (\n" + "".join(f"    {n},\n" for n in ordered) + ")"
    return line


def _literal(value: object) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(py(v) for v in value) + "]"
    return py(value)
