"""Read an LF meta file into a typed feature spec (lf-format.md §3, §4).

The spec describes the data only; vocabularies and encodings are built from it in vocab.py and
codec.py. Nothing here depends on torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lfengine.errors import MetaFileError
from lfengine.files import jsontext
from lfengine.files.paths import MAX_META_BYTES, read_regular_bytes

META_SUFFIX = ".meta.json"
DATA_SUFFIX = ".data.json"
#: LF attribute codes (featureCode): attribute, attribute list (window), n-gram.
CODES = ("A", "L", "N")
EMB_TRAIN_MODES = ("", "yes", "no", "mapping", "onehot")
SHORTEN_MODES = ("", "right", "left", "both", "middle")


@dataclass(frozen=True)
class Attribute:
    """One element of the LF feature specification (``featureInfo.attributes[i]``)."""

    index: int
    code: str  # A | L | N: LF's featureCode (the meta file's kind, featureCode and code)
    datatype: str  # nominal | numeric | bool
    ann_type: str
    feature: str
    listsep: str | None
    window: tuple[int, int] | None  # (from, to) for L
    ngram: int | None  # n for N
    maxlen: int = 0  # 0: unlimited
    shorten: str = ""
    emb_id: str = ""
    emb_dims: int = 0
    emb_train: str = ""
    emb_minfreq: int = 1
    emb_file: str = ""

    @property
    def is_list(self) -> bool:
        """N columns and LISTSEP nominals carry lists of strings (lf-format.md §5.5, D13)."""
        return self.datatype == "nominal" and (self.code == "N" or bool(self.listsep))


@dataclass(frozen=True)
class Column:
    """One column of the feature vector, in data order."""

    index: int
    name: str
    attribute: int
    code: str  # A | L | N, as its attribute's (the meta file's "kind")
    datatype: str
    offset: int | None  # window offset for L columns


@dataclass(frozen=True)
class Stats:
    """A ``featureStats`` / ``targetStats`` object."""

    is_string: bool
    string_counts: dict[str, int]
    mean: float
    variance: float
    minimum: float
    maximum: float
    n: int


@dataclass
class FeatureSpec:
    """Everything the meta file says about the features and the target."""

    path: Path
    attributes: list[Attribute]
    columns: list[Column]
    stats: dict[str, Stats]  # by column name
    target: Stats | None
    is_sequence: bool
    lines_written: int
    seq_lengths: dict[str, float] = field(default_factory=dict)

    @property
    def num_features(self) -> int:
        return len(self.columns)

    @property
    def target_datatype(self) -> str:
        """nominal | numeric | none, from ``targetStats`` (lf-format.md §3.4, §6.1)."""
        if self.target is None:
            return "none"
        return "nominal" if self.target.is_string else "numeric"

    def data_path(self) -> Path:
        return data_path_for(self.path)

    def attribute_of(self, column: Column) -> Attribute:
        return self.attributes[column.attribute]


def data_path_for(meta_path: str | Path) -> Path:
    """``x.meta.json`` -> ``x.data.json`` in the same directory (lf-format.md §2.1, D1)."""
    meta_path = Path(meta_path)
    if not meta_path.name.endswith(META_SUFFIX):
        raise MetaFileError(
            "meta file name must end in .meta.json so the data file can be found",
            file=str(meta_path),
            hint="rename it to NAME.meta.json, with its data file beside it as NAME.data.json",
        )
    return meta_path.with_name(meta_path.name[: -len(META_SUFFIX)] + DATA_SUFFIX)


def read_meta(path: str | Path) -> FeatureSpec:
    """Parse and validate a meta file; every problem is a MetaFileError naming the file."""
    path = Path(path)
    try:
        text = read_regular_bytes(path, MAX_META_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise MetaFileError("meta file not found", file=str(path), hint="check the path") from None
    except UnicodeDecodeError as exc:
        raise MetaFileError("meta file is not UTF-8", file=str(path), found=str(exc)) from None
    except OSError as exc:
        raise MetaFileError("cannot read meta file", file=str(path), found=exc.strerror) from None
    if not text.strip():
        raise MetaFileError("meta file is empty", file=str(path), hint="was the LF export finished?")
    try:
        meta = jsontext.loads(text)
    except json.JSONDecodeError as exc:
        raise MetaFileError(
            "meta file is not valid JSON",
            file=str(path),
            line=exc.lineno,
            found=f"{exc.msg} at column {exc.colno}",
        ) from None
    return parse_meta(meta, path)


def parse_meta(meta: Any, path: Path) -> FeatureSpec:
    reader = _MetaReader(path)
    if not isinstance(meta, dict):
        raise reader.error("the meta file must hold a JSON object", found=type(meta).__name__)
    if meta.get("isSequence") is None:
        raise reader.error(
            "isSequence is missing or null",
            hint="this is the empty version written when an export starts; wait for the export to finish",
        )
    is_sequence = reader.typed(meta, "isSequence", bool, "meta")
    raw_attrs = reader.typed(
        reader.typed(meta, "featureInfo", dict, "meta"), "attributes", list, "featureInfo"
    )
    attributes = [reader.attribute(i, a) for i, a in enumerate(raw_attrs)]
    raw_features = reader.typed(meta, "features", list, "meta")
    columns = _with_offsets([reader.column(i, f, attributes) for i, f in enumerate(raw_features)], attributes)
    raw_stats = meta.get("featureStats") or {}
    if not isinstance(raw_stats, dict):
        raise reader.error("featureStats must be an object", found=type(raw_stats).__name__)
    stats = {}
    for col in columns:
        if col.name in raw_stats:
            stats[col.name] = reader.stats(raw_stats[col.name], f"featureStats[{col.name!r}]")
        elif col.datatype == "nominal":
            raise reader.error(f"featureStats has no entry for nominal column {col.name!r}")
    target = meta.get("targetStats")
    seq_lengths = {
        k.split(".", 1)[1]: float(v)
        for k, v in meta.items()
        if k.startswith("sequLengths.") and isinstance(v, (int, float))
    }
    lines = meta.get("linesWritten", 0)
    if not isinstance(lines, int) or isinstance(lines, bool):
        raise reader.error("linesWritten must be an integer", found=repr(lines))
    return FeatureSpec(
        path=path,
        attributes=attributes,
        columns=columns,
        stats=stats,
        target=reader.stats(target, "targetStats") if target is not None else None,
        is_sequence=is_sequence,
        lines_written=lines,
        seq_lengths=seq_lengths,
    )


class _MetaReader:
    """Field access with errors that name the file and the offending key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, problem: str, **kw: Any) -> MetaFileError:
        return MetaFileError(problem, file=str(self.path), **kw)

    def typed(self, obj: dict, key: str, expected: type | tuple, where: str, default: Any = ...) -> Any:
        if key not in obj:
            if default is not ...:
                return default
            raise self.error(f"{where} has no key {key!r}")
        value = obj[key]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            names = (
                expected.__name__ if isinstance(expected, type) else "/".join(k.__name__ for k in expected)
            )
            raise self.error(f"{where}.{key} has the wrong type", expected=names, found=repr(value)[:80])
        return value

    def attribute(self, i: int, raw: Any) -> Attribute:
        where = f"featureInfo.attributes[{i}]"
        if not isinstance(raw, dict):
            raise self.error(f"{where} must be an object", found=type(raw).__name__)
        code = self.typed(raw, "featureCode", str, where, raw.get("code", ""))
        if code not in CODES:
            raise self.error(f"{where}.featureCode is unknown", expected="A, L or N", found=repr(code))
        datatype = _datatype(self.typed(raw, "datatype", str, where, "nominal"), self, where)
        window = None
        if code == "L":
            lo, hi = self.typed(raw, "from", int, where), self.typed(raw, "to", int, where)
            if hi < lo:
                raise self.error(f"{where} has from > to", found=f"from={lo}, to={hi}")
            window = (lo, hi)
        emb_train = self.typed(raw, "emb_train", (str, type(None)), where, "") or ""
        if emb_train not in EMB_TRAIN_MODES:
            raise self.error(
                f"{where}.emb_train is unknown", expected="yes, no, mapping or onehot", found=repr(emb_train)
            )
        shorten = self.typed(raw, "shorten", (str, type(None)), where, "") or ""
        if shorten not in SHORTEN_MODES:
            raise self.error(
                f"{where}.shorten is unknown", expected="left, right, both or middle", found=repr(shorten)
            )
        return Attribute(
            index=i,
            code=code,
            datatype=datatype,
            ann_type=self.typed(raw, "annType", (str, type(None)), where, "") or "",
            feature=self.typed(raw, "feature", (str, type(None)), where, "") or "",
            listsep=self.typed(raw, "listsep", (str, type(None)), where, None),
            window=window,
            ngram=self.typed(raw, "number", int, where, 1) if code == "N" else None,
            maxlen=self.typed(raw, "maxlen", int, where, 0),
            shorten=shorten,
            emb_id=self.typed(raw, "emb_id", (str, type(None)), where, "") or "",
            emb_dims=self.typed(raw, "emb_dims", int, where, 0),
            emb_train=emb_train,
            emb_minfreq=self.typed(raw, "emb_minfreq", int, where, 1),
            emb_file=self.typed(raw, "emb_file", (str, type(None)), where, "") or "",
        )

    def column(self, i: int, raw: Any, attributes: list[Attribute]) -> Column:
        where = f"features[{i}]"
        if not isinstance(raw, dict):
            raise self.error(f"{where} must be an object", found=type(raw).__name__)
        name = self.typed(raw, "name", str, where)
        attrid = self.typed(raw, "attrid", int, where)
        if not 0 <= attrid < len(attributes):
            raise self.error(
                f"{where}.attrid is out of range", expected=f"0..{len(attributes) - 1}", found=str(attrid)
            )
        attr = attributes[attrid]
        code = self.typed(raw, "kind", str, where, attr.code)
        datatype = _datatype(self.typed(raw, "datatype", str, where, attr.datatype), self, where)
        return Column(index=i, name=name, attribute=attrid, code=code, datatype=datatype, offset=None)

    def stats(self, raw: Any, where: str) -> Stats:
        if not isinstance(raw, dict):
            raise self.error(f"{where} must be an object", found=type(raw).__name__)
        counts = raw.get("stringCounts") or {}
        if not isinstance(counts, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in counts.values()
        ):
            raise self.error(f"{where}.stringCounts must map strings to integer counts")

        def number(key: str) -> float:
            value = raw.get(key, 0.0)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise self.error(f"{where}.{key} must be a finite number", found=repr(value))
            return float(value)

        return Stats(
            is_string=bool(raw.get("isString", bool(counts))),
            string_counts=counts,
            mean=number("mean"),
            variance=number("variance"),
            minimum=number("min"),
            maximum=number("max"),
            n=int(number("n")),
        )


def _datatype(value: str, reader: _MetaReader, where: str) -> str:
    """LF writes ``bool``; the old library knew ``boolean`` (lf-format.md §4.2, D4): accept both."""
    if value in ("bool", "boolean"):
        return "bool"
    if value in ("nominal", "numeric"):
        return value
    raise reader.error(f"{where}.datatype is unknown", expected="nominal, numeric or bool", found=repr(value))


def _with_offsets(columns: list[Column], attributes: list[Attribute]) -> list[Column]:
    """Window columns come one per offset, in ascending order (lf-format.md §4.1, §4.3): the
    k-th column of an L attribute has offset ``from + k``. Names are not parsed."""
    seen: dict[int, int] = {}
    result = []
    for col in columns:
        attr = attributes[col.attribute]
        if attr.window is None:
            result.append(col)
            continue
        k = seen.get(col.attribute, 0)
        seen[col.attribute] = k + 1
        result.append(replace(col, offset=attr.window[0] + k))
    return result
