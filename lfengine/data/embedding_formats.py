"""The formats of pretrained embedding files, told apart by their content, not their name.

* GloVe text: ``word v1 ... vD`` per line, no header;
* fastText ``.vec`` / word2vec text: the same after a header line ``COUNT DIMS``;
* word2vec binary (``.bin``): the header line, then per word its UTF-8 bytes, a space and DIMS
  little-endian float32 (each record optionally ends with a newline);

each plain or gzip-compressed (recognised by the gzip magic bytes). A truncated file (fewer
vectors than its header promises, a gzip stream cut short, a binary record cut off) is an error
naming the file and the line or byte offset; in text files a malformed line is skipped and
counted, as before.
"""

from __future__ import annotations

import gzip
import io
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from lfengine.errors import EmbeddingsError

log = logging.getLogger(__name__)

_HEADER = re.compile(rb"^\s*([0-9]+)\s+([0-9]+)\s*$")
GZIP_MAGIC = b"\x1f\x8b"
#: Longest word a binary file may hold (bytes): longer means the file is not what it claims.
MAX_WORD_BYTES = 4096
FORMATS = "GloVe text, fastText .vec / word2vec text or word2vec binary, plain or gzip'd"
_BINARY_READ_ERRORS = (OSError, EOFError, gzip.BadGzipFile)


@dataclass
class Vectors:
    """What a reader found: words and rows in file order, the width, malformed entries."""

    words: list[str] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)
    dims: int | None = None
    skipped: int = 0
    first_skipped: str = ""  # where the first malformed entry is, for the warning
    format: str = "text"
    valid: int = 0  # well-formed entries, wanted or not

    def skip(self, where: str) -> None:
        self.skipped += 1
        if not self.first_skipped:
            self.first_skipped = where

    def add(self, word: str, vector: np.ndarray, wanted: set[str] | None) -> None:
        self.valid += 1
        if wanted is not None and word not in wanted:
            return
        self.words.append(word)
        self.rows.append(vector)


def _opener(path: Path) -> Callable[[], BinaryIO]:
    """A function opening ``path`` for reading bytes, decompressing it if it is gzip'd."""
    with open(path, "rb") as f:
        compressed = f.read(2) == GZIP_MAGIC
    return (lambda: gzip.open(path, "rb")) if compressed else (lambda: open(path, "rb"))


def read_vectors(path: Path, wanted: set[str] | None) -> Vectors:
    """Read any supported format; keep only ``wanted`` words when given."""
    try:
        opener = _opener(path)
        with opener() as stream:
            first = stream.readline(MAX_WORD_BYTES)
            header = _HEADER.match(first)
            second = stream.readline(64 + 32 * int(header.group(2))) if header else b""
    except _BINARY_READ_ERRORS as exc:
        raise EmbeddingsError("cannot read embeddings file", file=str(path), found=str(exc)) from None
    if header and _is_binary(second, int(header.group(2))):
        count, dims = int(header.group(1)), int(header.group(2))
        found = _read_binary(path, opener, len(first), count, dims, wanted)
    else:
        found = _read_text(path, opener, wanted)
    if found.skipped and not found.valid:
        raise EmbeddingsError(
            "no vector in the embeddings file is well-formed",
            file=str(path),
            found=f"{found.skipped} malformed entries, the first at {found.first_skipped}",
            expected=FORMATS,
        )
    return found


def _is_binary(line: bytes, dims: int) -> bool:
    """Whether the record after a header is word2vec binary: not a line of a word and ``dims``
    numbers, and not clean text (binary floats hold control bytes or invalid UTF-8)."""
    try:
        fields = line.decode("utf-8").split()
        np.asarray(fields[1:], dtype=np.float32)
        if len(fields) == dims + 1:
            return False
    except (UnicodeDecodeError, ValueError):
        return True
    return any(byte < 0x20 and byte not in b"\t\n\r" for byte in line)


def _read_text(path: Path, opener: Callable[[], BinaryIO], wanted: set[str] | None) -> Vectors:
    found = Vectors()
    promised = None
    lineno = 0
    try:
        with opener() as raw, io.TextIOWrapper(raw, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if lineno == 1 and _HEADER.match(line.encode("utf-8")):
                    promised, found.dims = (int(n) for n in line.split())
                    continue
                fields = line.split()
                if not fields:
                    continue
                if found.dims is None:
                    found.dims = len(fields) - 1
                    if found.dims < 1:
                        raise EmbeddingsError("first vector line has no numbers", file=str(path), line=lineno)
                if len(fields) != found.dims + 1:
                    found.skip(f"line {lineno}: {len(fields) - 1} numbers, not {found.dims}")
                    continue
                try:
                    vector = np.asarray(fields[1:], dtype=np.float32)
                except ValueError:
                    found.skip(f"line {lineno}: not a number")
                    continue
                if not np.all(np.isfinite(vector)):
                    found.skip(f"line {lineno}: not finite")
                    continue
                found.add(fields[0], vector, wanted)
    except UnicodeDecodeError as exc:
        raise EmbeddingsError(
            "embeddings file is neither UTF-8 text nor word2vec binary",
            file=str(path),
            line=lineno + 1,
            found=str(exc),
            expected=FORMATS,
        ) from None
    except (OSError, EOFError) as exc:
        raise EmbeddingsError(
            "cannot read embeddings file (truncated or damaged?)",
            file=str(path),
            found=f"{exc} after line {lineno}",
        ) from None
    if promised is not None:
        vectors = lineno - 1
        if vectors < promised:
            raise EmbeddingsError(
                "embeddings file is truncated",
                file=str(path),
                line=lineno,
                found=f"{vectors} vector lines, but its header promises {promised}",
                hint="download or unpack the file again",
            )
    return found


def _read_binary(
    path: Path,
    opener: Callable[[], BinaryIO],
    header_bytes: int,
    count: int,
    dims: int,
    wanted: set[str] | None,
) -> Vectors:
    found = Vectors(dims=dims, format="word2vec binary")
    width = 4 * dims
    offset = header_bytes

    def truncated(what: str, index: int, start: int) -> EmbeddingsError:
        return EmbeddingsError(
            "embeddings file is truncated",
            file=str(path),
            found=f"{what} of record {index + 1} of {count}, which starts at byte {start} (uncompressed)",
            hint="download or unpack the file again",
        )

    try:
        with opener() as f:
            f.read(header_bytes)
            for index in range(count):
                start, word = offset, bytearray()
                while True:
                    byte = f.read(1)
                    offset += len(byte)
                    if not byte:
                        raise truncated("end of file in the word", index, start)
                    if byte == b" ":
                        break
                    if byte == b"\n" and not word:  # the newline that ends the previous record
                        start = offset
                    else:
                        word += byte
                    if len(word) > MAX_WORD_BYTES:
                        raise EmbeddingsError(
                            "malformed word2vec binary file: a word longer than "
                            f"{MAX_WORD_BYTES} bytes (is it really word2vec binary?)",
                            file=str(path),
                            found=f"record {index + 1}, which starts at byte {start}",
                        )
                data = f.read(width)
                offset += len(data)
                if len(data) < width:
                    raise truncated(f"{len(data)} of {width} vector bytes", index, start)
                where = f"record {index + 1} at byte {start}"
                vector = np.frombuffer(data, dtype="<f4").astype(np.float32)
                try:
                    text = word.decode("utf-8").strip()
                except UnicodeDecodeError:
                    found.skip(f"{where}: the word is not UTF-8")
                    continue
                if not text or not np.all(np.isfinite(vector)):
                    found.skip(f"{where}: empty word or non-finite number")
                    continue
                found.add(text, vector, wanted)
    except _BINARY_READ_ERRORS as exc:
        raise EmbeddingsError(
            "cannot read embeddings file (truncated or damaged?)",
            file=str(path),
            found=f"{exc} near byte {offset} (uncompressed)",
        ) from None
    return found
