"""The old GATE wrapper's line protocol: one request line in, one reply line out.

GATE's Java side (gate-plugin.md §7) writes one JSON value per line and blocks on one reply line
per request, casting the reply's values to Java types. Everything here serves that contract:
exactly one flushed, ASCII-only, strict-JSON reply per line (an error reply for anything that
cannot be processed, so the conversation never desynchronises and the process never dies on
bad input), confidences as real probabilities written as JSON floats, and a clean exit on EOF.

This module knows nothing of torch: it only needs an object shaped like
``lfengine.service.LoadedModel``.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from lfengine.errors import LfEngineError
from lfengine.files import jsontext

log = logging.getLogger(__name__)

STOP_LINE = "STOP"
#: Longest request line read whole; a longer one is skipped with an error reply, so a single
#: huge request cannot exhaust memory (the old wrapper had no limit: reference-wrapper.md S4).
MAX_LINE_BYTES = 256 * 2**20
_TOO_LONG = object()


def request_lines(stream: BinaryIO, limit: int = MAX_LINE_BYTES):
    """Yield request lines (bytes), or ``_TOO_LONG`` for a line over ``limit`` (read past, not kept)."""
    while True:
        raw = stream.readline(limit + 1)
        if not raw:
            return
        if len(raw) > limit and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = stream.readline(limit + 1)
            yield _TOO_LONG
            continue
        yield raw


class LegacyModel(Protocol):
    """What the loop needs from a loaded model (``lfengine.service.LoadedModel`` has it)."""

    task: str
    labels: list[str]
    is_sequence: bool
    num_features: int

    def apply(self, instances: list, *, distribution: bool = False) -> list[dict]: ...


class RequestError(Exception):
    """A request line that cannot be processed; the message goes into the error reply."""


def decode_request_line(raw: bytes) -> str:
    """Bytes of one request line to text, without the line terminator.

    GATE writes requests in the JVM's default charset, which is windows-1252 on older Windows
    JVMs, so invalid UTF-8 is read as windows-1252, and as latin-1 for the five bytes that
    windows-1252 leaves undefined (latin-1 decodes every byte).
    """
    raw = raw.rstrip(b"\r\n")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
    return text.lstrip("\ufeff")


def _reject_constant(name: str) -> Any:
    raise RequestError(f"{name} is not valid JSON (send finite numbers only)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise RequestError(f"the number {text} is out of range (send finite numbers only)")
    return value


def parse_request(text: str, model: LegacyModel, *, labeled: bool) -> tuple[list, Any]:
    """Parse and shape-check one request: (instance, target or None)."""
    if not text.strip():
        raise RequestError("empty request line: expected one JSON array per line")
    try:
        value = jsontext.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as e:
        raise RequestError(f"request is not valid JSON: {e.msg} at column {e.colno}") from None
    target = None
    if labeled:
        if not isinstance(value, list) or len(value) != 2:
            raise RequestError("with --labeled a request must be [features, target]")
        value, target = value
    if model.is_sequence:
        _check_sequence(value, model.num_features)
        if labeled and (not isinstance(target, list) or len(target) != len(value)):
            raise RequestError(f"the target must be a list of {len(value)} labels, one per element")
    else:
        _check_vector(value, model.num_features, where="request")
        if labeled and model.task == "regression" and not _is_number(target):
            raise RequestError("the target of a regression model must be a number")
    return value, target


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_vector(value: Any, num_features: int, *, where: str) -> None:
    if not isinstance(value, list):
        raise RequestError(
            f"{where} must be a JSON array of {num_features} feature values, got {type(value).__name__}"
        )
    if len(value) != num_features:
        raise RequestError(f"{where} has {len(value)} feature values, the model expects {num_features}")


def _check_sequence(value: Any, num_features: int) -> None:
    if not isinstance(value, list):
        raise RequestError(
            "a sequence request must be a JSON array of feature vectors, one per element, "
            f"got {type(value).__name__}"
        )
    for i, element in enumerate(value):
        _check_vector(element, num_features, where=f"element {i}")


def _finite(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"the model produced a non-finite probability ({number})")
    return number


def _floats(values: Any) -> list[float]:
    return [_finite(v) for v in values]


class ReplyFormatter:
    """Builds reply lines in the old key order; the label list is encoded once."""

    def __init__(self, model: LegacyModel) -> None:
        self.task = model.task
        self.is_sequence = model.is_sequence
        self._labels_json = _json([str(label) for label in model.labels])

    def ok(self, prediction: dict, num_elements: int | None = None) -> bytes:
        """Reply for one prediction; raises ValueError on a shape or value it cannot send."""
        if self.task == "regression":
            return _line({"status": "ok", "output": _finite(prediction["label"])})
        if self.is_sequence:
            output = [str(label) for label in prediction["label"]]
            conf: Any = _floats(prediction["confidence"])
            dist = prediction.get("distribution")
            dist = None if dist is None else [_floats(row) for row in dist]
            if num_elements is not None and not (
                len(output) == len(conf) == num_elements and (dist is None or len(dist) == num_elements)
            ):
                raise ValueError(
                    f"the model returned predictions for {len(output)} of {num_elements} elements"
                )
        else:
            output = str(prediction["label"])
            conf = _finite(prediction["confidence"])
            dist = prediction.get("distribution")
            dist = None if dist is None else _floats(dist)
        output_json, conf_json, dist_json = _json(output), _json(conf), _json(dist)
        body = f'"output":{output_json},"labels":{self._labels_json},"conf":{conf_json},"dist":{dist_json}'
        return ('{"status":"ok",' + body + "}\n").encode("ascii")

    def empty_sequence(self) -> bytes:
        body = f'"output":[],"labels":{self._labels_json},"conf":[],"dist":[]'
        return ('{"status":"ok",' + body + "}\n").encode("ascii")


def error_reply(message: str) -> bytes:
    return _line({"status": "error", "error": message})


def _json(value: Any) -> str:
    """Compact, strict (no NaN), ASCII-only JSON."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _line(obj: dict) -> bytes:
    return (_json(obj) + "\n").encode("ascii")


@dataclass
class LabeledScore:
    """Accuracy over --labeled input: per instance, or per element for sequences."""

    is_sequence: bool
    regression: bool = False
    requests: int = 0
    total: int = 0
    correct: int = 0
    abs_error: float = 0.0
    errors: int = 0

    def add(self, prediction: dict, target: Any) -> None:
        self.requests += 1
        if self.regression:
            self.total += 1
            self.abs_error += abs(float(prediction["label"]) - float(target))
        elif self.is_sequence:
            self.total += len(target)
            self.correct += sum(str(p) == str(t) for p, t in zip(prediction["label"], target))
        else:
            self.total += 1
            self.correct += str(prediction["label"]) == str(target)

    def summary(self) -> str:
        if self.regression:
            mae = f"{self.abs_error / self.total:.4f}" if self.total else "n/a"
            text = f"Total {self.total}, mean absolute error={mae}"
        else:
            acc = f"{self.correct / self.total:.4f}" if self.total else "n/a"
            unit = f" elements in {self.requests} sequences" if self.is_sequence else ""
            text = f"Total {self.total}{unit}, correct {self.correct}, acc={acc}"
        if self.errors:
            text += f", {self.errors} request(s) failed and are not counted"
        return text


def run_legacy_loop(
    model: LegacyModel,
    stdin_binary: BinaryIO,
    stdout_binary: BinaryIO,
    *,
    labeled: bool = False,
    noret: bool = False,
    logevery: int = 0,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> int:
    """Answer request lines until EOF or a ``STOP`` line; returns the exit code (0)."""
    formatter = ReplyFormatter(model)
    score = LabeledScore(model.is_sequence, regression=model.task == "regression") if labeled else None
    processed = 0
    warned_charset = False
    for raw in request_lines(stdin_binary, max_line_bytes):
        if raw is _TOO_LONG:
            reply, prediction, target = (
                error_reply(f"request line longer than {max_line_bytes} bytes"),
                None,
                None,
            )
        else:
            text = decode_request_line(raw)
            if text.strip() == STOP_LINE:
                log.info("STOP received, ending")
                break
            if not warned_charset and _is_legacy_charset(raw):
                warned_charset = True
                log.warning(
                    "a request is not valid UTF-8; reading it as windows-1252 (the JVM's default charset?)"
                )
            reply, prediction, target = _answer(model, formatter, text, labeled)
        if score is not None:
            if prediction is None:
                score.errors += 1
            else:
                score.add(prediction, target)
        if not noret:
            try:
                stdout_binary.write(reply)
                stdout_binary.flush()
            except BrokenPipeError:
                log.warning("the client closed the reply channel; ending")
                return 0
        processed += 1
        if logevery and processed % logevery == 0:
            log.info("Processed: %d", processed)
    if score is not None:
        print(score.summary(), file=sys.stderr, flush=True)
    return 0


def _is_legacy_charset(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _answer(
    model: LegacyModel, formatter: ReplyFormatter, text: str, labeled: bool
) -> tuple[bytes, Any, Any]:
    """(reply line, prediction or None on error, target)."""
    try:
        instance, target = parse_request(text, model, labeled=labeled)
        if model.is_sequence and not instance:
            return formatter.empty_sequence(), {"label": []}, target
        prediction = model.apply([instance], distribution=True)[0]
    except RequestError as e:
        message = str(e)
    except LfEngineError as e:
        message = e.message
    except Exception as e:  # a bug must cost one error reply, never the whole GATE run
        message = f"internal error ({type(e).__name__}): {e}"
        log.error("internal error applying request %.200s", text, exc_info=True)
    else:
        try:
            return formatter.ok(prediction, len(instance) if model.is_sequence else None), prediction, target
        except (ValueError, TypeError, KeyError) as e:
            message = f"cannot send the model's prediction: {e}"
            log.error("unusable prediction %.300r for request %.200s", prediction, text, exc_info=True)
    log.warning("error reply: %s", message)
    return error_reply(message), None, None


def run_error_loop(message: str, stdin_binary: BinaryIO, stdout_binary: BinaryIO) -> int:
    """Answer every request with the same error until EOF; returns 1.

    Used when the application process cannot start (bad options, no model): GATE then shows
    this message in its exception instead of failing on a dead pipe or hanging.
    """
    reply = error_reply(message)
    for raw in request_lines(stdin_binary):
        if raw is not _TOO_LONG and decode_request_line(raw).strip() == STOP_LINE:
            break
        try:
            stdout_binary.write(reply)
            stdout_binary.flush()
        except BrokenPipeError:
            break
    return 1
