"""Framing: format detection, JSON lines, msgpack stream, size limits, recovery, writers."""

from __future__ import annotations

import io
import json
import random

import msgpack
import pytest

from lfengine.protocol.framing import MessageWriter, encode_json_line, open_reader
from lfengine.protocol.msgpack_framing import ItemSkipper
from lfengine.protocol.stream import (
    ByteSource,
    FramingError,
    MessageParseError,
    MessageTooLarge,
    StreamCorrupt,
    detect_format,
)

STATUS = {"jsonrpc": "2.0", "id": 1, "method": "status"}
PACKED = msgpack.packb(STATUS)


class Trickle(io.RawIOBase):
    """A stream that hands out its bytes a few at a time, as a pipe may."""

    def __init__(self, data: bytes, step: int = 3) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data[self._pos : self._pos + min(self._step, len(buffer))]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


def read_all(data: bytes, fmt: str = "auto", limit: int = 4096, step: int | None = None):
    stream = Trickle(data, step) if step else io.BytesIO(data)
    reader = open_reader(stream, fmt, limit)
    return None if reader is None else (reader.format, list(reader))


def kinds(items: list) -> list:
    """Messages as they are, errors as their class name."""
    return [type(item).__name__ if isinstance(item, FramingError) else item for item in items]


# --- detection --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"a":1}\n', "json"),
        (b'\r\n \t{"a":1}\n', "json"),
        (b'\xef\xbb\xbf{"a":1}\n', "json"),
        (b"[1]\n", "json"),  # not a request, but JSON text: answered as an invalid request
        (PACKED, "msgpack"),
        (b"\n  " + PACKED, "msgpack"),
        (msgpack.packb({str(i): i for i in range(20)}), "msgpack"),  # map16 header 0xde
    ],
)
def test_format_is_detected_from_the_first_significant_byte(data, expected):
    fmt, items = read_all(data)
    assert fmt == expected
    assert items and not isinstance(items[0], FramingError)


def test_no_input_or_only_whitespace_means_no_reader():
    assert read_all(b"") is None
    assert read_all(b" \n\r\n\t") is None


def test_byte_order_mark_split_across_reads_is_dropped():
    fmt, items = read_all(b'\xef\xbb\xbf{"a":1}\n', step=1)
    assert (fmt, items) == ("json", [{"a": 1}])


def test_forced_format_skips_detection():
    assert detect_format(ByteSource(io.BytesIO(PACKED)), "msgpack") == ("msgpack", b"")
    fmt, items = read_all(PACKED, fmt="json")
    assert fmt == "json" and kinds(items) == ["MessageParseError"]
    with pytest.raises(ValueError):
        detect_format(ByteSource(io.BytesIO(b"")), "xml")


# --- JSON lines -------------------------------------------------------------------------------


def test_json_lines_with_crlf_blank_lines_and_a_last_line_without_newline():
    data = b'{"a":1}\r\n\r\n   \n{"b":[1,2.5,"\\u00e9"]}\n{"c":null}'
    assert read_all(data)[1] == [{"a": 1}, {"b": [1, 2.5, "é"]}, {"c": None}]


@pytest.mark.parametrize("step", [None, 1, 5])
def test_bad_json_lines_are_reported_and_the_next_line_is_read(step):
    data = b'{bad\n{"n": NaN}\n{"n": -Infinity}\n\xff\xfe\n{"ok":1}\n' + b"[" * 100_000 + b"\n{"
    items = read_all(data, limit=200_000, step=step)[1]
    assert kinds(items) == ["MessageParseError"] * 4 + [{"ok": 1}, "MessageParseError", "MessageParseError"]
    assert items[0].data["position"] == 1
    assert "NaN" in items[1].message
    assert "UTF-8" in items[3].message


@pytest.mark.parametrize("step", [None, 7])
def test_oversized_json_line_is_skipped_without_losing_the_next(step):
    big = b'{"x":"' + b"a" * 300_000 + b'"}'
    data = b'{"first":1}\n' + big + b'\n{"after":2}\n' + big  # the last one ends without newline
    items = read_all(data, limit=2048, step=step)[1]
    assert kinds(items) == [{"first": 1}, "MessageTooLarge", {"after": 2}, "MessageTooLarge"]
    assert items[1].data == {"size": len(big), "limit": 2048}


def test_line_of_exactly_the_limit_is_accepted():
    line = b'{"x":"' + b"a" * (2048 - 8) + b'"}'
    assert len(line) == 2048
    assert read_all(line + b"\n", limit=2048)[1] == [{"x": "a" * 2040}]


# --- msgpack ----------------------------------------------------------------------------------


@pytest.mark.parametrize("step", [None, 1, 3, 13])
def test_msgpack_messages_split_anywhere_are_reassembled(step):
    messages = [
        STATUS,
        {"jsonrpc": "2.0", "id": "x", "method": "apply-batch", "params": {"b": b"\x00", "f": 0.5}},
    ]
    fmt, items = read_all(b"".join(msgpack.packb(m) for m in messages * 3), step=step)
    assert fmt == "msgpack" and items == messages * 3


@pytest.mark.parametrize(
    "bad",
    [
        b"\x81\xa1a\xa2\xff\xfe",  # invalid UTF-8 in a string
        b"\x81\x01\x02",  # integer map key
        msgpack.packb({"e": msgpack.ExtType(5, b"abc")}),  # extension type
        b"\x81\xa1a" + b"\x91" * 2000 + b"\x01",  # nested too deeply
    ],
)
@pytest.mark.parametrize("step", [None, 2])
def test_undecodable_msgpack_message_is_skipped_exactly(bad, step):
    assert kinds(read_all(PACKED + bad + PACKED, step=step)[1]) == [STATUS, "MessageParseError", STATUS]


@pytest.mark.parametrize(
    "big",
    [
        {"jsonrpc": "2.0", "id": 2, "method": "x", "params": {"s": "a" * 100_000}},  # one big string
        {"jsonrpc": "2.0", "id": 2, "method": "x", "params": {"v": [0.5] * 20_000}},  # many small values
        {"jsonrpc": "2.0", "id": 2, "method": "x", "params": {"v": [1] * 5000}},  # array header over limit
    ],
)
@pytest.mark.parametrize("step", [None, 1000])
def test_oversized_msgpack_message_is_skipped_and_the_stream_stays_in_sync(big, step):
    items = read_all(PACKED + msgpack.packb(big) + PACKED, limit=4096, step=step)[1]
    assert kinds(items) == [STATUS, "MessageTooLarge", STATUS]
    assert items[1].data["limit"] == 4096


@pytest.mark.parametrize("step", [None, 1])
def test_corrupt_msgpack_bytes_are_reported_then_the_stream_resynchronises(step):
    garbage = b"\xc1\xc1\x85\x01 not msgpack"  # 0x85 looks like a map start but is no request
    items = read_all(PACKED + garbage + PACKED + b"\x05" + PACKED, step=step)[1]
    assert kinds(items) == [STATUS, "MessageParseError", STATUS, "MessageParseError", STATUS]


class Blocked(io.RawIOBase):
    """A pipe whose writer waits for a reply: its bytes, then any further read is a hang."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self._data:
            raise AssertionError("the reader blocked for more input with a whole request in hand")
        chunk, self._data = self._data[: len(buffer)], self._data[len(buffer) :]
        buffer[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize(
    "garbage",
    [
        bytes.fromhex("cb7fe1ccf385ebc8a0"),  # a float: its bytes hold 0x85, a fixmap of 5 pairs
        b"\x05\xde\xff\xff",  # a map16 header promising 65535 pairs
        b"\xc1\x8f",
    ],
)
def test_msgpack_resync_does_not_wait_on_garbage_that_looks_like_an_unfinished_map(garbage):
    """Found by the protocol fuzz (tests/test_reliability.py): after a value that is not a map,
    the resynchronisation probed a 0x85 inside the garbage, which swallowed the next request
    while waiting for more input; a client in lockstep then waited for its reply forever."""
    reader = open_reader(Blocked(PACKED + garbage + PACKED), "msgpack", 4096)
    items = iter(reader)
    assert kinds([next(items), next(items), next(items)]) == [STATUS, "MessageParseError", STATUS]


@pytest.mark.parametrize("step", [None, 5])
def test_a_msgpack_array_is_one_batch_message_like_a_json_array(step):
    """protocol.md §2.1: a batch is refused as a whole (the envelope answers -32600); the
    requests inside it must not surface as messages of their own."""
    other = {**STATUS, "id": 2}
    items = read_all(msgpack.packb([STATUS, other]) + msgpack.packb([]) + PACKED, step=step)[1]
    assert kinds(items) == [[STATUS, other], [], STATUS]
    json_items = read_all(json.dumps([STATUS, other]).encode() + b"\n" + json.dumps(STATUS).encode())[1]
    assert kinds(json_items) == kinds(items)[:1] + [STATUS]


def test_json_line_framing_scans_each_byte_once():
    """Finding the end of a line of N bytes that arrives in many chunks must cost O(N), not
    O(N^2) (the search used to restart at the line's start after every chunk)."""
    line = json.dumps({**STATUS, "params": {"padding": "x" * (2 * 2**20)}}).encode()
    data = line + b"\n" + json.dumps(STATUS).encode() + b"\n"
    reader = open_reader(Trickle(data, 4096), "json", 4 * 2**20)
    assert [item["id"] for item in reader] == [1, 1]
    assert reader.scanned_bytes <= len(data), (reader.scanned_bytes, len(data))


def test_json_sent_to_a_msgpack_engine_ends_in_an_unrecoverable_error():
    data = PACKED + json.dumps(STATUS).encode() * 200
    items = read_all(data, fmt="msgpack", limit=2048)[1]
    assert kinds(items) == [STATUS, "MessageParseError", "StreamCorrupt"]
    assert items[-1].fatal and isinstance(items[-1], StreamCorrupt)


def test_input_ending_inside_a_msgpack_message_is_reported():
    assert kinds(read_all(PACKED + PACKED[:7])[1]) == [STATUS, "MessageParseError"]


def test_item_skipper_finds_the_end_of_any_msgpack_value():
    rnd = random.Random(7)

    def value(depth: int = 0):
        choice = rnd.randrange(9 if depth < 4 else 6)
        return [
            lambda: None,
            lambda: rnd.choice([True, False]),
            lambda: rnd.choice([rnd.randrange(-(2**63), 2**64), rnd.randrange(-40, 200)]),
            lambda: rnd.random(),
            lambda: "é" * rnd.choice([0, 5, 40, 300, 70_000]),
            lambda: bytes(rnd.choice([0, 5, 300, 70_000])),
            lambda: [value(depth + 1) for _ in range(rnd.choice([0, 3, 20]))],
            lambda: {str(i): value(depth + 1) for i in range(rnd.choice([0, 3, 20]))},
            lambda: msgpack.ExtType(3, b"x" * rnd.choice([1, 2, 4, 8, 16, 3, 300, 70_000])),
        ][choice]()

    for _ in range(300):
        packed = msgpack.packb(value())
        data = packed + b"TAIL"
        step = rnd.choice([1, 2, 5, 64, len(data)])
        skipper, end = ItemSkipper(), None
        for pos in range(0, len(data), step):
            offset = skipper.feed(data[pos : pos + step])
            if offset is not None:
                end = pos + offset
                break
        assert end == len(packed)
        assert skipper.size == len(packed)


# --- writers ----------------------------------------------------------------------------------


def test_json_writer_emits_one_ascii_line_of_strict_json():
    data = encode_json_line({"label": "é\n€", "conf": 1.0, "bad": [float("nan"), float("inf")]})
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert max(data) < 0x80
    assert json.loads(data) == {"label": "é\n€", "conf": 1.0, "bad": [None, None]}
    assert b'"conf":1.0' in data  # a float stays a float for Java's Double casts


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_writer_output_reads_back_through_the_reader(fmt):
    out = io.BytesIO()
    writer = MessageWriter(out, fmt)
    messages = [STATUS, {"jsonrpc": "2.0", "id": 2, "result": {"labels": ["a", "ü"], "p": [0.25, 0.75]}}]
    for message in messages:
        writer.send(message)
    reader_format, items = read_all(out.getvalue())
    assert reader_format == fmt and items == messages


def test_errors_carry_their_recoverability():
    assert not MessageParseError("x").fatal and not MessageTooLarge("x").fatal
    assert StreamCorrupt("x").fatal


def test_msgpack_replies_can_carry_a_clients_lone_surrogate():
    """An error echoing a path such as "a\\ud800b" (valid in a JSON request) must still be
    writable as msgpack, whose strings are UTF-8: the character is escaped."""
    from lfengine.protocol.framing import encode_msgpack

    decoded = msgpack.unpackb(encode_msgpack({"message": "bad path a\ud800b"}), raw=False)
    assert decoded == {"message": "bad path a\\ud800b"}
