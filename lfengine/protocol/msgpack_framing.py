"""msgpack framing: a plain stream of msgpack maps, one per message, with no length prefix.

msgpack has no separator to skip to, so recovery works on the structure itself:

- A message that is structurally sound but cannot be decoded (invalid UTF-8, a non-string
  map key, an extension type, nesting too deep) or that is larger than the limit is skipped
  exactly, by walking its type headers without decoding or keeping it (ItemSkipper).
- Bytes that cannot start a message (the reserved byte 0xc1, or a top-level value that is not a
  map) lose the message boundary. The reader then looks for the next position where a complete
  JSON-RPC map ({"jsonrpc": "2.0", ...}) decodes, within one maximum message size; if there is
  none, the stream is declared corrupt (a fatal StreamCorrupt) and reading stops.

Every error is yielded before the reader blocks for more input, so a client waiting for its
reply always gets one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import msgpack

from lfengine.protocol import stream
from lfengine.protocol.stream import (
    DecodedTooLarge,
    FramingError,
    MessageParseError,
    MessageTooLarge,
    StreamCorrupt,
    StreamReader,
    decoded_too_large,
)

log = logging.getLogger(__name__)

_MAP_START = re.compile(rb"[\x80-\x8f\xde\xdf]")
# Items that are one byte long: fixints, nil, booleans, and the empty map, array and string.
_ONE_BYTE_ITEMS = re.compile(rb"[\x00-\x80\x90\xa0\xc0\xc2\xc3\xe0-\xff]+")
_CHUNK = 64 * 1024


def _no_extensions(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not supported")


class ContainerBudget:
    """Counts the arrays and maps decoded for one message, from inside the decoder (its list
    and object hooks), and stops decoding once there are more than the limit: what a message
    costs in memory is bounded before it is built, not measured after."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = stream.MAX_DECODED_CONTAINERS if limit is None else limit
        self.left = self.limit

    def count(self, value: Any) -> Any:
        self.left -= 1
        if self.left < 0:
            raise decoded_too_large(self.limit)
        return value

    def reset(self) -> None:
        """A message was decoded whole: the next one starts afresh."""
        self.left = self.limit


def new_unpacker(max_message_bytes: int, budget: ContainerBudget | None = None) -> msgpack.Unpacker:
    """An Unpacker that decodes protocol values only, refuses declared sizes above the limit and
    decodes no more arrays and maps than ``budget`` allows."""
    budget = budget or ContainerBudget()
    return msgpack.Unpacker(
        list_hook=budget.count,
        object_hook=budget.count,
        raw=False,
        strict_map_key=True,
        ext_hook=_no_extensions,
        timestamp=1,
        max_buffer_size=max_message_bytes + 2 * _CHUNK,
        max_str_len=max_message_bytes,
        max_bin_len=max_message_bytes,
        max_array_len=max_message_bytes,
        max_map_len=max_message_bytes // 2,
        max_ext_len=max_message_bytes,
    )


class CorruptByte(Exception):
    """The reserved byte 0xc1 where a type header must be; ``offset`` is in the fed chunk."""

    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


# How each first byte continues: ("skip", n) n more bytes; ("str", k, extra) a payload whose
# length is in the next k bytes after `extra` type bytes; ("array", k) / ("map", k) a
# container whose count is in the next k bytes; ("fixarray"|"fixmap"|"fixstr",) low bits.
def _header_table() -> list[tuple]:
    table: list[tuple] = [("skip", 0)] * 256
    for byte in range(0x80, 0x90):
        table[byte] = ("fixmap",)
    for byte in range(0x90, 0xA0):
        table[byte] = ("fixarray",)
    for byte in range(0xA0, 0xC0):
        table[byte] = ("fixstr",)
    table[0xC1] = ("corrupt",)
    sized = {0xC4: (1, 0), 0xC5: (2, 0), 0xC6: (4, 0), 0xC7: (1, 1), 0xC8: (2, 1), 0xC9: (4, 1)}
    sized |= {0xD9: (1, 0), 0xDA: (2, 0), 0xDB: (4, 0)}
    for byte, (length_bytes, extra) in sized.items():
        table[byte] = ("str", length_bytes, extra)
    fixed = {0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
    fixed |= {0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17}
    for byte, size in fixed.items():
        table[byte] = ("skip", size)
    table[0xDC], table[0xDD] = ("array", 2), ("array", 4)
    table[0xDE], table[0xDF] = ("map", 2), ("map", 4)
    return table


_HEADERS = _header_table()


class ItemSkipper:
    """Finds where one msgpack item ends by walking type headers; keeps no payload."""

    def __init__(self) -> None:
        self._items_left = 1
        self._skip = 0
        self._partial = b""  # a header split across chunks
        self.size = 0

    def feed(self, data: bytes) -> int | None:
        """Offset in ``data`` just past the item, or None when the item continues beyond it."""
        carried = len(self._partial)
        if carried:
            data = self._partial + data
            self._partial = b""
        try:
            end = self._walk(data)
        except CorruptByte as corrupt:
            raise CorruptByte(corrupt.offset - carried) from None
        if end is None:
            self.size += len(data) - carried
            return None
        self.size += end - carried
        return end - carried

    def _walk(self, data: bytes) -> int | None:
        i, n = 0, len(data)
        while True:
            if self._skip:
                step = min(self._skip, n - i)
                i += step
                self._skip -= step
                if self._skip:
                    return None
            if not self._items_left:
                return i
            if i >= n:
                return None
            run = _ONE_BYTE_ITEMS.match(data, i)
            if run is not None:  # a run of whole one-byte items, passed at C speed
                step = min(run.end() - i, self._items_left)
                i += step
                self._items_left -= step
                continue
            kind = _HEADERS[data[i]]
            name = kind[0]
            if name == "skip":
                self._items_left -= 1
                self._skip = kind[1]
                i += 1
            elif name in ("fixmap", "fixarray", "fixstr"):
                low = data[i] & (0x1F if name == "fixstr" else 0x0F)
                self._items_left += low * 2 if name == "fixmap" else low if name == "fixarray" else 0
                self._items_left -= 1
                self._skip = low if name == "fixstr" else 0
                i += 1
            elif name == "corrupt":
                raise CorruptByte(i)
            else:
                header = 1 + kind[1] + (kind[2] if name == "str" else 0)
                if n - i < header:
                    self._partial = bytes(data[i:])
                    return None
                count = int.from_bytes(data[i + 1 : i + 1 + kind[1]], "big")
                self._items_left -= 1
                if name == "str":
                    self._skip = count
                else:
                    self._items_left += count * 2 if name == "map" else count
                i += header


class MsgpackReader(StreamReader):
    """Yields decoded maps, arrays (batches, which the envelope refuses) and FramingError instances."""

    format = "msgpack"

    def __iter__(self) -> Iterator[Any]:
        data = self._prefix
        while data is not None:
            data = yield from self._decode_until_trouble(data)

    def _decode_until_trouble(self, data: bytes) -> Iterator[Any]:
        """Decode messages until end of input (returns None) or until a recovery finds the
        next message boundary (returns the bytes from there on)."""
        budget = ContainerBudget()
        unpacker = new_unpacker(self._limit, budget)
        mirror = bytearray()  # the bytes of the message in progress, for recovery
        mirror_base = 0  # unpacker offset of mirror[0]
        item_start = 0  # unpacker offset where the message in progress began
        while True:
            mirror += data
            try:
                unpacker.feed(data)
                for value in unpacker:
                    budget.reset()
                    end = unpacker.tell()
                    self.message_bytes = end - item_start
                    if end - item_start > self._limit:
                        yield _too_large(end - item_start, self._limit)
                    elif isinstance(value, list):
                        # A whole array decoded: a batch, answered -32600 like a JSON one
                        # (protocol.md §2.1); none of its elements runs.
                        item_start = end
                        yield value
                        continue
                    elif not isinstance(value, dict):
                        yield MessageParseError(
                            f"expected a msgpack map as message, found {type(value).__name__}"
                        )
                        return (yield from self._resync(bytes(mirror[item_start - mirror_base + 1 :])))
                    else:
                        item_start = end
                        yield value
                        continue
                    item_start = end
            except msgpack.BufferFull:
                pass  # reported just below: the message in progress is too large
            except DecodedTooLarge as exc:
                yield exc
                return (yield from self._skip_item(bytes(mirror[item_start - mirror_base :])))
            except (ValueError, msgpack.UnpackException) as exc:
                yield _decode_error(exc, self._limit)
                return (yield from self._skip_item(bytes(mirror[item_start - mirror_base :])))
            del mirror[: item_start - mirror_base]
            mirror_base = item_start
            if len(mirror) > self._limit:
                yield _too_large(None, self._limit)
                return (yield from self._skip_item(bytes(mirror)))
            data = self._source.read()
            if not data:
                if mirror:
                    yield MessageParseError(f"input ended inside a message ({len(mirror)} bytes)")
                return None

    def _skip_item(self, data: bytes) -> Iterator[Any]:
        """Skip exactly one (sound but unwanted) item; return the bytes after it."""
        skipper = ItemSkipper()
        while True:
            try:
                end = skipper.feed(data)
            except CorruptByte as corrupt:
                return (yield from self._resync(data[corrupt.offset + 1 :]))
            if end is not None:
                log.info("skipped a msgpack message of %d bytes", skipper.size)
                return data[end:]
            data = self._source.read()
            if not data:
                return None

    def _resync(self, data: bytes) -> Iterator[Any]:
        """Drop bytes until a complete JSON-RPC map decodes; yield it and return what follows.

        A candidate that is still incomplete when the buffered input runs out (garbage such as
        0x85 looks like the start of a map) must not hold up a complete request that follows it
        in the buffer: a client in lockstep would wait for that request's reply forever. So a
        later candidate that decodes completely from the bytes at hand wins; only when there is
        none is more input read for the earliest one.
        """
        buffer = bytearray(data)
        dropped = 0
        position = 0
        while True:
            match = _MAP_START.search(buffer, position)
            if match is None:
                dropped += len(buffer)
                buffer.clear()
                position = 0
            else:
                candidate = match.start()
                found = self._probe(buffer, candidate, read_more=False)
                if found is _INCOMPLETE:
                    later = self._complete_candidate(buffer, candidate + 1)
                    if later is not None:
                        candidate, found = later
                    else:
                        found = self._probe(buffer, candidate, read_more=True)
                if found is not None and found is not _INCOMPLETE:
                    message, end = found
                    log.warning("msgpack stream resynchronised after dropping %d bytes", dropped + candidate)
                    yield message
                    return bytes(buffer[end:])
                position = candidate + 1
                if position > _CHUNK:
                    del buffer[:position]
                    dropped += position
                    position = 0
            if dropped + position > self._limit:
                yield StreamCorrupt(
                    f"msgpack stream is corrupt: no message starts within {self._limit} bytes",
                    limit=self._limit,
                )
                return None
            if match is None:
                chunk = self._source.read()
                if not chunk:
                    return None
                buffer += chunk

    def _complete_candidate(self, buffer: bytearray, position: int) -> tuple[int, tuple[dict, int]] | None:
        """The first candidate at or after ``position`` that decodes from ``buffer`` alone."""
        while (match := _MAP_START.search(buffer, position)) is not None:
            found = self._probe(buffer, match.start(), read_more=False)
            if found is not None and found is not _INCOMPLETE:
                return match.start(), found
            position = match.start() + 1
        return None

    def _probe(self, buffer: bytearray, start: int, *, read_more: bool) -> Any:
        """Does a JSON-RPC map begin at ``start``? Returns (message, end offset), None, or, when
        the buffer ends inside the candidate and not ``read_more``, _INCOMPLETE.

        With ``read_more`` it reads more input (appended to ``buffer``) while the candidate is
        incomplete and within the size limit.
        """
        unpacker = new_unpacker(self._limit)
        fed = start
        while True:
            step_end = min(len(buffer), fed + 4096)
            try:
                unpacker.feed(bytes(buffer[fed:step_end]))
                fed = step_end
                message = unpacker.unpack()
            except msgpack.OutOfData:
                if fed < len(buffer):
                    continue
                if fed - start > self._limit:
                    return None
                if not read_more:
                    return _INCOMPLETE
                chunk = self._source.read()
                if not chunk:
                    return None
                buffer += chunk
                continue
            except (ValueError, msgpack.UnpackException, DecodedTooLarge):
                return None
            if isinstance(message, dict) and message.get("jsonrpc") == "2.0":
                return message, start + unpacker.tell()
            return None


_INCOMPLETE = object()


def _too_large(size: int | None, limit: int) -> MessageTooLarge:
    what = "message" if size is None else f"message of {size} bytes"
    return MessageTooLarge(
        f"{what} exceeds the limit of {limit} bytes; it was skipped", size=size, limit=limit
    )


def _decode_error(exc: Exception, limit: int) -> FramingError:
    if isinstance(exc, ValueError) and "exceeds max_" in str(exc):
        return _too_large(None, limit)
    if isinstance(exc, msgpack.StackError):
        return MessageParseError("msgpack message is nested too deeply")
    if isinstance(exc, msgpack.FormatError):
        return MessageParseError("invalid msgpack: reserved byte 0xc1")
    return MessageParseError(f"invalid msgpack message: {exc}")
