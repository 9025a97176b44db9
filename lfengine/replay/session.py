"""Session files: NAME.requests.jsonl (what a client sends, plus directives) and
NAME.expected.jsonl (what the engine must send back). tests/sessions/README.md is the reference.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent
LFDATA = REPO.parent / "shared" / "lfdata"
REQUESTS_SUFFIX = ".requests.jsonl"
EXPECTED_SUFFIX = ".expected.jsonl"
FORMATS = ("json", "msgpack")
DEFAULT_MAX_MESSAGE_BYTES = 256 * 2**20
_PLACEHOLDER = re.compile(r"\$\{([A-Z]+)(?::(\d+))?\}")


class SessionError(Exception):
    """A session file is malformed (a bug in the session, not in the engine)."""


class SessionSkipped(Exception):
    """The session needs something this machine lacks (the shared LF data)."""


@dataclass
class Step:
    """One line of the requests file: send a message or raw bytes, or wait for a notification."""

    kind: str  # "send" | "bytes" | "wait"
    text: str
    line: int
    wait_reply: bool = True


@dataclass
class Session:
    name: str
    requests: Path
    expected: Path
    formats: list[str] = field(default_factory=lambda: list(FORMATS))
    args: list[str] = field(default_factory=list)
    needs_lfdata: bool = False
    exit_code: int = 0
    steps: list[Step] = field(default_factory=list)

    @property
    def max_message_bytes(self) -> int:
        if "--max-message-mb" in self.args:
            return int(self.args[self.args.index("--max-message-mb") + 1]) * 2**20
        return DEFAULT_MAX_MESSAGE_BYTES

    def check_available(self) -> None:
        """Raise SessionSkipped when the session needs the shared LF data and it is absent."""
        if self.needs_lfdata and not (LFDATA / "class-ionosphere.meta.json").is_file():
            raise SessionSkipped(f"session {self.name} needs the shared LF data, not found at {LFDATA}")


def session_paths(args: list[str]) -> list[Path]:
    """Requests files named by the arguments: a directory (all its sessions), a session file, or
    the session's base path (``tests/sessions/errors``)."""
    found: list[Path] = []
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            found += sorted(path.glob("*" + REQUESTS_SUFFIX))
            continue
        base = str(path).removesuffix(REQUESTS_SUFFIX).removesuffix(EXPECTED_SUFFIX)
        found.append(Path(base + REQUESTS_SUFFIX))
    return found


def load_session(requests: Path) -> Session:
    """Parse a requests file: header directives, message lines and body directives."""
    name = requests.name.removesuffix(REQUESTS_SUFFIX)
    session = Session(name, requests, requests.with_name(name + EXPECTED_SUFFIX))
    try:
        lines = requests.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SessionError(f"{requests}: {exc.strerror}") from None
    wait_reply = True
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("# ") or line == "#":
            continue
        if not line.startswith("#"):
            session.steps.append(Step("send", line, number, wait_reply))
            wait_reply = True
            continue
        word, _, rest = line[1:].partition(" ")
        if word == "formats":
            session.formats = rest.split()
        elif word == "args":
            session.args = rest.split()
        elif word == "needs" and rest.strip() == "lfdata":
            session.needs_lfdata = True
        elif word == "exit":
            session.exit_code = int(rest)
        elif word == "nowait":
            wait_reply = False
        elif word == "wait":
            session.steps.append(Step("wait", rest.strip(), number))
        elif word == "bytes":
            session.steps.append(Step("bytes", rest, number, wait_reply))
            wait_reply = True
        else:
            raise SessionError(f"{requests}:{number}: unknown directive #{word}")
    if not session.formats or not set(session.formats) <= set(FORMATS):
        raise SessionError(f"{requests}: #formats must name json and/or msgpack")
    return session


def read_expected(path: Path, fmt: str) -> list[Any]:
    """The expected messages, with ${FORMAT} standing for the framing being replayed."""
    expected = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            try:
                expected.append(strict_json(line.replace("${FORMAT}", fmt)))
            except ValueError as exc:
                raise SessionError(f"{path}:{number}: {exc}") from None
    return expected


def strict_json(text: str | bytes) -> Any:
    """json.loads as the engine parses: NaN and infinities are not JSON."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


class Placeholders:
    """${TMP}, ${LFDATA}, ${REPO} and ${FILL:N} (N letters x) in requests; the reverse in replies."""

    def __init__(self, tmp: Path) -> None:
        self.values = {"TMP": str(tmp.resolve()), "LFDATA": str(LFDATA.resolve()), "REPO": str(REPO)}

    def expand(self, text: str, where: str) -> str:
        def value(match: re.Match) -> str:
            name, count = match.group(1), match.group(2)
            if name == "FILL" and count:
                return "x" * int(count)
            if name not in self.values:
                raise SessionError(f"{where}: unknown placeholder {match.group(0)}")
            return json.dumps(self.values[name])[1:-1]  # placeholders sit inside JSON strings

        return _PLACEHOLDER.sub(value, text)

    def collapse(self, value: Any) -> Any:
        """A copy of a reply with the session's paths written as placeholders."""
        if isinstance(value, str):
            for name in ("TMP", "LFDATA", "REPO"):  # most specific first
                value = value.replace(self.values[name], "${" + name + "}")
            return value
        if isinstance(value, dict):
            return {key: self.collapse(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.collapse(item) for item in value]
        return value
