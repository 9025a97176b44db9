"""Predefined networks selectable by name (``--module NAME``), besides the auto-built default.

Starting points for common LF tasks (docs/modules.md shows each one's diagram and scores):
NerTagger and PosTagger for sequence tagging, TextCnn and BiLstmAttentionClassifier for text
classification over token-list (N) columns, MlpClassifier for window (L) classification;
BiLstmCrfTagger is the auto tagger with the CRF forced on. Each is a TaskModel with the standard
constructor ``(layout, config, init)``; ``config_defaults`` replace the general heuristics for
the settings that define it, and ``input_notes`` say which LF columns it reads and ignores.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lfengine.builder.base import TaskModel
from lfengine.builder.config import ModelConfig
from lfengine.builder.dropout import Dropout
from lfengine.builder.embeddings import FeatureEmbeddings
from lfengine.builder.encoders import SHAPE_FLAGS, make_list_encoder
from lfengine.builder.networks import Classifier, SequenceTagger
from lfengine.data.batch import Batch, InputLayout
from lfengine.errors import OptionError


def _all_columns_note(layout: InputLayout) -> str:
    groups = [
        f"{len(layout.nominal)} nominal",
        f"{len(layout.numeric)} numeric",
        f"{len(layout.lists)} token-list",
    ]
    groups += [f"{len(settings['columns'])} {name}" for name, settings in layout.kinds]
    return f"reads every LF column ({', '.join(groups)}); ignores none"


class TextCnn(TaskModel):
    """Kim (2014) text classifier over the first list column: embeddings -> CNN -> Dropout -> Linear.

    For data whose whole signal is one text (e.g. class-ngram-sp1); other columns are ignored.
    The encoder is ``config.list_encoder`` (CNN here; BiLstmAttentionClassifier swaps it).
    """

    config_defaults = {"list_encoder": "cnn", "cnn_kernels": (3, 4, 5), "cnn_channels": 100, "dropout": 0.5}

    def __init__(
        self, layout: InputLayout, config: ModelConfig, init: dict[str, np.ndarray] | None = None
    ) -> None:
        super().__init__(layout, config, init)
        emb_id = layout.lists[0][1]
        self.emb_id = emb_id
        self.embeddings = FeatureEmbeddings(layout.embeddings, [emb_id], init, config.embedding_dropout)
        self.encoder = make_list_encoder(
            config.list_encoder,
            self.embeddings.dims(emb_id),
            config.cnn_kernels,
            config.cnn_channels,
            config.list_lstm_hidden,
        )
        self.dropout = Dropout(config.dropout)
        self.output = nn.Linear(self.encoder.output_size, layout.num_labels)

    @classmethod
    def check_layout(cls, layout: InputLayout) -> None:
        if layout.task != "classification" or layout.is_sequence or not layout.lists:
            raise OptionError(
                f"{cls.__name__} needs classification data with at least one token-list (N) column"
            )

    @classmethod
    def input_notes(cls, layout: InputLayout, config: ModelConfig) -> list[str]:
        column = layout.lists[0][0]
        notes = [f"reads the token-list column {column!r} with the {config.list_encoder} encoder"]
        ignored = [name for name, _ in layout.nominal] + list(layout.numeric)
        ignored += [name for name, _ in layout.lists[1:]]
        if ignored:
            shown = ", ".join(ignored[:8]) + (" ..." if len(ignored) > 8 else "")
            notes.append(f"ignores {len(ignored)} column(s): {shown}")
        return notes

    def forward(self, batch: Batch) -> torch.Tensor:
        vectors = self.embeddings.lookup(self.emb_id, batch.lists[0])
        return self.output(self.dropout(self.encoder(vectors, batch.list_lengths[0])))


class BiLstmAttentionClassifier(TextCnn):
    """Text classifier: embeddings -> BiLSTM -> attention pooling -> Dropout -> Linear.

    Reads word order over the whole text (where the CNN sees windows of 3-5 tokens); slower,
    and better when the deciding words are far apart. Other columns are ignored, as in TextCnn.
    """

    config_defaults = {"list_encoder": "attention", "list_lstm_hidden": 100, "dropout": 0.5}


class BiLstmCrfTagger(SequenceTagger):
    """The auto tagger with the CRF always on (Lample et al. 2016), for any label set."""

    config_defaults = {"crf": True}

    @classmethod
    def check_config(cls, layout: InputLayout, config: ModelConfig) -> None:
        super().check_config(layout, config)
        if not config.crf:
            raise OptionError(f"{cls.__name__} always uses a CRF; drop crf=false or use the default network")


def _require_chars(name: str, layout: InputLayout) -> None:
    if not layout.is_sequence or layout.task != "sequence":
        raise OptionError(f"{name} tags sequences, but the data are {layout.task} instances")
    if layout.chars is None:
        raise OptionError(
            f"{name} reads the characters of each token, but the data have no token-string column "
            "(an A or L-offset-0 attribute whose feature is string or string_...); "
            "add one to the LF feature specification, or use the default network"
        )


def _tagger_notes(layout: InputLayout, config: ModelConfig, output: str) -> list[str]:
    notes = [_all_columns_note(layout)]
    notes.append(
        f"characters of {layout.chars.column!r} -> char CNN ({config.char_filters} filters) and "
        f"{len(SHAPE_FLAGS)} casing/shape flags per token"
    )
    if not any(ch.isupper() for ch in layout.chars.alphabet[2:]):
        notes.append(
            f"{layout.chars.column!r} has no upper-case letters (lower-cased at export?): the casing "
            "flags stay 0; export the 'string' feature to use capitalisation"
        )
    notes.append(output)
    return notes


class _SpellingTagger(SequenceTagger):
    """A tagger that reads each token's characters: a character CNN plus casing/shape flags."""

    word_shape = True
    output_note = ""  # how the labels come out, for input_notes

    @classmethod
    def check_layout(cls, layout: InputLayout) -> None:
        _require_chars(cls.__name__, layout)

    @classmethod
    def input_notes(cls, layout: InputLayout, config: ModelConfig) -> list[str]:
        return _tagger_notes(layout, config, cls.output_note.format(labels=layout.num_labels))


class NerTagger(_SpellingTagger, BiLstmCrfTagger):
    """Named-entity tagger: words + character CNN + casing/shape flags -> BiLSTM -> CRF.

    The Lample et al. (2016) / Ma & Hovy (2016) design with the explicit word-shape signal
    (capitalisation, digits, hyphens) that NER benefits from most; the CRF keeps spans
    consistent (no I without a B). Needs a token-string column for the characters.
    """

    config_defaults = {"crf": True, "char_encoder": True}
    output_note = "CRF over {labels} labels (Viterbi decoding)"


class PosTagger(_SpellingTagger):
    """Part-of-speech tagger: words + character CNN + casing/shape flags -> BiLSTM -> softmax.

    Unknown words are tagged from their spelling (suffixes via the character CNN, capitals and
    digits via the shape flags); a softmax per token, since POS tags are not spans and a CRF
    adds time for little gain. Needs a token-string column for the characters.
    """

    config_defaults = {"crf": False, "char_encoder": True}
    output_note = "softmax over {labels} labels per token"


class MlpClassifier(Classifier):
    """Window classifier: every column (token lists averaged) -> two hidden layers -> labels.

    For LF window features (L attributes around the instance, previous labels, numeric values):
    the order within a window is fixed by its columns, so a multilayer perceptron over the
    concatenated embeddings suffices; fast and robust.
    """

    config_defaults = {"list_encoder": "mean", "hidden_layers": 2}

    @classmethod
    def input_notes(cls, layout: InputLayout, config: ModelConfig) -> list[str]:
        notes = [_all_columns_note(layout)]
        if layout.lists:
            notes.append("token-list columns are averaged (a bag of words); TextCnn reads their order")
        return notes


#: The predefined modules, by class name in this order (``--module NAME``): a new module is a
#: class above and its entry here (the registry reads this tuple; docs/modules.md describes it).
PREDEFINED_MODULES: tuple[type[TaskModel], ...] = (
    NerTagger,
    PosTagger,
    TextCnn,
    BiLstmAttentionClassifier,
    MlpClassifier,
    BiLstmCrfTagger,
)
