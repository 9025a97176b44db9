"""How soon a protocol ``cancel`` ends a training: during the classical model's fit, and mid-epoch.

    python bench/bench_cancel.py [--sentences 50000] [--after 2] [--json FILE]

A made-up polarity export (bench/polarity_data.py) is trained by a real engine process
(``python -m lfengine``, one thread) with log notifications on. ``fit``: the cancel is sent
``--after`` seconds after the engine logs that the data are read (the text classifier's linear
model, ``linear_text``, is then being fitted: 50 CPU s at 50,000 sentences, bench_linear_fit.py);
``epoch``: after the first progress notification. The table gives the seconds from the cancel to
the train response, what the response says, and the epochs it ran. protocol.md §5.7 promises
that a cancel takes effect at once.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.polarity_data import write_polarity_corpus  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
#: the trainer's log line once the data are read and the network built, before any fitting
READY = "training on"


class _Engine:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lfengine"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def send(self, message: dict) -> None:
        self.process.stdin.write(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")
        self.process.stdin.flush()

    def until(self, wanted) -> dict:
        """The first message for which ``wanted`` is true (every line is one message)."""
        for line in self.process.stdout:
            message = json.loads(line)
            if wanted(message):
                return message
        raise RuntimeError("the engine closed its output")

    def close(self) -> None:
        self.send({"id": "bye", "method": "shutdown"})
        self.process.wait(timeout=60)


def _is_log(text: str):
    return lambda m: m.get("method") == "log" and text in m["params"]["message"]


def measure(meta: Path, model_dir: Path, phase: str, after: float) -> dict:
    engine = _Engine()
    try:
        engine.send(
            {"id": 1, "method": "init", "params": {"threads": 1, "notifications": ["log", "progress"]}}
        )
        engine.until(lambda m: m.get("id") == 1)
        engine.send({"id": 2, "method": "train", "params": {"meta": str(meta), "model": str(model_dir)}})
        if phase == "fit":
            engine.until(_is_log(READY))
            time.sleep(after)
        else:
            engine.until(lambda m: m.get("method") == "progress")
        sent = time.monotonic()
        engine.send({"method": "cancel"})
        reply = engine.until(lambda m: m.get("id") == 2)
        seconds = time.monotonic() - sent
    finally:
        engine.close()
    result = reply.get("result") or {}
    return {
        "phase": phase,
        "seconds": round(seconds, 2),
        "stopped": result.get("stopped", reply.get("error", {}).get("message")),
        "epochs": result.get("epochs"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sentences", type=int, default=50000)
    parser.add_argument("--after", type=float, default=2.0, help="seconds into the fit to cancel")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_polarity_corpus(work, args.sentences, 18, base="polarity")
        rows = [
            measure(work / "polarity.meta.json", work / f"model-{p}", p, args.after) for p in ("fit", "epoch")
        ]
    print(f"{'cancel during':14s} {'seconds':>8s}  stopped     epochs   ({args.sentences} sentences)")
    for row in rows:
        print(f"{row['phase']:14s} {row['seconds']:8.2f}  {row['stopped']!s:11s} {row['epochs']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
