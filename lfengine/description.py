"""The describe result as a person reads it: one text for the command line (``lfengine
describe``, ``train --describe``) and the GATE console (``gate-train --notrain``)."""

from __future__ import annotations

import json


def render_description(d: dict) -> str:
    """The describe result as a person reads it."""
    lines = [
        f"task: {d['task']}" + (" (sequences)" if d.get("is_sequence") else ""),
        f"features: {d.get('features')}",
        "",
        *[f"note: {note}" for note in d.get("notes", [])],
        "architecture:",
        d["architecture"]["text"],
        "",
        "vocabularies:",
    ]
    for v in d["vocabularies"]:
        lines.append(
            f"  {v['emb_id'] or '(default)'!s:12} size {v['size']:>7}  dims {v['dims']:>4}  "
            f"mode {v['mode']}  (dims from {v['sources'].get('dims', '?')})"
        )
        rows = v.get("rows")
        if rows:
            lines.append(
                f"  {'':12} rows: {rows['trained']} trained, {rows['pretrained']} pretrained only, "
                f"{rows['oov']} mapped to OOV (never updated by training)"
            )
    if not d["vocabularies"]:
        lines.append("  (none)")
    if d.get("char_encoder"):
        lines.append(f"  characters of {d['char_encoder']['column']}: {d['char_encoder']['size']}")
    lines += [
        "",
        f"labels ({len(d['labels'])}, index order): {', '.join(d['labels'])}",
        "",
        "settings this network uses:",
    ]
    for name, h in d["hyperparameters"].items():
        lines.append(f"  {name:22} {json.dumps(h['value'])!s:24} ({h['source']})")
    return "\n".join(lines)
