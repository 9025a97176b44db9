"""Python literals and comments for the source that ``lfengine eject`` writes.

Every name, label and path comes from a meta file or a model directory (data a stranger may
have written), so each reaches the source as a literal written by ``py`` (in code, comments and
the docstring alike), and every number as a checked int; eject_check.checked_source parses
the result before it is written.
"""

from __future__ import annotations

import json
import textwrap

from lfengine.data.batch import EmbeddingInfo
from lfengine.errors import ModelError

WIDTH = 88  # ruff's default line length: the file passes `ruff check` with default settings


def comment(text: str, indent: int) -> list[str]:
    pad = " " * indent
    return wrap(text, WIDTH, initial_indent=pad + "# ", subsequent_indent=pad + "# ")


def wrap(text: str, width: int, **kwargs: str) -> list[str]:
    """Wrap at spaces only (file names and column names stay whole)."""
    return textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False, **kwargs)


def py(value: object) -> str:
    """A Python literal in the style ruff format writes (double quotes, lists for tuples).

    Strings are double-quoted with every quote, backslash and unprintable character escaped, so
    that one is a single literal wherever it lands (code, a comment, the docstring). A value of
    any other type than these is refused: it can only come from a garbled model.json."""
    if isinstance(value, str):
        return "".join(_escape(c) for c in json.dumps(value, ensure_ascii=False))
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(py(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, EmbeddingInfo):
        return (
            f"EmbeddingInfo(\n        {py(value.emb_id)},\n        vocab_size={whole(value.vocab_size)},\n"
            f"        dims={whole(value.dims)},\n        mode={py(value.mode)},\n"
            f"        pretrained={py(bool(value.pretrained))},\n    )"
        )
    raise ModelError(f"eject cannot write a {type(value).__name__} value ({value!r:.60}) into Python source")


def _escape(char: str) -> str:
    """json.dumps escapes quotes, backslashes and C0 controls; the rest of the unprintable
    characters (DEL, C1 controls, line and paragraph separators, bidi overrides) too."""
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def whole(value: object) -> int:
    """A size (vocabulary, dims, characters) read from the data: a non-negative int, else refused."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ModelError(f"eject needs a whole number for a size, got {type(value).__name__} {value!r:.60}")
    return value
