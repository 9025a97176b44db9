"""A real engine process driven over its stdin/stdout, for the tests that talk the protocol."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack
from timeouts import scaled

REPO = Path(__file__).resolve().parent.parent
SERVE = (
    "import sys; from lfengine.serving.server import serve; "
    "sys.exit(serve(sys.stdin.buffer, sys.stdout.buffer{args}))"
)
TIMEOUT = scaled(20.0)


class Engine:
    """Drives one engine process; every read has a deadline so a silent engine fails the test."""

    def __init__(self, fmt: str, *, serve_args: str = "", prelude: str = "") -> None:
        self.fmt = fmt
        self.stderr = tempfile.TemporaryFile()
        code = prelude + SERVE.format(args=serve_args)
        self.process = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
        )
        self._buffer = b""
        self._unpacker = msgpack.Unpacker(raw=False)
        self._next_id = 1

    def encode(self, message: Any) -> bytes:
        if self.fmt == "json":
            return json.dumps(message).encode() + b"\n"
        return msgpack.packb(message)

    def send(self, message: Any) -> None:
        self.send_raw(self.encode(message))

    def send_raw(self, data: bytes) -> None:
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def request(self, method: str, params: Any = None, **extra: Any) -> dict:
        """Send one request and return its reply, checking that the id matches."""
        message = {"jsonrpc": "2.0", "id": self._next_id, "method": method, **extra}
        if params is not None:
            message["params"] = params
        self._next_id += 1
        self.send(message)
        reply = self.receive()
        assert reply["id"] == message["id"], reply
        return reply

    def _read_more(self, deadline: float) -> bytes:
        fd = self.process.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"no reply within {TIMEOUT} s; stderr: {self.error_output()}")
        return os.read(fd, 65536)

    def receive(self) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while True:
            if self.fmt == "json" and b"\n" in self._buffer:
                line, _, self._buffer = self._buffer.partition(b"\n")
                assert max(line, default=0) < 0x80, "replies must be ASCII-only"
                return json.loads(line)
            if self.fmt == "msgpack":
                for message in self._unpacker:
                    return message
            data = self._read_more(deadline)
            if not data:
                raise AssertionError(f"engine closed its output; stderr: {self.error_output()}")
            if self.fmt == "json":
                self._buffer += data
            else:
                self._unpacker.feed(data)

    def finish(self) -> tuple[int, list[dict]]:
        """Close stdin, collect every remaining reply, and return (exit code, replies)."""
        self.process.stdin.close()
        deadline = time.monotonic() + TIMEOUT
        rest = b""
        while data := self._read_more(deadline):
            rest += data
        if self.fmt == "json":
            lines = (self._buffer + rest).splitlines()
            replies = [json.loads(line) for line in lines]
        else:
            self._unpacker.feed(rest)
            replies = list(self._unpacker)
        return self.process.wait(timeout=TIMEOUT), replies

    def error_output(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stderr.close()
