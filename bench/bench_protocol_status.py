"""Round-trip latency of `status` through a real engine subprocess, in lockstep.

One request is written, its reply read, then the next is written: this is the floor of the
protocol's per-request cost (pipe + framing + envelope + dispatch), with no model involved.
Run: .venv/bin/python bench/bench_protocol_status.py [--requests 2000] [--format json|msgpack]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import msgpack

REPO = Path(__file__).resolve().parent.parent
ENGINE = "import sys; from lfengine.server import serve; sys.exit(serve(sys.stdin.buffer, sys.stdout.buffer))"
TARGET_P50_MS = 0.2


class LockstepClient:
    """Writes one framed request, reads exactly one framed reply, on raw pipe descriptors."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.process = subprocess.Popen(
            [sys.executable, "-c", ENGINE], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self._out = self.process.stdin.fileno()
        self._in = self.process.stdout.fileno()
        self._buffer = b""
        self._unpacker = msgpack.Unpacker(raw=False)

    def encode(self, message: dict) -> bytes:
        if self.fmt == "json":
            return json.dumps(message, separators=(",", ":")).encode() + b"\n"
        return msgpack.packb(message)

    def call(self, payload: bytes) -> dict:
        os.write(self._out, payload)
        if self.fmt == "json":
            while b"\n" not in self._buffer:
                self._buffer += os.read(self._in, 65536)
            line, _, self._buffer = self._buffer.partition(b"\n")
            return json.loads(line)
        while True:
            for message in self._unpacker:
                return message
            self._unpacker.feed(os.read(self._in, 65536))

    def close(self) -> int:
        self.process.stdin.close()
        return self.process.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--format", choices=("json", "msgpack"), default="json")
    args = parser.parse_args()

    client = LockstepClient(args.format)
    init = client.call(client.encode({"jsonrpc": "2.0", "id": 0, "method": "init", "params": {}}))
    assert "result" in init, init
    payloads = [
        client.encode({"jsonrpc": "2.0", "id": i, "method": "status"})
        for i in range(1, args.warmup + args.requests + 1)
    ]
    times = []
    for i, payload in enumerate(payloads):
        start = time.perf_counter()
        reply = client.call(payload)
        elapsed = time.perf_counter() - start
        if reply.get("id") != i + 1 or "result" not in reply:
            raise SystemExit(f"unexpected reply to request {i + 1}: {reply}")
        if i >= args.warmup:
            times.append(elapsed * 1000)
    exit_code = client.close()

    times.sort()
    p50 = statistics.median(times)
    p90 = times[int(len(times) * 0.9)]
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"status round trip, {args.format} framing, {len(times)} requests in lockstep")
    print(f"  p50 {p50:.3f} ms   p90 {p90:.3f} ms   p99 {p99:.3f} ms   max {times[-1]:.3f} ms")
    print(f"  target p50 < {TARGET_P50_MS} ms: {'met' if p50 < TARGET_P50_MS else 'NOT met'}")
    print(f"  engine exit code after end of input: {exit_code}")
    return 0 if exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
