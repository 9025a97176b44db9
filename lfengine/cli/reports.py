"""Plain-text reports of the command line: descriptions, the start and end blocks of a training,
``info``, and the sections of ``evaluate``'s report.

Each report is built from the same dicts the ``--json`` variants print, so the two never say
different things.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from lfengine.console.progress import clock, kept_model, plural
from lfengine.evaluation.metrics_text import format_report

STOP_REASONS = {
    "early-stopping": "early stopping (no improvement for es_patience validations)",
    "max-epochs": "reached max_epochs",
    "stop-file": "the stop file appeared",
    "cancelled": "interrupted (Ctrl-C)",
}


def short_path(path: str) -> str:
    """A path as short as it can be said from here: relative below the working directory."""
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") and len(relative) < len(path) else path


def _scores(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()) or "(no validation)"


def render_model_training(t: dict[str, Any]) -> str:
    """How a stored model was trained (describe MODEL_DIR)."""
    best, stopped = t.get("best") or {}, t.get("stopped")
    return "\n".join(
        [
            "training:",
            f"  meta file    {t.get('meta_file', '?')}",
            f"  data file    {t.get('data_file', '(not recorded)')}",
            f"  data sha256  {t.get('data_sha256', '(not recorded)')}",
            f"  started      {t.get('started', '(not recorded)')}",
            f"  finished     {t.get('finished', '(not recorded)')}",
            f"  data         {t.get('instances', '?')} for training, "
            f"{t.get('validation', '?')} for validation",
            f"  epochs       {t.get('epochs', '?')}, stopped by {STOP_REASONS.get(stopped, stopped)}",
            f"  best epoch   {t.get('best_epoch', '?')}: {_scores(best)}"
            if best or not isinstance(t.get("epochs"), int)
            else "  model kept   " + kept_model(0, t["epochs"], {}).removeprefix("kept "),
        ]
    )


def start_block(f: dict[str, Any]) -> str:
    """What a training run is about to do, before the first epoch."""
    labels = f["labels"]
    shown = ", ".join(labels[:12]) + (f", ... ({len(labels) - 12} more)" if len(labels) > 12 else "")
    settings = "  ".join(
        f"{k} {v if isinstance(v, str) else json.dumps(v)}" for k, v in f["settings"].items()
    )
    return "\n".join(
        [
            f"training {f['network']} ({f['task']}, {f['parameters']:,} parameters)"
            + (" - resumed" if f.get("resumed") else ""),
            f"  data      {short_path(f['data_file'])}",
            f"            {f['train']} {f['unit']} for training, {f['validation']} for validation",
            f"  labels    {len(labels)}: {shown}",
            f"  device    {f['device']}, threads {f['threads']}",
            f"  settings  {settings}",
            f"  model     {short_path(f['model_dir'])}",
        ]
    )


def _kept_line(result: dict[str, Any]) -> str:
    if result["best"]:
        return f"  best epoch  {result.get('best_epoch', 0)}: {_scores(result['best'])}"
    kept = kept_model(result.get("best_epoch", 0), result["epochs"], {})
    return "  model kept  " + kept.removeprefix("kept ")


def end_block(result: dict[str, Any], spark: str | None = None) -> str:
    """What a training run achieved."""
    model = short_path(result["model_dir"])
    lines = [
        f"training stopped: {STOP_REASONS.get(result['stopped'], result['stopped'])} after "
        f"{plural(result['epochs'], 'epoch')}, {clock(result['seconds'])}",
        _kept_line(result),
        f"  model       {model}",
        f"  next        lfengine plot {model}; lfengine evaluate {model} TEST.data.json",
    ]
    if spark:
        lines.append(f"  curve       {spark}")
    return "\n".join(lines)


# --- info -------------------------------------------------------------------------------------
def engine_info() -> dict[str, Any]:
    import torch

    from lfengine.files.runlog import versions

    devices = ["cpu"] + [
        f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())
    ]
    return {
        "versions": versions(),
        "devices": devices,
        "default_device": "cuda" if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "models": "a model is the directory named in `lfengine train META MODEL_DIR` (relative to the "
        "working directory); the GATE wrapper writes DATADIR/FileJsonPyTorch.model.d",
    }


def render_info(info: dict[str, Any]) -> str:
    return "\n".join(
        [
            "versions  " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
            "devices   " + ", ".join(info["devices"]) + f" (default: {info['default_device']})",
            f"threads   {info['threads']} torch threads on {info['cpus']} CPUs (--threads to change)",
            f"models    {info['models']}",
        ]
    )


# --- evaluate ---------------------------------------------------------------------------------
MAX_MATRIX_LABELS = 12  # wider matrices become a list of the most frequent confusions


def scores_section(report: dict) -> list[str]:
    return format_report(report).splitlines()


def confusion_section(report: dict) -> list[str]:
    confusion = report.get("confusion")
    if not confusion:
        return []
    labels, matrix = confusion["labels"], confusion["matrix"]
    if len(labels) > MAX_MATRIX_LABELS:
        pairs = sorted(
            (
                (matrix[g][p], labels[g], labels[p])
                for g in range(len(labels))
                for p in range(len(labels))
                if g != p and matrix[g][p]
            ),
            reverse=True,
        )[:15]
        return [
            "most frequent confusions (gold -> predicted):",
            *(f"  {n:>7}  {g} -> {p}" for n, g, p in pairs),
        ]
    names = [label[:10] for label in labels]
    width = max(6, *(len(n) for n in names), *(len(str(c)) for row in matrix for c in row))
    head = max(len(n) for n in names) + 2
    lines = [
        "confusion matrix (rows: gold, columns: predicted):",
        " " * head + " ".join(n.rjust(width) for n in names),
    ]
    for name, row in zip(names, matrix):
        lines.append(name.ljust(head) + " ".join(str(c).rjust(width) for c in row))
    return lines


def warnings_section(report: dict) -> list[str]:
    return [f"warning: {w}" for w in report.get("warnings", [])]


#: The sections of the text report of ``lfengine evaluate``, in order; each gives its lines, or
#: none when it has nothing to say. A new section is one more function here.
EVALUATE_SECTIONS: tuple[Callable[[dict], list[str]], ...] = (
    scores_section,
    confusion_section,
    warnings_section,
)


def render_evaluation(report: dict) -> str:
    sections = [lines for lines in (section(report) for section in EVALUATE_SECTIONS) if lines]
    return "\n\n".join("\n".join(lines) for lines in sections)
