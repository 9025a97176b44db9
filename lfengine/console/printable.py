"""Text shown to a person, made harmless for a terminal.

Labels, column names, paths and messages come from meta files, data and model directories; a
label holding ESC [ 2 J (or a C1 CSI, a carriage return, a bidi override) would clear, rewrite or
reorder the screen when printed raw. ``printable`` writes each such character as its Python
escape; every human-readable printer (describe, train, evaluate, the console log) passes its text
through it. JSON output is JSON's own business (it escapes control characters itself).
"""

from __future__ import annotations

import re

#: C0 controls but tab and newline, DEL, C1 controls, line/paragraph separators, bidi controls.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every character that could drive a terminal written as its escape."""
    return _UNSAFE.sub(_escaped, text)
