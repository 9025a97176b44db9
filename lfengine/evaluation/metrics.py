"""Evaluation metrics: accuracy, per-label precision/recall/F1, span F1 for LF chunking labels,
regression errors, and a readable table of any of these reports.

Numpy only, so reports can be computed without torch (e.g. from predictions read back from a
file). Every report is a JSON-able dict of plain ints, floats and strings. A ratio whose
denominator is zero (precision of a label never predicted, recall of a label absent from the gold
data, F1 when precision + recall is 0) is reported as 0.0, never NaN, so reports always serialise
as strict JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

OUTSIDE_LABEL = "O"
CHUNK_CODES = ("B", "I")


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def _prf(correct: int, predicted: int, gold: int) -> dict[str, float]:
    precision = _ratio(correct, predicted)
    recall = _ratio(correct, gold)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1}


def _as_index_array(values: Sequence[int] | np.ndarray, num_labels: int, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer label indices, got dtype {array.dtype}")
    array = array.astype(np.int64).ravel()
    bad = (array < 0) | (array >= num_labels)
    if bad.any():
        first_bad = int(array[bad][0])
        raise ValueError(f"{name} holds label index {first_bad}, outside 0..{num_labels - 1}")
    return array


def classification_report(
    gold: Sequence[int] | np.ndarray, pred: Sequence[int] | np.ndarray, labels: Sequence[str]
) -> dict:
    """Accuracy, per-label precision/recall/F1 and their macro and micro averages.

    ``gold`` and ``pred`` are label indices into ``labels``. Macro averages are taken over the
    labels that occur in gold or predictions: a label the model knows but that neither the data
    nor the predictions contain has no defined score and would only drag the mean to 0. Micro
    averages count every instance once; with exactly one label per instance micro precision,
    recall and F1 all equal the accuracy.
    """
    labels = list(labels)
    if len(set(labels)) != len(labels):
        raise ValueError("labels contain duplicates")
    k = len(labels)
    gold_idx = _as_index_array(gold, k, "gold")
    pred_idx = _as_index_array(pred, k, "pred")
    if gold_idx.shape != pred_idx.shape:
        raise ValueError(f"gold has {gold_idx.size} labels but pred has {pred_idx.size}")
    support = np.bincount(gold_idx, minlength=k)
    predicted = np.bincount(pred_idx, minlength=k)
    correct = np.bincount(gold_idx[gold_idx == pred_idx], minlength=k)
    per_label = {}
    for i, label in enumerate(labels):
        scores = _prf(int(correct[i]), int(predicted[i]), int(support[i]))
        per_label[label] = {**scores, "support": int(support[i]), "predicted": int(predicted[i])}
    present = [labels[i] for i in range(k) if support[i] or predicted[i]]
    macro = {
        key: _ratio(sum(per_label[label][key] for label in present), len(present))
        for key in ("precision", "recall", "f1")
    }
    total_correct = int(correct.sum())
    return {
        "task": "classification",
        "instances": int(gold_idx.size),
        "accuracy": _ratio(total_correct, gold_idx.size),
        "per_label": per_label,
        "macro": macro,
        "micro": _prf(total_correct, int(predicted.sum()), int(support.sum())),
    }


def confusion_matrix(
    gold: Sequence[int] | np.ndarray, pred: Sequence[int] | np.ndarray, labels: Sequence[str]
) -> dict:
    """Counts of (gold, predicted) label pairs: ``matrix[g][p]``, rows and columns in ``labels`` order."""
    k = len(labels)
    gold_idx = _as_index_array(gold, k, "gold")
    pred_idx = _as_index_array(pred, k, "pred")
    counts = np.bincount(gold_idx * k + pred_idx, minlength=k * k).reshape(k, k)
    return {"labels": list(labels), "matrix": counts.tolist()}


def single_predicted_label(report: dict) -> str | None:
    """The label a classifier or tagger predicts for everything, when the gold data hold more than
    one label: the sign of a model that learnt only the majority class (accuracy can still look
    fine, e.g. ``O`` in NER). None otherwise."""
    per_label = report.get("per_label") or {}
    predicted = [label for label, s in per_label.items() if s["predicted"]]
    gold = [label for label, s in per_label.items() if s["support"]]
    return predicted[0] if len(predicted) == 1 and len(gold) > 1 else None


def flatten_sequences(gold_seqs: Sequence[Sequence], pred_seqs: Sequence[Sequence]) -> tuple[list, list]:
    """Concatenate per-sequence label lists, checking that gold and prediction align."""
    if len(gold_seqs) != len(pred_seqs):
        raise ValueError(f"{len(gold_seqs)} gold sequences but {len(pred_seqs)} predicted ones")
    gold_flat: list = []
    pred_flat: list = []
    for i, (gold_seq, pred_seq) in enumerate(zip(gold_seqs, pred_seqs)):
        if len(gold_seq) != len(pred_seq):
            raise ValueError(f"sequence {i}: {len(gold_seq)} gold labels but {len(pred_seq)} predicted")
        gold_flat.extend(gold_seq)
        pred_flat.extend(pred_seq)
    return gold_flat, pred_flat


def _to_indices(values: list, labels: Sequence[str], name: str) -> np.ndarray:
    if all(isinstance(v, str) for v in values):
        index = {label: i for i, label in enumerate(labels)}
        unknown = next((v for v in values if v not in index), None)
        if unknown is not None:
            raise ValueError(f"{name} holds label {unknown!r}, which is not in the label set")
        return np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))
    return np.asarray(values)


def _to_label_seqs(seqs: Sequence[Sequence], labels: Sequence[str]) -> list[list[str]]:
    return [[v if isinstance(v, str) else labels[int(v)] for v in seq] for seq in seqs]


def span_labels(labels: Sequence[str], known: int | None = None) -> list[str] | None:
    """The label names that span decoding reads, or None when the model's labels (the first
    ``known`` of ``labels``; the rest are gold labels unseen in training) are no chunk label set.
    An unseen gold label that is no chunk label reads as outside (``O``)."""
    known = len(labels) if known is None else known
    if not is_chunk_label_set(labels[:known]):
        return None
    return [
        label if i < known or is_chunk_label_set([label]) else OUTSIDE_LABEL for i, label in enumerate(labels)
    ]


def sequence_report(
    gold_seqs: Sequence[Sequence[int | str]],
    pred_seqs: Sequence[Sequence[int | str]],
    labels: Sequence[str],
    known: int | None = None,
) -> dict:
    """Per-token classification report over flattened sequences, plus span scores for chunk labels.

    Labels may be given as indices into ``labels`` or as the label strings themselves. When the
    label set is an LF chunking label set (``is_chunk_label_set``) the report has a ``spans``
    entry from ``span_report``. ``known``: see ``span_labels``.
    """
    gold_flat, pred_flat = flatten_sequences(gold_seqs, pred_seqs)
    report = classification_report(
        _to_indices(gold_flat, labels, "gold"), _to_indices(pred_flat, labels, "pred"), labels
    )
    report["task"] = "sequence"
    report["sequences"] = len(gold_seqs)
    names = span_labels(labels, known)
    if names is not None:
        report["spans"] = span_report(_to_label_seqs(gold_seqs, names), _to_label_seqs(pred_seqs, names))
    return report


@dataclass(frozen=True, order=True)
class Span:
    """A decoded chunk: elements ``start`` up to (not including) ``end`` of one sequence."""

    start: int
    end: int
    type: str


def is_chunk_label_set(labels: Sequence[str]) -> bool:
    """Whether ``labels`` are LF chunking labels: ``O`` or ``Type|B``/``Type|I`` parts joined by ``,``.

    Needs at least one chunk label; a set of only ``O`` is not a chunking task.
    """
    has_chunk = False
    for label in labels:
        if not isinstance(label, str):
            return False
        if label == OUTSIDE_LABEL:
            continue
        for part in label.split(","):
            pieces = part.split("|")
            if len(pieces) != 2 or not pieces[0] or pieces[1] not in CHUNK_CODES:
                return False
        has_chunk = True
    return has_chunk


def decode_spans(labels: Sequence[str | None]) -> list[Span]:
    """Decode the chunk labels of one sequence exactly as GATE's LF_ApplyChunking does.

    ``O`` (or a missing label) closes every open chunk; ``X|B`` closes an open X and opens a new
    one; ``X|I`` extends an open X and is ignored when none is open; open chunks whose type does
    not occur in the current label are closed; the end of the sequence closes everything. Like
    GATE, a part that is not ``Type|code`` or has a code other than B/I is an error.
    """
    open_chunks: dict[str, list[int]] = {}  # type -> [first element, last element]
    spans: list[Span] = []

    def close(chunk_type: str) -> None:
        first, last = open_chunks.pop(chunk_type)
        spans.append(Span(first, last + 1, chunk_type))

    for position, label in enumerate(labels):
        if not label or label == OUTSIDE_LABEL:
            for chunk_type in list(open_chunks):
                close(chunk_type)
            continue
        present = set()
        for part in label.split(","):
            pieces = part.split("|")
            if len(pieces) != 2:
                raise ValueError(f"odd type and code {part!r} in chunk label {label!r}")
            chunk_type, code = pieces
            present.add(chunk_type)
            if code == "B":
                if chunk_type in open_chunks:
                    close(chunk_type)
                open_chunks[chunk_type] = [position, position]
            elif code == "I":
                if chunk_type in open_chunks:
                    open_chunks[chunk_type][1] = position
            else:
                raise ValueError(f"unexpected chunk code {code!r} in label {label!r} (only B and I exist)")
        for chunk_type in [t for t in open_chunks if t not in present]:
            close(chunk_type)
    for chunk_type in list(open_chunks):
        close(chunk_type)
    return sorted(spans)


def span_report(gold_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]]) -> dict:
    """Exact-match span precision/recall/F1 per chunk type and overall (micro over all spans).

    A predicted span counts as correct only when a gold span of the same type has the same start
    and end in the same sequence. Each type entry also gives the gold, predicted and correct counts.
    """
    flatten_sequences(gold_seqs, pred_seqs)  # alignment check
    gold_spans = {(i, span) for i, seq in enumerate(gold_seqs) for span in decode_spans(seq)}
    pred_spans = {(i, span) for i, seq in enumerate(pred_seqs) for span in decode_spans(seq)}
    correct_spans = gold_spans & pred_spans

    def counts(spans: set, chunk_type: str | None) -> int:
        return sum(1 for _, span in spans if chunk_type is None or span.type == chunk_type)

    def entry(chunk_type: str | None) -> dict:
        gold, predicted, correct = (counts(s, chunk_type) for s in (gold_spans, pred_spans, correct_spans))
        return {**_prf(correct, predicted, gold), "gold": gold, "predicted": predicted, "correct": correct}

    types = sorted({span.type for _, span in gold_spans | pred_spans})
    return {"per_type": {t: entry(t) for t in types}, "overall": entry(None)}


def oov_report(
    gold: Sequence[int] | np.ndarray,
    pred: Sequence[int] | np.ndarray,
    unknown: Sequence[bool] | np.ndarray,
    labels: Sequence[str],
    seq_bounds: Sequence[int] | None = None,
    known: int | None = None,
) -> dict:
    """Scores over the tokens (or instances) whose token string the model knows vs does not know.

    ``gold``/``pred`` are label indices per token, ``unknown`` whether its token string was
    unknown to the model. For sequences ``seq_bounds`` (the ``n + 1`` offsets of the sequences)
    allows span scores when the labels are chunk labels: a gold or predicted span is an
    ``unknown`` span when one of its tokens is unknown, and each group is scored on its own.
    ``known``: see ``span_labels``.
    """
    gold_idx, pred_idx = np.asarray(gold, np.int64), np.asarray(pred, np.int64)
    unknown_mask = np.asarray(unknown, dtype=bool)
    groups = {"known": ~unknown_mask, "unknown": unknown_mask}
    report = {
        name: {
            "count": int(mask.sum()),
            "accuracy": _ratio(int((gold_idx[mask] == pred_idx[mask]).sum()), mask.sum()),
        }
        for name, mask in groups.items()
    }
    names = span_labels(labels, known)
    if seq_bounds is None or names is None:
        return report
    found: dict[str, dict[str, set]] = {name: {"gold": set(), "pred": set()} for name in groups}
    for i, (a, b) in enumerate(zip(seq_bounds[:-1], seq_bounds[1:])):
        for kind, ids in (("gold", gold_idx), ("pred", pred_idx)):
            for span in decode_spans([names[j] for j in ids[a:b]]):
                name = "unknown" if unknown_mask[a + span.start : a + span.end].any() else "known"
                found[name][kind].add((i, span))
    for name, spans in found.items():
        correct = len(spans["gold"] & spans["pred"])
        report[name]["spans"] = {
            **_prf(correct, len(spans["pred"]), len(spans["gold"])),
            "gold": len(spans["gold"]),
            "predicted": len(spans["pred"]),
            "correct": correct,
        }
    return report


def regression_report(gold: Sequence[float] | np.ndarray, pred: Sequence[float] | np.ndarray) -> dict:
    """Mean squared error, its root, mean absolute error and the coefficient of determination R².

    R² compares against predicting the gold mean. When all gold values are equal it is undefined;
    it is then 1.0 for perfect predictions and 0.0 otherwise (scikit-learn's finite convention).
    """
    gold_values = np.asarray(gold, dtype=np.float64).ravel()
    pred_values = np.asarray(pred, dtype=np.float64).ravel()
    if gold_values.shape != pred_values.shape:
        raise ValueError(f"gold has {gold_values.size} values but pred has {pred_values.size}")
    if not (np.isfinite(gold_values).all() and np.isfinite(pred_values).all()):
        raise ValueError("regression values must be finite numbers")
    n = int(gold_values.size)
    if n == 0:
        return {"task": "regression", "instances": 0, "mse": 0.0, "rmse": 0.0, "mae": 0.0, "r2": 0.0}
    errors = pred_values - gold_values
    ss_res = float(np.sum(errors**2))
    ss_tot = float(np.sum((gold_values - gold_values.mean()) ** 2))
    if ss_tot > 0:
        r2 = 1.0 - ss_res / ss_tot
    else:
        r2 = 1.0 if ss_res == 0 else 0.0
    mse = ss_res / n
    return {
        "task": "regression",
        "instances": n,
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(np.mean(np.abs(errors))),
        "r2": r2,
    }
