"""Framing: how protocol messages are cut out of the input byte stream and written back.

Two framings carry the same messages: JSON lines (one UTF-8 JSON object per line) and a plain
stream of msgpack maps (lfengine/protocol/msgpack_framing.py). A reader yields, for every
message, either the decoded value or a FramingError instance; it never raises for bad input,
so one malformed message costs one error reply and nothing else. Only an unrecoverable
msgpack stream ends the iteration with a fatal error.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterator
from typing import Any, BinaryIO

from lfengine.files import jsontext
from lfengine.protocol import stream
from lfengine.protocol.stream import (
    FORMATS,
    ByteSource,
    MessageParseError,
    MessageTooLarge,
    StreamReader,
    decoded_too_large,
    detect_format,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 256 * 2**20


class JsonLinesReader(StreamReader):
    """One JSON value per line; blank lines are skipped, CRLF is accepted, NaN/Infinity are not."""

    format = "json"

    def __init__(self, source: ByteSource, max_message_bytes: int, prefix: bytes = b"") -> None:
        super().__init__(source, max_message_bytes, prefix)
        self.scanned_bytes = 0  # bytes searched for a line end: linear in the input, never more

    def __iter__(self) -> Iterator[Any]:
        buffer = bytearray(self._prefix)
        start = 0  # where the current line begins in buffer
        searched = 0  # buffer[start:searched] is known to hold no newline: never search it again
        while True:
            origin = max(start, searched)
            newline = buffer.find(b"\n", origin)
            self.scanned_bytes += (newline + 1 if newline >= 0 else len(buffer)) - origin
            if newline >= 0:
                line = buffer[start:newline]
                start = searched = newline + 1
                if len(line) > self._limit:
                    yield _too_large(len(line), self._limit)
                elif line.strip():
                    self.message_bytes = len(line)
                    yield decode_json_line(line)
                continue
            searched = len(buffer) - start
            del buffer[:start]
            start = 0
            if len(buffer) > self._limit:
                error, remainder = self._skip_rest_of_line(len(buffer))
                yield error
                if remainder is None:
                    return
                buffer = bytearray(remainder)
                searched = 0
                continue
            chunk = self._source.read()
            if not chunk:
                if buffer.strip():  # a last line without its newline still counts
                    self.message_bytes = len(buffer)
                    yield decode_json_line(buffer)
                return
            buffer += chunk

    def _skip_rest_of_line(self, seen: int) -> tuple[MessageTooLarge, bytes | None]:
        """Drop input up to the next newline without keeping it; return what follows it."""
        while True:
            chunk = self._source.read()
            if not chunk:
                return _too_large(seen, self._limit), None
            newline = chunk.find(b"\n")
            if newline >= 0:
                return _too_large(seen + newline, self._limit), chunk[newline + 1 :]
            seen += len(chunk)


def _too_large(size: int, limit: int) -> MessageTooLarge:
    return MessageTooLarge(
        f"message of {size} bytes exceeds the limit of {limit} bytes; it was skipped",
        size=size,
        limit=limit,
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (only finite numbers are allowed)")


def decode_json_line(line: bytes | bytearray) -> Any:
    """Strict JSON from one line of UTF-8; a MessageParseError instance (returned) when invalid,
    a DecodedTooLarge one when it could decode to more than MAX_DECODED_CONTAINERS arrays and
    objects (every '[' and '{' counted, those inside strings too: an upper bound, at C speed)."""
    limit = stream.MAX_DECODED_CONTAINERS
    if len(line) > limit and line.count(b"[") + line.count(b"{") > limit:  # shorter: cannot hold more
        return decoded_too_large(limit)
    try:
        text = bytes(line).decode("utf-8")
    except UnicodeDecodeError as exc:
        return MessageParseError(
            f"message is not valid UTF-8 (byte {exc.start}); send UTF-8 JSON", position=exc.start
        )
    try:
        return jsontext.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return MessageParseError(f"invalid JSON: {exc.msg} at character {exc.pos}", position=exc.pos)
    except (ValueError, RecursionError) as exc:  # NaN/Infinity, huge integers, deep nesting
        return MessageParseError(f"invalid JSON: {exc}")


def open_reader(stream: BinaryIO, fmt: str = "auto", max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES):
    """Detect the framing (blocking until the first significant byte) and return its reader.

    Returns None when the input ends before any message. The reader's ``format`` attribute
    names the framing, which replies must use too.
    """
    from lfengine.protocol.msgpack_framing import MsgpackReader  # msgpack is imported when used

    source = ByteSource(stream)
    chosen, prefix = detect_format(source, fmt)
    if chosen is None:
        return None
    reader_class = JsonLinesReader if chosen == "json" else MsgpackReader
    return reader_class(source, max_message_bytes, prefix)


def _finite_or_null(value: Any) -> Any:
    """A copy where NaN and infinities are None: JSON has no way to carry them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(item) for item in value]
    return value


def encode_json_line(message: Any) -> bytes:
    """Compact, ASCII-only, strict JSON plus a newline; non-finite floats become null."""
    try:
        text = json.dumps(message, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    except ValueError:
        log.warning("a reply contained NaN or an infinity; sent as null")
        text = json.dumps(_finite_or_null(message), ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.encode("ascii") + b"\n"


def encode_msgpack(message: Any) -> bytes:
    import msgpack

    try:
        return msgpack.packb(message, use_bin_type=True)
    except UnicodeEncodeError:
        # A lone surrogate (e.g. a client's path echoed in an error) has no UTF-8 form; msgpack
        # str must be UTF-8, so such characters are written as \\udXXX escapes instead.
        return msgpack.packb(message, use_bin_type=True, unicode_errors="backslashreplace")


class MessageWriter:
    """Writes framed messages, each whole and flushed, from any thread."""

    def __init__(self, stream: BinaryIO, fmt: str) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be json or msgpack, got {fmt!r}")
        self.format = fmt
        self.encode = encode_json_line if fmt == "json" else encode_msgpack
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        """Write one already encoded message; raises OSError when the reader has gone."""
        with self._lock:
            self._stream.write(data)
            self._stream.flush()

    def send(self, message: Any) -> None:
        self.write(self.encode(message))
