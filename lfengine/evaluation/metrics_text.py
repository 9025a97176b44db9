"""The reports of lfengine.evaluation.metrics as text tables, for ``lfengine evaluate``: computing scores and
showing them change for different reasons."""

from __future__ import annotations


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return lines


def _score_cells(scores: dict) -> list[str]:
    return [f"{scores['precision']:.4f}", f"{scores['recall']:.4f}", f"{scores['f1']:.4f}"]


def _format_labels(report: dict) -> list[str]:
    rows = [
        [label, *_score_cells(s), str(s["support"]), str(s["predicted"])]
        for label, s in report["per_label"].items()
    ]
    lines = _table(["label", "precision", "recall", "f1", "support", "predicted"], rows)
    unit = "tokens" if report.get("task") == "sequence" else "instances"
    extra = f" in {report['sequences']} sequences" if "sequences" in report else ""
    lines.append("")
    lines.append(f"accuracy  {report['accuracy']:.4f}  ({report['instances']} {unit}{extra})")
    unseen = report.get("unseen_labels") or {}
    if unseen.get("count"):
        named = ", ".join(f"{label} {n}" for label, n in unseen["labels"].items())
        lines.append(
            f"unseen    {unseen['count']} {unit} with a gold label unseen in training ({named}): "
            "counted as errors"
        )
    for name in ("macro", "micro"):
        s = report[name]
        lines.append(f"{name}     precision {s['precision']:.4f}  recall {s['recall']:.4f}  f1 {s['f1']:.4f}")
    return lines


def _format_spans(report: dict) -> list[str]:
    def row(name: str, s: dict) -> list[str]:
        return [name, *_score_cells(s), str(s["gold"]), str(s["predicted"]), str(s["correct"])]

    rows = [row(t, s) for t, s in report["per_type"].items()]
    rows.append(row("(overall)", report["overall"]))
    return _table(["span type", "precision", "recall", "f1", "gold", "predicted", "correct"], rows)


def _format_oov(oov: dict) -> list[str]:
    rows = []
    for name in ("known", "unknown"):
        entry = oov[name]
        cells = [name, str(entry["count"]), f"{entry['accuracy']:.4f}"]
        if "spans" in entry:
            s = entry["spans"]
            cells += [f"{s['f1']:.4f}", str(s["gold"])]
        rows.append(cells)
    header = ["token string", "count", "accuracy"] + (["span f1", "gold spans"] if len(rows[0]) > 3 else [])
    return _table(header, rows)


def format_report(report: dict) -> str:
    """Render a report of this module as a per-label table and a summary, for ``lfengine evaluate``."""
    if report.get("task") == "regression":
        return "\n".join(
            [
                f"instances {report['instances']}",
                f"mse       {report['mse']:.6g}",
                f"rmse      {report['rmse']:.6g}",
                f"mae       {report['mae']:.6g}",
                f"r2        {report['r2']:.4f}",
            ]
        )
    if "per_label" in report:
        lines = _format_labels(report)
        if "spans" in report:
            lines += ["", "chunk spans (exact match):", *_format_spans(report["spans"])]
        if report.get("oov"):
            lines += ["", "known vs unknown to the model:", *_format_oov(report["oov"])]
        return "\n".join(lines)
    if "per_type" in report:
        return "\n".join(_format_spans(report))
    raise ValueError("not a report of lfengine.evaluation.metrics")
