"""Every setting a user can give, declared once: name, type, range, help and default rule.

A run option is a field of ``TrainOptions`` (the protocol's ``train.options``, a ``lfengine
train`` flag); a model setting is a field of ``ModelConfig`` (a key of the option ``model``,
``--set KEY=VALUE``), chosen by the heuristic rule of its name (builder/heuristics.py ``RULES``)
when unset. A few are both. Both records, their checks, the command line's flags, the
protocol's option list and protocol.md's tables, ``describe``'s listing and the GATE wrapper's
old spellings are generated from ``SETTINGS`` below; tests/test_settings.py checks each list.

The declaration order is the order of every list: ``ModelConfig`` (model.json, ``describe``)
takes the model settings in it, ``TrainOptions`` (``--help``, protocol.md) the run options.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

#: Scopes: what a setting belongs to.
NETWORK = "network"  # a model setting that networks read (describe shows it where read)
TRAINING = "training"  # a model setting every network uses (the training loop reads it)
DESCRIBED = "described"  # a run option that shapes the model or its data: describe lists it
SETTINGS_CARRIER = "settings"  # the option ``model``: the model settings given by name
RUN = "run"  # how one training runs (where, how fast, when to stop or report)
MODEL_SCOPES = (NETWORK, TRAINING)

MAX_COUNT = 2**31 - 1  # epochs, batch sizes, schedules: beyond this a value is a typo, not a plan
#: Upper bounds of layer widths and depths: larger values are typos that would exhaust memory
#: when the network is built (a 16384 x 16384 layer is already 1 GiB).
MAX_WIDTH = 16384
MAX_DEPTH = 64
#: torch.set_num_threads with far more threads than any machine has crashes the process.
MAX_THREADS = 1024
MAX_WORKERS = 256  # local training processes (--workers); more nodes join through torchrun
NO_LEGACY = object()  # a setting every stored model has


@dataclass(frozen=True)
class Setting:
    """One setting: ``json_type`` is int, float, str, bool, dict, or ints (a list)."""

    name: str
    json_type: str
    help: str  # one line: lfengine train --help, protocol.md
    scope: str
    option: bool = False  # a model setting that is also a run option of the same name
    default: Any = None  # a run option's value when not given; None: see ``unset`` or the rule
    unset: Any = None  # what a run option left at None means (describe shows it as a heuristic)
    sets: str = ""  # the model setting this run option gives under another name
    nullable: bool = False  # a model setting that may be null
    low: int | float | None = None  # numbers: the range, bounds included unless open
    high: int | float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[str, ...] = ()
    choices_text: str = ""  # how messages name the allowed values, where not "one of ..."
    pattern: str = ""  # a regular expression of further accepted values (device: cuda:N)
    path: bool = False  # a run option that names a file
    flag: str = ""  # the command line's flag, where not --NAME-WITH-DASHES
    doc: str = ""  # protocol.md's wording, where the command line's help speaks of flags
    old: str = ""  # the old wrapper's option (gate-plugin.md §9), where it had one
    legacy: Any = NO_LEGACY  # the value of a model stored before the setting existed

    @property
    def is_model(self) -> bool:
        return self.scope in MODEL_SCOPES

    @property
    def is_option(self) -> bool:
        return not self.is_model or self.option

    def within(self, value: float) -> bool:
        """A number inside the range (a float also finite)."""
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or (value < self.high if self.open_high else value <= self.high)

    def allowed(self) -> str:
        """How a message names the accepted values of a setting with choices."""
        return self.choices_text or f"one of {', '.join(self.choices)}"

    def accepts(self, value: Any) -> bool:
        """A value among the choices (or matching the pattern); settings without choices accept all."""
        if not self.choices or value in self.choices:
            return True
        return bool(self.pattern) and isinstance(value, str) and re.fullmatch(self.pattern, value) is not None

    @property
    def cli_flag(self) -> str:
        return "--" + (self.flag or self.name.replace("_", "-"))

    def annotation(self, *, record: str) -> str:
        """The field's annotation in ``record`` ("options" or "model"); None means unset/null."""
        base = {"dict": "dict[str, Any]", "ints": "tuple[int, ...]"}.get(self.json_type, self.json_type)
        nullable = self.nullable if record == "model" else self.default is None and self.json_type != "dict"
        return f"{base} | None" if nullable else base


def _int(name: str, help: str, low: int, high: int, scope: str = NETWORK, **more: Any) -> Setting:
    return Setting(name, "int", help, scope, low=low, high=high, **more)


def _float(name: str, help: str, scope: str = TRAINING, **more: Any) -> Setting:
    """A number setting: every one is >= 0."""
    return Setting(name, "float", help, scope, low=0, **more)


def _bool(name: str, help: str, scope: str = NETWORK, **more: Any) -> Setting:
    return Setting(name, "bool", help, scope, **more)


def _str(name: str, help: str, scope: str, **more: Any) -> Setting:
    return Setting(name, "str", help, scope, **more)


def _every(name: str, help: str, old: str, default: int | None = None) -> Setting:
    return _int(name, help, 1, MAX_COUNT, RUN, default=default, old=old)


SETTINGS: tuple[Setting, ...] = (
    # --- the network (ModelConfig's first block) ---
    _str(
        "module",
        "the network: a predefined module (TextCnn, BiLstmCrfTagger, MlpClassifier, ...), "
        "file.py:Class, or null/auto",
        TRAINING,
        option=True,
        nullable=True,
        path=True,
        old="module",
    ),
    _int("hidden_size", "classifier/regressor hidden layer width", 1, MAX_WIDTH),
    _int(
        "hidden_layers",
        "classifier/regressor hidden layers (0: linear model over the features)",
        0,
        MAX_DEPTH,
    ),
    _float("dropout", "dropout between learned layers", NETWORK, high=1, open_high=True),
    _float(
        "embedding_dropout",
        "on every embedding lookup (nominal, list tokens, characters)",
        NETWORK,
        high=1,
        open_high=True,
    ),
    _str(
        "list_encoder",
        "encoder of token-list (N) columns: cnn, lstm, mean or attention",
        NETWORK,
        choices=("cnn", "lstm", "mean", "attention"),
    ),
    Setting("cnn_kernels", "ints", "kernel widths of the list CNN", NETWORK, low=1, high=MAX_DEPTH),
    _int("cnn_channels", "filters per kernel width of the list CNN", 1, MAX_WIDTH),
    _int("list_lstm_hidden", "hidden size per direction of the list BiLSTM", 1, MAX_WIDTH),
    _bool("char_encoder", "character CNN per token (sequence tagging with a char column)"),
    _int("char_dims", "character embedding size", 1, MAX_WIDTH),
    _int("char_filters", "character CNN filters", 1, MAX_WIDTH),
    _int("char_kernel", "character CNN kernel width", 1, MAX_DEPTH),
    _bool("word_shape", "casing/shape flags per token from its characters (sequence tagging)", legacy=False),
    _int(
        "affix_dims",
        "size of the hashed 1-4 character prefix/suffix embeddings per token (0: none)",
        0,
        MAX_WIDTH,
        legacy=0,
    ),
    _bool("crf", "linear-chain CRF output layer (sequence tagging)"),
    _bool("chunk_constraints", "the CRF never puts X|I after O or another type (chunk labels)", legacy=False),
    _bool("linear_crf", "a classical CRF over sparse token features, averaged with the tagger", legacy=False),
    _int("lstm_hidden", "tagger BiLSTM hidden size per direction", 1, MAX_WIDTH),
    _int("lstm_layers", "tagger BiLSTM layers", 1, MAX_DEPTH),
    _int(
        "wide_ngrams",
        "linear model over token lists beside the network: 0 off, 1 words, 2 + hashed bigrams",
        0,
        2,
        legacy=0,
    ),
    _bool(
        "linear_text", "an NB-weighted linear model of the token lists, mixed with the network", legacy=False
    ),
    _bool("gated_evidence", "the linear text model's word weights, each gated by its context", legacy=False),
    # --- the training (ModelConfig's second block); the first four are run options too ---
    _float("learning_rate", "AdamW's learning rate", option=True, open_low=True, old="learningrate"),
    _int(
        "batch_size",
        "training items (instances or sequences) per update",
        1,
        MAX_COUNT,
        TRAINING,
        option=True,
        old="batchsize",
    ),
    _int("max_epochs", "at most this many epochs", 1, MAX_COUNT, TRAINING, option=True, old="maxepochs"),
    _int(
        "es_patience",
        "validations without improvement before early stopping",
        0,
        MAX_COUNT,
        TRAINING,
        option=True,
        old="es_patience",
    ),
    _float("weight_decay", "AdamW's decoupled weight decay"),
    _float("grad_clip", "largest gradient norm; 0 disables clipping"),
    _float(
        "previous_label_dropout", "share of training items whose gate.LF.target columns are hidden", high=1
    ),
    _float(
        "unk_replace",
        "chance that a rare (singleton) training token is replaced by OOV",
        legacy=0.0,
        high=1,
    ),
    _float("word_dropout", "chance that any training token is replaced by OOV", legacy=0.0, high=1),
    _bool("oov_untrained", "rows training never updated look up as OOV", TRAINING, legacy=False),
    _float(
        "lr_decay",
        "learning rate factor after validations without improvement (1: constant)",
        high=1,
        open_low=True,
        legacy=1.0,
    ),
    _float(
        "es_min_delta", "smallest gain of the early-stopping score that counts as improvement", legacy=0.0
    ),
    # --- run options that shape the model or its data (describe lists them) ---
    _int(
        "seed",
        "random seed: the same seed gives the same model (on the CPU)",
        0,
        2**63 - 1,
        DESCRIBED,
        default=1,
        old="seed",
    ),
    _float(
        "valsize",
        "validation set: above 1 a count, below 1 a fraction, 0 none",
        DESCRIBED,
        unset=0.1,
        high=MAX_COUNT,
        old="valsize",
    ),
    _str(
        "valfile",
        "a separate LF data file to validate on (instead of --valsize)",
        DESCRIBED,
        path=True,
        doc="a separate LF data file to validate on (instead of `valsize`)",
        old="valfile",
    ),
    _str(
        "valsplit",
        "which items validate: a shuffled sample, or the file's last part (tail, like new documents)",
        DESCRIBED,
        unset="random",
        choices=("random", "tail"),  # random: measured, README
    ),
    _str(
        "ngram_layer",
        "encoder of token-list (N-gram) columns, the old name of list_encoder",
        DESCRIBED,
        sets="list_encoder",
        choices=("cnn", "lstm"),
        choices_text="'cnn' or 'lstm'",
        old="ngram_layer",
    ),
    _str(
        "embs",
        "embedding settings per emb_id, the old syntax EMBID:DIMS:TRAIN:MINFREQ:FILE[,...]",
        DESCRIBED,
        old="embs",
    ),
    _str(
        "maxlens",
        "length limits of token-list columns, the old syntax ATTR:MAXLEN:SHORTEN[,...]",
        DESCRIBED,
        old="maxlens",
    ),
    _bool(
        "shuffle",
        "validate on the file's last items, as --valsplit tail does (default: a shuffled sample, seeded)",
        DESCRIBED,
        default=True,
        flag="no-shuffle",
        old="noshuffle",
        doc='`false` validates on the file\'s last items, as `valsplit` `"tail"` does',
    ),
    _str(
        "es_metric",
        "what decides the best model; auto: span F1 for chunk labels, accuracy otherwise, mse for regression",
        DESCRIBED,
        default="auto",
        choices=("auto", "loss", "accuracy", "f1"),
        old="es_metric",
    ),
    Setting(
        "model",
        "dict",
        "override an architecture or training setting (value parsed as JSON); repeatable",
        SETTINGS_CARRIER,
        flag="set",
        doc="model settings, `{setting: value}`: any key of the table below",
    ),
    # --- how one training runs: nothing describe shows or eject writes depends on these ---
    _str(
        "device",
        "where to train: auto (a GPU when there is one), cpu, cuda or cuda:N",
        RUN,
        default="auto",
        choices=("auto", "cpu", "cuda"),
        pattern=r"cuda:\d{1,4}",
        choices_text="auto, cpu, cuda or cuda:N",
    ),
    _int("threads", "CPU threads for torch; default: torch's choice", 1, MAX_THREADS, RUN),
    _int(
        "workers",
        "data-parallel training processes on this machine (torch.distributed); under torchrun: its ranks",
        1,
        MAX_WORKERS,
        RUN,
        default=1,
    ),
    _str(
        "precision",
        "mixed precision on CUDA; the CPU trains in fp32",
        RUN,
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
    ),
    _bool(
        "resume",
        "continue an interrupted training from its checkpoint in MODEL_DIR",
        RUN,
        default=False,
        old="resume",
        doc="continue an interrupted training from its checkpoint in the model directory",
    ),
    _str(
        "stop_file",
        "training stops when this file appears; default STOP next to the meta file",
        RUN,
        path=True,
        old="stopfile",
    ),
    _bool(
        "skip_bad_lines",
        "skip malformed training lines (counted in the log) instead of failing",
        RUN,
        default=False,
    ),
    _every("validate_every_epochs", "validate every N epochs", "valeveryepochs", default=1),
    _every("validate_every_batches", "also validate every N batches", "valeverybatches"),
    _every("validate_every_instances", "also validate every N training instances", "valeveryinstances"),
    _every("report_every_batches", "log the training loss every N batches", "repeverybatches"),
    _every("report_every_instances", "log the training loss every N instances", "repeveryinstances"),
    _bool("no_train", "build and describe the network, do not train", RUN, default=False, old="notrain"),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
#: The run options (TrainOptions' fields) and the model settings (ModelConfig's), in order.
OPTIONS: tuple[Setting, ...] = tuple(s for s in SETTINGS if s.is_option)
MODEL_SETTINGS: tuple[Setting, ...] = tuple(s for s in SETTINGS if s.is_model)
#: The run options describe lists after the model settings, with their values and sources.
DESCRIBED_OPTIONS: tuple[Setting, ...] = tuple(s for s in SETTINGS if s.scope == DESCRIBED)
#: What valsize and valsplit left unset mean (the data layer splits by these).
DEFAULT_VALSIZE: float = BY_NAME["valsize"].unset
DEFAULT_VALSPLIT: str = BY_NAME["valsplit"].unset


def model_setting_of(option: Setting) -> str | None:
    """The model setting a run option gives (its own name, or ``sets``), or None."""
    return option.sets or (option.name if option.is_model else None)


def record_fields(settings: tuple[Setting, ...], *, record: str) -> Any:
    """A class decorator: the settings become the dataclass fields of a record (run options
    with their defaults, model settings without), each field's metadata naming its Setting."""

    def declare(cls: type) -> type:
        annotations = {s.name: s.annotation(record=record) for s in settings}
        cls.__annotations__ = {**annotations, **cls.__dict__.get("__annotations__", {})}
        for s in settings:
            kept = {"default_factory": dict} if s.json_type == "dict" else {"default": s.default}
            setattr(
                cls, s.name, dataclasses.field(metadata={"setting": s}, **({} if record == "model" else kept))
            )
        return cls

    return declare
