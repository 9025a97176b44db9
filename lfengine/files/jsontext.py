"""JSON text as every reader of files and messages parses it: ``loads`` turns Python's refusal
of a very long integer (a ValueError without a position) into a JSONDecodeError that says where
the number is, so each caller's handling of malformed JSON (file, line, column; a protocol
error) covers it too instead of an internal error with a traceback."""

from __future__ import annotations

import json
import re
import sys
from typing import Any


def loads(text: str, **kwargs: Any) -> Any:
    """``json.loads``; an integer longer than Python converts is a JSONDecodeError at its place."""
    try:
        return json.loads(text, **kwargs)
    except json.JSONDecodeError:
        raise
    except ValueError as exc:
        limit = sys.get_int_max_str_digits()
        number = re.search(rf"\d{{{limit + 1},}}", text) if limit else None
        if number is None or "integer string conversion" not in str(exc):
            raise
        digits = number.end() - number.start()
        message = f"an integer of {digits} digits (numbers are read up to {limit} digits)"
        raise json.JSONDecodeError(message, text, number.start()) from None
