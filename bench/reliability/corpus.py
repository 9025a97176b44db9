"""What the fuzzers start from: the recorded sessions' requests and tiny slices of the LF data.

Everything runs on slices (the first few lines of every shared data file, next to an unchanged
copy of its meta file), so a fuzzed ``train`` or ``evaluate`` costs milliseconds, not seconds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SESSIONS = REPO / "tests" / "sessions"
LFDATA = REPO.parent / "shared" / "lfdata"
#: Longest padding a ${FILL:N} placeholder may produce (the engines run with --max-message-mb 1).
MAX_FILL = 1_100_000


def slice_lfdata(source: Path, dest: Path, lines: int) -> Path:
    """Copy every meta file and embeddings file, and the first ``lines`` lines of each data file."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if path.name.endswith(".data.json"):
            with open(path, "rb") as src, open(dest / path.name, "wb") as out:
                for _, line in zip(range(lines), src):
                    out.write(line)
        elif path.is_file():
            shutil.copyfile(path, dest / path.name)
    return dest


def substitute(text: str, *, lfdata: Path, tmp: Path) -> str:
    text = text.replace("${LFDATA}", str(lfdata)).replace("${TMP}", str(tmp)).replace("${REPO}", str(REPO))
    while "${FILL:" in text:
        start = text.index("${FILL:")
        end = text.index("}", start)
        count = min(int(text[start + 7 : end]), MAX_FILL)
        text = text[:start] + "x" * count + text[end + 1 :]
    return text


def session_requests(*, lfdata: Path, tmp: Path) -> tuple[list[dict], list[bytes]]:
    """(request objects, raw byte lines) of every recorded session, placeholders filled in.

    ``shutdown`` requests are left out: a fuzzed process must keep serving (each process is
    shut down once at its end, and that is checked).
    """
    objects: list[dict] = []
    raw: list[bytes] = []
    for path in sorted(SESSIONS.glob("*.requests.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#bytes "):
                raw.append(bytes.fromhex(line[len("#bytes ") :].replace(" ", "")))
                continue
            if not line.strip() or line.startswith("#"):
                continue
            text = substitute(line, lfdata=lfdata, tmp=tmp)
            try:
                value = json.loads(text)
            except ValueError:
                raw.append(text.encode("utf-8", "surrogatepass"))
                continue
            if isinstance(value, dict) and value.get("method") == "shutdown":
                continue
            objects.append(value)
    return objects, raw


def prelude(objects: list[dict]) -> list[dict]:
    """The named trainings of the sessions, one epoch each: the models later requests refer to."""
    seen: set[str] = set()
    out = []
    for obj in objects:
        if not isinstance(obj, dict):
            continue
        params = obj.get("params")
        if obj.get("method") != "train" or not isinstance(params, dict) or "name" not in params:
            continue
        if params.get("name") in seen or (params.get("options") or {}).get("no_train"):
            continue
        seen.add(params["name"])
        options = {k: v for k, v in (params.get("options") or {}).items() if k != "max_epochs"}
        out.append({**obj, "params": {**params, "options": {**options, "max_epochs": 1}}})
    return out
