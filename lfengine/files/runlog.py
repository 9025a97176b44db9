"""What a training run records about itself: versions, the facts of the run, and the header and
result that frame each run in the model's train.log (which appends across runs).

One place for these facts, so that the command line's start block, ``lfengine info``,
``describe MODEL_DIR`` and train.log all say the same.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from lfengine import __version__

#: Settings shown in the start block even when the heuristics chose them.
HEADLINE_SETTINGS = ("es_metric", "learning_rate", "batch_size", "max_epochs", "es_patience", "seed")


def package_version(name: str) -> str:
    """Installed version of a distribution, without importing it (torch takes seconds)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    return {
        "lfengine": __version__,
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "numpy": package_version("numpy"),
        "msgpack": package_version("msgpack"),
    }


def version_line() -> str:
    return (
        "lfengine "
        + __version__
        + " ("
        + ", ".join(f"{k} {v}" for k, v in list(versions().items())[1:])
        + ")"
    )


def now() -> str:
    """UTC time as ISO 8601, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def command_line() -> str:
    return " ".join(shlex.quote(part) for part in [Path(sys.argv[0]).name, *sys.argv[1:]])


def headline_settings(description: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters that matter for this run: the usual suspects and any the user set."""
    hyper = description["hyperparameters"]
    return {
        name: h["value"] for name, h in hyper.items() if name in HEADLINE_SETTINGS or h["source"] == "option"
    }


def run_facts(
    meta_path: str,
    data_path: Path,
    model_dir: Path,
    network: str,
    codec: Any,
    description: dict[str, Any],
    sizes: tuple[int, int],
    device: str,
) -> dict[str, Any]:
    """What a person (and train.log) should know about a run before it starts."""
    import torch

    from lfengine.files.safe_io import sha256_file

    data_file = Path(data_path).resolve()
    return {
        "meta_file": str(Path(meta_path).resolve()),
        "data_file": str(data_file),
        "data_sha256": sha256_file(data_file),
        "model_dir": str(model_dir),
        "task": codec.task,
        "unit": "sequences" if codec.is_sequence else "instances",
        "train": sizes[0],
        "validation": sizes[1],
        "labels": list(codec.labels),
        "device": device,
        "threads": torch.get_num_threads(),
        "network": network,
        "parameters": description["architecture"]["parameters"],
        "settings": headline_settings(description),
        "architecture": description["architecture"]["text"],
    }


def run_header(facts: dict[str, Any], options: dict[str, Any]) -> str:
    """The block that opens a run in train.log."""
    lines = [
        "=" * 78,
        f"run started {facts['started']}" + (" (resumed)" if facts.get("resumed") else ""),
        f"command: {command_line()}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        f"device: {facts['device']}, threads {facts['threads']}",
        f"meta file: {facts['meta_file']}",
        f"data file: {facts['data_file']} (sha256 {facts['data_sha256']})",
        f"data: {facts['train']} {facts['unit']} for training, {facts['validation']} for validation; "
        f"{len(facts['labels'])} labels",
        "options: " + json.dumps(options, sort_keys=True),
        "settings: " + json.dumps(facts["settings"], sort_keys=True),
        "architecture:",
        facts["architecture"],
        "=" * 78,
    ]
    return "\n".join(lines) + "\n"


def run_footer(result: dict[str, Any]) -> str:
    """The line that closes a run in train.log: the result as the command line's --json shows it."""
    return f"result: {json.dumps(result, sort_keys=True)}\n"


def append_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    from lfengine.files.safe_io import open_append  # safe_io loads torch: not for every --help

    with open_append(path) as handle:  # never through a link planted as train.log
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
