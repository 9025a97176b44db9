"""The input byte stream: chunked reads, the framing errors, and which framing the stream uses.

Both readers (JSON lines in framing.py, msgpack in msgpack_framing.py) build on this module;
it knows nothing of either message format beyond the first byte that tells them apart.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import BinaryIO

from lfengine.errors import LfEngineError

log = logging.getLogger(__name__)

FORMATS = ("json", "msgpack")
READ_CHUNK_BYTES = 64 * 1024
JSON_WHITESPACE = b" \t\r\n"
UTF8_BOM = b"\xef\xbb\xbf"


class FramingError(LfEngineError):
    """A message could not be cut out of the stream or decoded. ``fatal``: the stream is lost."""

    fatal = False


class MessageParseError(FramingError):
    """The bytes of one message are not valid JSON / msgpack; the next message is readable."""


class MessageTooLarge(FramingError):
    """One message exceeds the configured size limit; it was skipped without being kept."""


#: Arrays and maps (objects) that one message may decode to. Each costs 56 bytes or more in
#: memory, while an empty one is a single byte on the wire: 40 MB of empty msgpack arrays
#: decoded to 3 GB. 4M is over a hundred times the elements of a 1000-sentence apply-batch.
MAX_DECODED_CONTAINERS = 2**22


class DecodedTooLarge(MessageTooLarge):
    """A message would decode to more arrays and maps than MAX_DECODED_CONTAINERS; skipped."""


def decoded_too_large(limit: int) -> DecodedTooLarge:
    return DecodedTooLarge(
        f"message holds more than {limit} arrays and objects, the most one message may decode to; "
        "it was skipped: send the instances in several requests",
        limit=limit,
    )


class StreamCorrupt(FramingError):
    """The msgpack stream could not be resynchronised; no further message can be read."""

    fatal = True


class ByteSource:
    """Chunked reads that return as soon as any input is available (no waiting for a full buffer).

    A stream with a file descriptor is read with os.read on that descriptor, bypassing the
    stream's buffer: a reader thread blocked inside a buffered stream holds its lock, and the
    interpreter aborts when it finalises sys.stdin under such a thread. Hence nothing may have
    been read through the stream's own buffer before.
    """

    def __init__(self, stream: BinaryIO, chunk_bytes: int = READ_CHUNK_BYTES) -> None:
        try:
            self._read = functools.partial(os.read, stream.fileno())
        except (AttributeError, OSError, ValueError):  # no descriptor, e.g. an in-memory stream
            self._read = getattr(stream, "read1", None) or stream.read
        self._chunk_bytes = chunk_bytes

    def read(self) -> bytes:
        """The next chunk of input; b"" at end of input (a read error counts as end of input)."""
        try:
            return self._read(self._chunk_bytes)
        except (OSError, ValueError) as exc:  # ValueError: the stream was closed under us
            log.warning("reading the input failed, treating it as end of input: %s", exc)
            return b""


def detect_format(source: ByteSource, fmt: str = "auto") -> tuple[str | None, bytes]:
    """Choose the framing from the first significant byte; return it and the bytes already read.

    A leading UTF-8 byte order mark is dropped for JSON. In ``auto`` mode leading JSON whitespace
    is dropped too, then '{' (or any other ASCII byte) selects JSON and any byte >= 0x80 (a
    msgpack map starts with 0x80-0x8f, 0xde or 0xdf) selects msgpack. ``None``: the input ended
    before a significant byte arrived.
    """
    if fmt not in (*FORMATS, "auto"):
        raise ValueError(f"format must be json, msgpack or auto, got {fmt!r}")
    if fmt == "msgpack":
        return fmt, b""
    pending = b""
    while len(pending) < len(UTF8_BOM) and UTF8_BOM.startswith(pending):
        chunk = source.read()  # the first bytes might be a byte order mark split across reads
        if not chunk:
            break
        pending += chunk
    if pending.startswith(UTF8_BOM):
        pending = pending[len(UTF8_BOM) :]
    if fmt == "json":
        return fmt, pending
    while True:
        significant = pending.lstrip(JSON_WHITESPACE)
        if significant:
            return ("json" if significant[0] < 0x80 else "msgpack"), significant
        pending = source.read()
        if not pending:
            return None, b""


class StreamReader:
    """A reader of one framing over a ByteSource: iterating yields messages and FramingErrors.

    ``prefix``: the bytes format detection already read; ``max_message_bytes``: the size
    beyond which a message is skipped (MessageTooLarge) without being kept.
    """

    format = ""

    def __init__(self, source: ByteSource, max_message_bytes: int, prefix: bytes = b"") -> None:
        self._source = source
        self._limit = max_message_bytes
        self._prefix = prefix
        self.message_bytes = 0  # the size on the wire of the message yielded last
