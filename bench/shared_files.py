"""What the benches over the shared LF files (``../shared/lfdata``) have in common: their options."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def train_arguments(meta: Path, model_dir: Path, seed: int) -> list[str]:
    """``lfengine train`` with the seed, on one CPU thread, the result as JSON on stdout."""
    single_cpu = ["--threads", "1", "--device", "cpu"]
    return ["train", str(meta), str(model_dir), "--seed", str(seed), *single_cpu, "--json"]


def shared_file_parser(doc: str | None, names: list[str], set_help: str) -> argparse.ArgumentParser:
    """--jobs, --seeds, --only (one of ``names``), --set and --json, with ``doc`` as description."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs in parallel")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--only", nargs="+", choices=sorted(names), help="these shared files only")
    parser.add_argument("--set", action="append", default=[], help=set_help)
    parser.add_argument("--json", help="also write the results to this file")
    return parser
