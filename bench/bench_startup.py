"""CPU time before a command does anything: `lfengine --help` must not import torch (issue 20, item 7).

Each command runs cold, as a fresh child process (``python -m lfengine ...``), ``--runs`` times;
its CPU time is the user + system time of that child, read with
``resource.getrusage(RUSAGE_CHILDREN)`` before and after it. Reported per command: the median
and the range of those CPU seconds, and the limit. Importing torch alone costs ~1.7 CPU s on the
2-core development machine; with torch imported only where a command needs it, `--help` takes
~0.1 CPU s. Exit status 1 when a median exceeds its limit.

Run:  nice .venv/bin/python bench/bench_startup.py [--runs 7] [--json FILE]
      PYTHONPATH=/path/to/other/checkout python bench/bench_startup.py   (to compare a version)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: Commands that must start without torch, and their CPU-second limit (issue 20's acceptance).
COMMANDS = {
    "--help": 0.3,
    "train --help": 0.3,
    "describe --help": 0.3,
}


def child_cpu_seconds(args: list[str], env: dict[str, str]) -> float:
    """User + system CPU seconds of one run of ``python -m lfengine ARGS``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-m", "lfengine", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="cold runs per command (default: 7)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", str(REPO))
    results = {}
    print(f"{'command':24} {'median_cpu_s':>12} {'min':>6} {'max':>6} {'limit':>6}  runs")
    for command, limit in COMMANDS.items():
        times = [child_cpu_seconds(command.split(), env) for _ in range(args.runs)]
        median = statistics.median(times)
        results[command] = {"median_cpu_s": median, "runs": times, "limit_cpu_s": limit}
        spread = f"{min(times):6.3f} {max(times):6.3f}"
        print(f"{'lfengine ' + command:24} {median:12.3f} {spread} {limit:6.2f}  {len(times)}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    over = [c for c, r in results.items() if r["median_cpu_s"] > r["limit_cpu_s"]]
    for command in over:
        print(f"over the limit: lfengine {command}", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
