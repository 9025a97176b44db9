"""The codec: how raw LF values become indices and floats for one model.

Built once from the meta file (plus --embs/--maxlens overrides and embedding files) and stored
with the model as JSON, so application needs neither the training data nor the embedding files
and always uses exactly the training-time vocabularies (the old wrapper's defect C2).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lfengine.data.batch import CharInfo, EmbeddingInfo, InputLayout
from lfengine.data.codec_parts import flat_codec, stored_codec
from lfengine.data.embeddings import initial_matrix, read_embeddings, resolve_embeddings_path
from lfengine.data.kinds import claiming_kind, kind_named
from lfengine.data.meta import Attribute, FeatureSpec
from lfengine.data.overrides import parse_embs, parse_maxlens
from lfengine.data.vocab import Vocabulary, char_vocabulary, dims_heuristic, label_list, sum_counts
from lfengine.errors import EmbeddingsError, MetaFileError, OptionError

log = logging.getLogger(__name__)
MAX_CHARS = 24  # words are cut to this many characters for the char encoder
MAX_EMBEDDING_DIMS = 16384  # more is a typo, and would exhaust memory when the table is built
#: The annotation feature of an attribute that holds the target of a neighbouring instance
#: (lf-format.md §5.5): a previous-label column.
PREVIOUS_LABEL_FEATURE = "gate.LF.target"


#: The tasks a model does (``task`` in describe, init, status and evaluate replies): an instance
#: gets a label, each element of a sequence gets one, or an instance gets a number.
TASKS = ("classification", "sequence", "regression")


@dataclass
class NominalColumn:
    index: int
    name: str
    emb_id: str


@dataclass
class NumericColumn:
    index: int
    name: str
    mean: float  # z-score parameters from the meta statistics (lf-format.md §9)
    std: float


@dataclass
class ListColumn:
    index: int
    name: str
    emb_id: str
    maxlen: int
    shorten: str


@dataclass
class EmbeddingSetting:
    """Resolved EMBEDDINGS settings of one emb_id, with where each value came from."""

    emb_id: str
    mode: str
    dims: int
    minfreq: int
    file: str
    sources: dict[str, str] = field(default_factory=dict)


@dataclass
class Codec:
    """Column groups, vocabularies, scalers and labels: everything needed to encode instances."""

    is_sequence: bool
    task: str  # one of TASKS
    num_features: int
    column_names: list[str]
    nominal: list[NominalColumn]
    numeric: list[NumericColumn]
    lists: list[ListColumn]
    vocabs: dict[str, Vocabulary]
    embeddings: dict[str, EmbeddingSetting]
    labels: list[str]
    target_mean: float = 0.0
    target_std: float = 1.0
    char_column: int | None = None
    char_vocab: Vocabulary | None = None
    #: Positions in ``nominal`` of columns over ``gate.LF.target`` (labels of neighbouring
    #: instances): gold at training time, always "" when GATE applies a model (gate-plugin.md §8).
    previous_label_columns: list[int] = field(default_factory=list)
    #: Positions in ``nominal`` / ``lists`` of token-string columns (feature ``string...``): the
    #: columns whose rare values teach the OOV row during training (lfengine/data/rows.py).
    token_columns: list[int] = field(default_factory=list)
    token_lists: list[int] = field(default_factory=list)
    #: Position in ``nominal`` of the token string at the token itself (what evaluate splits
    #: into known and unknown tokens); None without one.
    key_column: int | None = None
    #: Rows that training never updated, per emb_id, and of the character vocabulary: they look
    #: up as unknown (set once the training split is known, lfengine/data/rows.py).
    oov_rows: dict[str, list[int]] = field(default_factory=dict)
    char_oov_rows: list[int] = field(default_factory=list)
    #: Per emb_id: rows ``trained`` (in the training split), ``pretrained`` (only a file's vector)
    #: and ``oov`` (mapped to OOV); empty until a training split is known.
    row_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Per emb_id, rows with a vector from an embeddings file; only while building (not stored).
    pretrained_rows: dict[str, list[int]] = field(default_factory=dict, repr=False)
    #: Settings per registered column kind (lfengine/data/kinds.py) that claimed columns; stored
    #: as parts after the built-in ones (codec_parts.py).
    kinds: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def label_index(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def layout(self) -> InputLayout:
        return InputLayout(
            is_sequence=self.is_sequence,
            nominal=tuple((c.name, c.emb_id) for c in self.nominal),
            numeric=tuple(c.name for c in self.numeric),
            lists=tuple((c.name, c.emb_id) for c in self.lists),
            embeddings={
                e: EmbeddingInfo(e, len(self.vocabs[e]), s.dims, s.mode, bool(s.file))
                for e, s in self.embeddings.items()
            },
            chars=None
            if self.char_vocab is None
            else CharInfo(
                self.column_names[self.char_column],
                len(self.char_vocab),
                MAX_CHARS,
                tuple(self.char_vocab.itos),
            ),
            task=self.task,
            labels=tuple(self.labels),
            kinds=tuple(self.kinds.items()),
        )

    def to_dict(self) -> dict[str, Any]:
        skip = ("vocabs", "char_vocab", "pretrained_rows")
        d = {k: v for k, v in asdict(self).items() if k not in skip}
        d["vocabs"] = {e: {"itos": v.itos, "onehot": v.onehot} for e, v in self.vocabs.items()}
        d["char_vocab"] = None if self.char_vocab is None else self.char_vocab.itos
        return stored_codec(d)  # shared state, then the ordered parts (codec_parts.py)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Codec:
        d = flat_codec(d)  # any stored format
        d["nominal"] = [NominalColumn(**c) for c in d["nominal"]]
        d["numeric"] = [NumericColumn(**c) for c in d["numeric"]]
        d["lists"] = [ListColumn(**c) for c in d["lists"]]
        d["vocabs"] = {e: Vocabulary(v["itos"], onehot=v["onehot"]) for e, v in d["vocabs"].items()}
        d["embeddings"] = {e: EmbeddingSetting(**s) for e, s in d["embeddings"].items()}
        d["char_vocab"] = None if d["char_vocab"] is None else Vocabulary(d["char_vocab"])
        d.setdefault("previous_label_columns", [])
        for name in d.get("kinds", {}):
            kind_named(name)
        codec = cls(**d)
        codec.apply_oov_rows()
        return codec

    def apply_oov_rows(self) -> None:
        """Make the rows training never updated look up as unknown (see ``oov_rows``)."""
        for emb_id, rows in self.oov_rows.items():
            self.vocabs[emb_id].map_to_unknown(rows)
        if self.char_vocab is not None:
            self.char_vocab.map_to_unknown(self.char_oov_rows)


def build_codec(
    spec: FeatureSpec,
    *,
    embs: str | None = None,
    maxlens: str | None = None,
    seed: int = 1,
    chars: bool = True,
    matrices: bool = True,
) -> tuple[Codec, dict[str, np.ndarray]]:
    """Codec plus the initial embedding matrix of every emb_id (random rows from ``seed``;
    without ``matrices``, none: describe needs only their shapes)."""
    emb_over = parse_embs(embs)
    len_over = parse_maxlens(maxlens)
    for over in len_over:
        if over.attribute is not None and not (
            0 <= over.attribute < len(spec.attributes) and spec.attributes[over.attribute].is_list
        ):
            raise OptionError(
                f"--maxlens names attribute {over.attribute}, which is not a list (N) attribute"
            )
    nominal, numeric, lists = [], [], []
    counts_by_id: dict[str, list[dict[str, int]]] = {}
    first_attr: dict[str, Attribute] = {}
    claimed: dict[str, list] = {}
    for col in spec.columns:
        attr = spec.attribute_of(col)
        kind = claiming_kind(spec, col)
        if kind is not None:
            claimed.setdefault(kind.name, []).append(col)
        elif col.datatype == "nominal":
            counts_by_id.setdefault(attr.emb_id, []).append(spec.stats[col.name].string_counts)
            first_attr.setdefault(attr.emb_id, attr)
            if attr.is_list:
                maxlen, shorten = attr.maxlen, attr.shorten
                for over in len_over:
                    if over.attribute in (None, attr.index):
                        maxlen, shorten = over.maxlen, over.shorten
                lists.append(ListColumn(col.index, col.name, attr.emb_id, maxlen, shorten))
            else:
                nominal.append(NominalColumn(col.index, col.name, attr.emb_id))
        else:
            stats = spec.stats.get(col.name)
            mean, std = 0.0, 1.0
            if col.datatype == "numeric" and stats is not None and stats.variance > 0:
                mean, std = stats.mean, math.sqrt(stats.variance)
            numeric.append(NumericColumn(col.index, col.name, mean, std))
    unknown = set(emb_over) - set(counts_by_id)
    if unknown:
        raise OptionError(
            f"--embs names emb_id(s) {sorted(unknown)} that no nominal attribute uses; "
            f"known: {sorted(counts_by_id)}"
        )
    rng = np.random.default_rng(seed)
    vocabs, settings, initial, pretrained = {}, {}, {}, {}
    for emb_id, counts_list in counts_by_id.items():
        setting = _resolve_setting(first_attr[emb_id], emb_over.get(emb_id))
        vocab, matrix, setting, in_file = _vocab_and_matrix(
            setting, sum_counts(counts_list), spec.path.parent, rng if matrices else None
        )
        vocabs[emb_id], settings[emb_id] = vocab, setting
        if matrix is not None:
            initial[emb_id] = matrix
        pretrained[emb_id] = [i for i, word in enumerate(vocab.itos) if word in in_file]
    task, labels, t_mean, t_std = _target(spec)
    char_column, char_vocab = (None, None)
    key = find_char_source(spec)
    if chars and spec.is_sequence:
        char_column = key
        if char_column is not None:
            char_vocab = char_vocabulary(spec.stats[spec.columns[char_column].name].string_counts)
    codec = Codec(
        is_sequence=spec.is_sequence,
        task=task,
        num_features=spec.num_features,
        column_names=[c.name for c in spec.columns],
        nominal=nominal,
        numeric=numeric,
        lists=lists,
        vocabs=vocabs,
        embeddings=settings,
        labels=labels,
        target_mean=t_mean,
        target_std=t_std,
        char_column=char_column,
        char_vocab=char_vocab,
        previous_label_columns=[
            j
            for j, c in enumerate(nominal)
            if spec.attribute_of(spec.columns[c.index]).feature == PREVIOUS_LABEL_FEATURE
        ],
        token_columns=[j for j, c in enumerate(nominal) if _is_token_string(spec, c.index)],
        token_lists=[j for j, c in enumerate(lists) if _is_token_string(spec, c.index)],
        key_column=next((j for j, c in enumerate(nominal) if c.index == key), None),
        pretrained_rows=pretrained,
        kinds={
            name: {**kind_named(name).settings(spec, cols), "columns": [c.index for c in cols]}
            for name, cols in claimed.items()
        },
    )
    return codec, initial


def _is_token_string(spec: FeatureSpec, column: int) -> bool:
    """A column of token strings (feature ``string``, ``string_lc`` ...): words, which new
    documents bring unseen ones of."""
    return spec.attribute_of(spec.columns[column]).feature.startswith("string")


def find_char_source(spec: FeatureSpec) -> int | None:
    """The documented rule for the char encoder's input: the nominal, non-list column at the
    token itself (code A, or L at offset 0) whose feature is ``string``; failing that, one whose
    feature starts with ``string`` (e.g. ``string_lc``). None: no char encoder."""
    candidates = []
    for col in spec.columns:
        attr = spec.attribute_of(col)
        at_token = attr.code == "A" or (attr.code == "L" and col.offset == 0)
        if col.datatype == "nominal" and not attr.is_list and at_token:
            if attr.feature == "string":
                return col.index
            if attr.feature.startswith("string"):
                candidates.append(col.index)
    return candidates[0] if candidates else None


def _resolve_setting(attr: Attribute, over: Any) -> EmbeddingSetting:
    def pick(name: str, meta_value: Any, over_value: Any) -> Any:
        if over_value is not None:
            sources[name] = "option"
            return over_value
        sources[name] = "meta"
        return meta_value

    sources: dict[str, str] = {}
    file = pick("file", attr.emb_file, over.file if over else None)
    mode = pick("mode", attr.emb_train, over.train if over else None)
    if not mode:
        mode, sources["mode"] = ("no" if file else "yes"), "default"
    if mode == "mapping" and not file:
        raise OptionError(f"emb_id {attr.emb_id!r}: mode 'mapping' needs an embeddings file")
    if mode == "onehot" and file:
        raise OptionError(f"emb_id {attr.emb_id!r}: mode 'onehot' cannot use an embeddings file")
    dims = pick("dims", attr.emb_dims, over.dims if over else None)
    if dims and not 0 < dims <= MAX_EMBEDDING_DIMS:
        raise OptionError(
            f"emb_id {attr.emb_id!r}: embedding dims must be between 1 and {MAX_EMBEDDING_DIMS}, "
            f"got {dims} (from the {sources['dims']})"
        )
    return EmbeddingSetting(
        emb_id=attr.emb_id,
        mode=mode,
        dims=dims,
        minfreq=max(1, pick("minfreq", attr.emb_minfreq, over.minfreq if over else None)),
        file=file,
        sources=sources,
    )


def _vocab_and_matrix(
    s: EmbeddingSetting, counts: dict[str, int], meta_dir: Path, rng: np.random.Generator | None
) -> tuple[Vocabulary, np.ndarray | None, EmbeddingSetting, set[str]]:
    """lf-format.md §8.1-§8.3 with the recommended semantics per emb_train mode; also the words
    that have a vector in the embeddings file. No matrix without ``rng``."""
    pretrained = None
    in_file: set[str] = set()
    vocab = Vocabulary.from_counts(counts, minfreq=s.minfreq, onehot=s.mode == "onehot")
    if s.file:
        path = resolve_embeddings_path(s.file, meta_dir)
        wanted = None if s.mode == "mapping" else set(vocab.itos[2:])
        pretrained = read_embeddings(path, wanted)
        if s.dims and s.dims != pretrained.dims:
            raise EmbeddingsError(
                f"emb_id {s.emb_id!r}: configured dims differ from the embeddings file",
                file=str(path),
                expected=str(s.dims),
                found=f"{pretrained.dims} numbers per vector",
                hint="remove the DIMS setting or use a matching file",
            )
        s.dims, s.sources["dims"], s.file = pretrained.dims, "file", str(path)
        in_file = set(pretrained.words)
        if s.mode == "no":  # only words with a vector; the rest map to OOV
            vocab = Vocabulary(vocab.itos[:2] + [w for w in vocab.itos[2:] if w in in_file])
        elif s.mode == "mapping":  # all file words, then own words without a vector
            own = set(vocab.itos)
            extra = [w for w in dict.fromkeys(pretrained.words) if w not in own]
            vocab = Vocabulary(vocab.itos + extra)
        log.info(
            "emb_id %r: %d of %d words have a vector in %s",
            s.emb_id,
            sum(w in in_file for w in vocab.itos),
            len(vocab),
            path,
        )
    elif s.mode == "no":
        log.warning("emb_id %r: mode 'no' without an embeddings file freezes random vectors", s.emb_id)
    if s.mode == "onehot":
        s.dims, s.sources["dims"] = len(vocab) - 1 if len(vocab) > 1 else 1, "onehot"
    elif not s.dims:
        s.dims, s.sources["dims"] = dims_heuristic(len(vocab)), "heuristic"
    if rng is None:
        return vocab, None, s, in_file
    matrix = initial_matrix(vocab.itos, s.dims, onehot=s.mode == "onehot", pretrained=pretrained, rng=rng)
    return vocab, matrix, s, in_file


def _target(spec: FeatureSpec) -> tuple[str, list[str], float, float]:
    datatype = spec.target_datatype
    if datatype == "nominal":
        labels = label_list(spec.target.string_counts)
        if not labels:
            raise MetaFileError("targetStats has no labels", file=str(spec.path))
        return ("sequence" if spec.is_sequence else "classification"), labels, 0.0, 1.0
    if datatype == "numeric":
        if spec.is_sequence:
            raise MetaFileError("numeric targets are not supported for sequences", file=str(spec.path))
        std = math.sqrt(spec.target.variance) if spec.target.variance > 0 else 1.0
        return "regression", [], spec.target.mean, std
    raise MetaFileError(
        "the meta file has no targetStats: nothing to train",
        file=str(spec.path),
        hint="export with a target (not LF_Export with target type NONE)",
    )
