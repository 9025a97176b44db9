"""JSON-line framing cost against line size: it must grow linearly (issue 8, item 6).

One request line of 8, 16, 32 and 64 MiB (a JSON string of padding) is fed to the reader in the
64 KiB chunks a pipe delivers, through an in-memory stream, then the line is refused as too large
for a 32 MiB limit or decoded under a 128 MiB limit. Reported per size: CPU seconds to frame it
(``time.process_time``), CPU seconds per MiB, and the bytes the newline search scanned per input
byte. Linear framing keeps seconds per MiB flat and scans each byte once; the old reader, which
restarted the search at the line's start after every chunk, took 11 s for 64 MiB.

Run:  nice .venv/bin/python bench/bench_framing.py [--sizes 8,16,32,64]
      PYTHONPATH=/path/to/other/checkout python bench/bench_framing.py   (to compare a version)
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

if "lfengine" not in sys.modules:
    sys.path.append(str(Path(__file__).resolve().parent.parent))  # PYTHONPATH, if set, wins

from lfengine.protocol.framing import open_reader  # noqa: E402

MIB = 2**20


class Pipe(io.RawIOBase):
    """Hands out at most 64 KiB per read, as a pipe does."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data[self._pos : self._pos + min(len(buffer), 64 * 1024)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


def frame(size_mib: int, limit_mib: int) -> tuple[float, float, str]:
    padding = b"x" * (size_mib * MIB)
    line = b'{"jsonrpc":"2.0","id":1,"method":"status","params":{"p":"' + padding + b'"}}\n'
    reader = open_reader(
        Pipe(line + b'{"jsonrpc":"2.0","id":2,"method":"status"}\n'), "json", limit_mib * MIB
    )
    started = time.process_time()
    items = list(reader)
    seconds = time.process_time() - started
    scanned = getattr(reader, "scanned_bytes", None)
    per_byte = scanned / len(line) if scanned is not None else float("nan")
    return seconds, per_byte, type(items[0]).__name__


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8,16,32,64", help="line sizes in MiB")
    args = parser.parse_args()
    import lfengine

    print(f"lfengine from {Path(lfengine.__file__).parent}")
    print(f"{'MiB':>5} {'limit':>6} {'first item':>16} {'CPU s':>8} {'CPU s/MiB':>10} {'scanned/byte':>13}")
    for size in (int(s) for s in args.sizes.split(",")):
        for limit in (32, 128):
            seconds, per_byte, first = frame(size, limit)
            print(
                f"{size:>5} {limit:>6} {first:>16} {seconds:>8.3f} {seconds / size:>10.4f} {per_byte:>13.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
