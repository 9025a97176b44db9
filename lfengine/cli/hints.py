"""Hints for the usual command-line mistakes: swapped arguments, a data file where the meta file
belongs, a labeled file without --labeled, sequences given to a classifier (and the reverse),
data from another export. Each check looks at what was given, never guesses from message text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lfengine.errors import DataError, DataLineError, LfEngineError, OptionError
from lfengine.files.paths import open_regular


def with_hint(error: LfEngineError, hint: str | None) -> LfEngineError:
    if hint is None:
        return error
    hinted = type(error).__new__(type(error))
    LfEngineError.__init__(hinted, f"{error.message}\n  hint: {hint}", **error.data)
    return hinted


def _is_model_dir(path: str | None) -> bool:
    return path is not None and (Path(path) / "model.json").is_file()


def check_model_argument(model_dir: str, data: str | None) -> None:
    """MODEL_DIR must be a directory written by train; say so plainly when it is something else."""
    path = Path(model_dir)
    if path.is_dir() or model_dir == "-":
        if model_dir == "-":
            raise OptionError("- (stdin) is for the data file; the model is a directory: MODEL_DIR DATA")
        return
    if path.is_file():
        if _is_model_dir(data):
            raise OptionError(
                f"{model_dir} is a file, not a model directory\n  hint: the arguments are swapped: "
                f"the model directory comes first ({data} {model_dir})"
            )
        raise OptionError(
            f"{model_dir} is a file, not a model directory\n  hint: give the directory that "
            "`lfengine train META MODEL_DIR` wrote (it holds model.json)"
        )


def check_meta_argument(meta: str, model_dir: str | None = None) -> None:
    """META must be an LF meta file: catch a model directory, swapped arguments and a data file."""
    if _is_model_dir(meta):
        swapped = model_dir is not None and model_dir.endswith(".meta.json")
        raise OptionError(
            f"{meta} is a model directory, not a meta file\n  hint: "
            + (
                f"the arguments are swapped: the meta file comes first ({model_dir} {meta})"
                if swapped
                else "describe MODEL_DIR shows a model; train needs the LF meta file (x.meta.json)"
            )
        )
    if model_dir is not None and model_dir.endswith(".meta.json") and not meta.endswith(".meta.json"):
        raise OptionError(
            f"{model_dir} is a meta file where the model directory belongs\n  hint: the arguments are "
            f"swapped: the meta file comes first ({model_dir} {meta})"
        )
    if meta.endswith(".data.json"):
        raise OptionError(
            f"{meta} is an LF data file\n  hint: give its meta file, {meta[: -len('.data.json')]}.meta.json; "
            "the data file next to it is found from there"
        )
    if meta == "-":
        raise OptionError(
            "a meta file cannot be read from stdin\n  hint: give the path of the x.meta.json file"
        )


#: The hint looks at the first non-blank line within this many bytes, never more.
HINT_READ_BYTES = 4 * 2**20


def first_record(path: str) -> Any:
    """The first record of a data file, for a hint; None when it is not a regular file (a device
    never ends, a FIFO blocks) or no complete line lies within HINT_READ_BYTES."""
    try:
        with open_regular(path) as handle:
            head = handle.read(HINT_READ_BYTES)
    except OSError:
        return None
    lines = head.split(b"\n")
    if len(head) == HINT_READ_BYTES:
        lines.pop()  # perhaps cut short
    for line in lines:
        if line.strip():
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def _is_target(target: Any, features: Any) -> bool:
    """A label or value, or one label per element of ``features``."""
    if isinstance(target, (str, int, float)) and not isinstance(target, bool):
        return True
    return (
        isinstance(target, list)
        and isinstance(features, list)
        and len(target) == len(features)
        and all(isinstance(t, str) for t in target)
    )


def _is_element_list(features: Any) -> bool:
    """A list of equally long lists: the shape of a sequence's elements."""
    return (
        isinstance(features, list)
        and bool(features)
        and all(isinstance(e, list) for e in features)
        and len({len(e) for e in features}) == 1
    )


def explain(codec: Any, record: Any, *, labeled: bool) -> str | None:
    """Why a record does not fit a model, when its shape tells."""
    width, sequence = codec.num_features, codec.is_sequence
    pair = (
        isinstance(record, list)
        and len(record) == 2
        and isinstance(record[0], list)  # features are a list: ["a", "b"] is two feature values
        and _is_target(record[1], record[0])
    )
    if not labeled and pair and width != 2:
        return "the lines look like [features, target]: this is a labeled file; add --labeled"
    if labeled and not pair:
        return (
            "the lines hold features only, no target: evaluating needs a labeled file "
            "([features, target] per line)"
        )
    features, target = (record[0], record[1]) if labeled else (record, None)
    if target is not None:
        holds_sequence = isinstance(target, list)
    else:
        holds_sequence = _is_element_list(features) and len(features) != width
    if holds_sequence and not sequence:
        return (
            f"the line holds a sequence of {len(features)} elements, but the model classifies instances: "
            "apply a sequence-tagging model, or export instances for this one"
        )
    if sequence and not holds_sequence:
        return (
            "the line holds one instance, but the model tags sequences: give sequence data "
            "(a list of elements per line)"
        )
    rows = features if sequence else [features]
    widths = {len(r) for r in rows if isinstance(r, list)}
    if widths and widths != {width}:
        return (
            f"the model was trained on {width} features per {'element' if sequence else 'instance'}, "
            f"this file has {', '.join(map(str, sorted(widths)))}: it comes from an export with another "
            "meta file (feature specification); export it with the model's feature specification"
        )
    return None


def at_line(error: DataError, file: str, line: int) -> DataLineError:
    """``error`` about an instance of a batch, located instead by the file and line it came from."""
    data = error.data
    return DataLineError(
        error.problem,
        file=file,
        line=line,
        feature=error.feature,
        expected=data.get("expected"),
        found=data.get("found"),
    )


@contextmanager
def explaining_lines(
    model: Any, file: str, numbered: list[tuple[int, Any]], *, labeled: bool
) -> Iterator[None]:
    """For a data error inside about one instance of a batch read from ``file`` (``numbered``:
    its (1-based line, record) pairs): name the file and line instead of the instance's index
    in the batch (counted from 0), and hint from the shape of that record."""
    try:
        yield
    except DataError as error:
        if error.index is None or not 0 <= error.index < len(numbered):
            raise with_hint(error, explain(model.codec, numbered[0][1], labeled=labeled)) from None
        line, record = numbered[error.index]
        raise with_hint(at_line(error, file, line), explain(model.codec, record, labeled=labeled)) from None


@contextmanager
def explaining_file(model: Any, path: str) -> Iterator[None]:
    """Add a hint to a data error raised while reading the labeled file ``path``."""
    try:
        yield
    except DataError as error:
        raise with_hint(error, explain(model.codec, first_record(path), labeled=True)) from None
