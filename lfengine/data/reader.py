"""Read an LF data file once into encoded arrays (lf-format.md §2.2, §6.3).

Lines are parsed and encoded in chunks, so the parsed JSON of the whole file never sits in
memory at once. Every bad line is a DataLineError with the file and 1-based line number; with
``skip_bad_lines`` it is logged and counted instead, never silently turned into an instance.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from lfengine.data.codec import Codec
from lfengine.data.encoding import Encoded, RecordError, encode_records
from lfengine.errors import DataLineError
from lfengine.files import jsontext
from lfengine.files.paths import open_regular

log = logging.getLogger(__name__)
CHUNK_LINES = 20_000


@dataclass
class ReadResult:
    data: Encoded
    lines: int  # non-blank lines read
    skipped: int  # bad lines skipped (skip_bad_lines only)


def read_data(
    codec: Codec, path: str | Path, *, labeled: bool = True, skip_bad_lines: bool = False
) -> ReadResult:
    """Parse, validate and encode every line of ``path``."""
    name = str(path)
    parts: list[Encoded] = []
    lines = skipped = 0
    chunk: list = []
    numbers: list[int] = []
    for lineno, record in _parsed_lines(path, skip_bad_lines):
        lines += 1
        if record is _BAD:
            skipped += 1
            continue
        chunk.append(record)
        numbers.append(lineno)
        if len(chunk) >= CHUNK_LINES:
            skipped += _encode_chunk(codec, chunk, numbers, name, labeled, skip_bad_lines, parts)
            chunk, numbers = [], []
    if chunk:
        skipped += _encode_chunk(codec, chunk, numbers, name, labeled, skip_bad_lines, parts)
    if lines == 0:
        raise DataLineError("data file is empty", file=name, hint="did the LF export write any instance?")
    if not parts:
        raise DataLineError(f"no usable line in the data file ({skipped} bad lines skipped)", file=name)
    if skipped:
        log.warning("%s: skipped %d bad lines of %d", name, skipped, lines)
    return ReadResult(Encoded.concat(parts), lines, skipped)


_BLANK = object()
_BAD = object()


def _parsed_lines(path: str | Path, skip: bool) -> Iterator[tuple[int, object]]:
    """(1-based line number, parsed JSON or _BAD) for every non-blank line of a data file."""
    name = str(path)
    try:
        # "-" is stdin (not closed when done); its lines are numbered like a file's.
        handle = nullcontext(sys.stdin.buffer) if name == "-" else open_regular(path)
    except FileNotFoundError:
        raise DataLineError(
            "data file not found",
            file=name,
            hint="check the path; a training data file sits next to its meta file",
        ) from None
    except OSError as exc:
        raise DataLineError("cannot read data file", file=name, found=exc.strerror) from None
    with handle as lines:
        for lineno, raw in enumerate(lines, 1):
            record = _parse_line(raw, name, lineno, skip)
            if record is not _BLANK:
                yield lineno, record


def _parse_line(raw: bytes, name: str, lineno: int, skip: bool) -> object:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _bad(
            DataLineError(
                "line is not valid UTF-8",
                file=name,
                line=lineno,
                # the column in characters, as an editor shows it (exc.start counts bytes)
                found=f"byte 0x{raw[exc.start]:02x} at column {len(raw[: exc.start].decode('utf-8')) + 1}",
            ),
            skip,
        )
    if not text.strip():
        return _BLANK  # blank lines are not instances (lf-format.md §2.2)
    try:
        return jsontext.loads(text)
    except json.JSONDecodeError as exc:
        return _bad(
            DataLineError(
                "line is not valid JSON",
                file=name,
                line=lineno,
                found=f"{exc.msg} at column {exc.colno}",
                hint="a truncated or hand-edited file?",
            ),
            skip,
        )
    except RecursionError:
        return _bad(DataLineError("line nests too deeply", file=name, line=lineno), skip)


def _bad(error: DataLineError, skip: bool) -> object:
    if not skip:
        raise error
    log.warning("skipping: %s", error.message)
    return _BAD


def _encode_chunk(
    codec: Codec,
    chunk: list,
    numbers: list[int],
    name: str,
    labeled: bool,
    skip: bool,
    parts: list[Encoded],
) -> int:
    """Encode a chunk; in skip mode drop each bad record and retry. Returns records skipped."""
    skipped = 0
    while chunk:
        try:
            parts.append(
                encode_records(
                    codec, chunk, labeled=labeled, locate=lambda i: {"file": name, "line": numbers[i]}
                )
            )
            return skipped
        except RecordError as exc:
            if not skip:
                raise
            log.warning("skipping: %s", exc.message)
            del chunk[exc.record], numbers[exc.record]
            skipped += 1
    return skipped


def encode_instances(codec: Codec, instances: list, *, labeled: bool = False) -> Encoded:
    """Encode a batch sent for application; errors name the instance's index in the batch."""
    if not isinstance(instances, list):
        raise DataLineError("instances must be a list", found=type(instances).__name__)
    return encode_records(codec, instances, labeled=labeled, locate=lambda i: {"index": i})


def read_records(
    path: str | Path, *, labeled: bool, chunk_lines: int = 1000, numbered: bool = False
) -> Iterator[list]:
    """Yield lists of parsed records of a data file (for applying a model to a file); with
    ``numbered``, of (1-based line number, record) pairs, so that errors can name the line."""
    chunk: list = []
    for lineno, record in _parsed_lines(path, False):
        if labeled and (type(record) is not list or len(record) != 2):
            raise DataLineError("a labeled record must be [features, target]", file=str(path), line=lineno)
        chunk.append((lineno, record) if numbered else record)
        if len(chunk) >= chunk_lines:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def unseen_gold_labels(codec: Codec, path: str | Path) -> list[str]:
    """The gold label strings of a labeled data file that the model's label set lacks, in order of
    first appearance: ``evaluate`` counts them as errors (the model can never predict them, as on
    new documents with a rare label) instead of refusing the file."""
    if codec.task == "regression":
        return []
    known, unseen = set(codec.labels), {}
    for chunk in read_records(path, labeled=True):
        for _, target in chunk:
            for label in target if codec.is_sequence and type(target) is list else (target,):
                if type(label) is str and label not in known:
                    unseen[label] = None
    return list(unseen)
