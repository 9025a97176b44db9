"""Training curves from a model's history: an SVG file written directly (no plotting library),
and a one-line sparkline of the headline score for the end of a training on a terminal.

The history (model.json, ``training.history``) has one entry per validation (per epoch when
there is no validation set): the global batch count, the training loss, the validation metrics
and whether it was the best so far.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from xml.sax.saxutils import escape as _xml_escape

from lfengine.errors import OptionError

WIDTH, PANEL_HEIGHT, MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP = 820, 230, 70, 150, 40
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
SCORES = ("span_f1", "accuracy", "macro_f1", "r2")  # headline preference, best first
SPARKS, ASCII_SPARKS = "▁▂▃▄▅▆▇█", " .:-=+*#"


#: Characters XML 1.0 does not allow at all (an SVG holding one does not open).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape(value: object) -> str:
    """Text from model.json (metric names, the title, numbers) made safe for SVG element text
    and double- or single-quoted attributes: markup and quotes escaped, characters XML cannot
    hold replaced by U+FFFD. Every value the document shows goes through here."""
    text = _NOT_XML.sub("\ufffd", str(value))
    return _xml_escape(text, {'"': "&quot;", "'": "&apos;"})


def headline_metric(history: list[dict]) -> str | None:
    names = {k for h in history for k in h.get("validation", {})}
    return next((m for m in SCORES if m in names), "loss" if "loss" in names else None)


def sparkline(history: list[dict]) -> str | None:
    """The headline validation score per validation as block characters, with the best value."""
    metric = headline_metric(history)
    if metric is None:
        return None
    values = [h["validation"][metric] for h in history if metric in h.get("validation", {})]
    ticks = (
        SPARKS if (sys.stdout.encoding or "").lower().replace("-", "") in ("utf8", "utf16") else ASCII_SPARKS
    )
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    line = "".join(ticks[min(len(ticks) - 1, int((v - low) / span * (len(ticks) - 1) + 0.5))] for v in values)
    best = min(values) if metric == "loss" else max(values)
    return f"{metric} {line} best {best:.4f} ({len(values)} validations)"


def _series(
    history: list[dict],
) -> tuple[dict[str, list[tuple[float, float]]], dict[str, list[tuple[float, float]]]]:
    losses: dict[str, list[tuple[float, float]]] = {"train loss": [], "validation loss": []}
    scores: dict[str, list[tuple[float, float]]] = {}
    for h in history:
        x = float(h["batches"])
        losses["train loss"].append((x, h["train_loss"]))
        for name, value in h.get("validation", {}).items():
            if name == "loss":
                losses["validation loss"].append((x, value))
            elif name in ("mse", "mae"):
                losses.setdefault(f"validation {name}", []).append((x, value))
            else:
                scores.setdefault(name, []).append((x, value))
    return {k: v for k, v in losses.items() if v}, scores


def _panel(
    top: float,
    title: str,
    series: dict[str, list[tuple[float, float]]],
    x_max: float,
    ticks: list[tuple[float, str]],
    best_x: float | None,
    fixed: tuple[float, float] | None,
) -> list[str]:
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    values = [y for points in series.values() for _, y in points]
    low, high = fixed or (min(values), max(values))
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5

    def px(x: float) -> float:
        return MARGIN_LEFT + plot_w * x / (x_max or 1)

    def py(y: float) -> float:
        return top + PANEL_HEIGHT - PANEL_HEIGHT * (y - low) / (high - low)

    out = [
        f'<text x="{MARGIN_LEFT}" y="{top - 8}" class="title">{escape(title)}</text>',
        f'<rect x="{MARGIN_LEFT}" y="{top}" width="{plot_w}" height="{PANEL_HEIGHT}" class="frame"/>',
    ]
    for i in range(5):
        y = low + (high - low) * i / 4
        out.append(f'<text x="{MARGIN_LEFT - 6}" y="{py(y) + 4:.1f}" class="ytick">{y:.3g}</text>')
    for x, label in ticks:
        out.append(
            f'<text x="{px(x):.1f}" y="{top + PANEL_HEIGHT + 14}" class="xtick">{escape(label)}</text>'
        )
    if best_x is not None:
        out.append(
            f'<line x1="{px(best_x):.1f}" y1="{top}" x2="{px(best_x):.1f}" '
            f'y2="{top + PANEL_HEIGHT}" class="best"/>'
        )
    for n, (name, points) in enumerate(series.items()):
        colour = COLOURS[n % len(COLOURS)]
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        out.append(
            f'<polyline points="{coords}" stroke="{colour}" class="curve" data-series="{escape(name)}"/>'
        )
        for x, y in points:
            out.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{colour}" class="point" '
                f'data-series="{escape(name)}"><title>{escape(name)} {y:.4f}</title></circle>'
            )
        ly = top + 14 + 16 * n
        out.append(
            f'<text x="{WIDTH - MARGIN_RIGHT + 10}" y="{ly}" fill="{colour}" '
            f'class="legend">{escape(name)}</text>'
        )
    return out


def render_svg(training: dict, title: str) -> tuple[str, int]:
    """The SVG document and the number of validations drawn."""
    history = training.get("history") or []
    if not history:
        raise OptionError("the model has no training history to plot (was it trained with --no-train?)")
    losses, scores = _series(history)
    x_max = max(h["batches"] for h in history)
    epoch_end: dict[int, float] = {}
    for h in history:
        epoch_end[h["epoch"]] = max(epoch_end.get(h["epoch"], 0), h["batches"])
    step = max(1, len(epoch_end) // 10)
    ticks = [(x, str(e)) for e, x in sorted(epoch_end.items()) if e % step == 0]
    best = [h for h in history if h.get("best")]
    best_x = float(best[-1]["batches"]) if best else None
    panels = [("loss", losses, None)]
    if scores:
        fixed = (0.0, 1.0) if all(0 <= y <= 1 for p in scores.values() for _, y in p) else None
        panels.append(("validation scores", scores, fixed))
    height = MARGIN_TOP + len(panels) * (PANEL_HEIGHT + 60) + 10
    body = []
    for i, (name, series, fixed) in enumerate(panels):
        body += _panel(MARGIN_TOP + 20 + i * (PANEL_HEIGHT + 60), name, series, x_max, ticks, best_x, fixed)
    best_text = escape(f"best: epoch {training.get('best_epoch')}" if best else "no validation")
    doc = "\n".join(
        [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}">',
            "<style>text{font:12px sans-serif} .title{font-weight:bold} .ytick{text-anchor:end} "
            ".xtick{text-anchor:middle} .frame{fill:none;stroke:#888} .curve{fill:none;stroke-width:1.5} "
            ".best{stroke:#444;stroke-dasharray:4 3}</style>",
            f'<text x="{MARGIN_LEFT}" y="20" class="title">{escape(title)} ({best_text}; x: epochs)</text>',
            *body,
            "</svg>",
        ]
    )
    return doc + "\n", len(history)


def write_svg(training: dict, output: Path, title: str) -> int:
    if output.suffix.lower() != ".svg":
        raise OptionError(
            f"{output}: lfengine plot writes SVG only; name the file .svg (browsers and editors open it)"
        )
    from lfengine.files.paths import check_output, writing_output
    from lfengine.files.safe_io import atomic_write  # torch: loaded by the command, not by --help

    check_output(output, f"cannot write {output}")
    document, validations = render_svg(training, title)
    with writing_output(output, f"cannot write {output}"):
        atomic_write(output, lambda handle: handle.write(document.encode("utf-8")))
    return validations
