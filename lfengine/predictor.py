"""Batched application and evaluation of a trained network.

``apply`` turns unlabeled LF instances into labels, the probability of each chosen label and,
on request, the full distribution; ``evaluate`` runs labeled data through the same path and
scores it. Results never depend on which other instances share the batch: the networks mask
or pack all padding.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from lfengine.builder.base import TaskModel
from lfengine.data.batching import collate
from lfengine.data.codec import Codec
from lfengine.data.encoding import Encoded
from lfengine.data.reader import encode_instances, read_data, unseen_gold_labels
from lfengine.evaluation import metrics

#: Instances per forward pass when a request or data set is large.
MAX_ROWS_PER_PASS = 8192
#: Sequence elements per forward pass, padding included (sequences x the longest one's length).
#: A pass's activations grow with its padded elements: the character encoder alone holds about
#: 2 kB per character position. Passes of 8192 elements (twice that once padded) took the
#: engine from 254 to 582 MB peak RSS for an apply-batch of 1000 seq-pos1 sentences; passes of
#: 2048 padded elements, to 360 MB, and faster: 0.76 against 1.08 CPU seconds on one thread
#: (bench/reliability/memory.py).
MAX_PADDED_ELEMENTS_PER_PASS = 2048


@dataclass
class RowOutputs:
    """Per row (instance, or sequence element) outputs, in the data's row order."""

    label_ids: np.ndarray | None  # (rows,)
    confidence: np.ndarray | None  # (rows,)
    distribution: np.ndarray | None  # (rows, C)
    values: np.ndarray | None  # (rows,) regression, original units


class Predictor:
    """A network with its codec, ready to apply; keeps no per-request state."""

    def __init__(self, model: TaskModel, codec: Codec, device: torch.device | str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.codec = codec
        self.device = torch.device(device)

    def passes(self, data: Encoded) -> list[np.ndarray]:
        """The items of each forward pass: at most MAX_ROWS_PER_PASS instances, or sequences
        of at most MAX_PADDED_ELEMENTS_PER_PASS elements once padded to the pass's longest."""
        if data.seq_offsets is None:
            order = np.arange(len(data))
            return [
                order[start : start + MAX_ROWS_PER_PASS] for start in range(0, len(order), MAX_ROWS_PER_PASS)
            ]
        lengths = data.lengths()
        # Longest first, so that each pass pads to its own first sequence, and sequences of like
        # length share a pass; empty sequences have no rows to predict and are not run at all
        # (a batch of nothing but empty sequences has no element rows to pad from).
        order = np.argsort(-lengths, kind="stable")
        order = order[lengths[order] > 0]
        chunks, start = [], 0
        while start < len(order):
            count = max(1, MAX_PADDED_ELEMENTS_PER_PASS // int(lengths[order[start]]))
            chunks.append(order[start : start + count])
            start += count
        return chunks

    def run(
        self, data: Encoded, *, want_distribution: bool = True, with_loss: bool = False
    ) -> tuple[RowOutputs, float | None]:
        """Forward the whole of ``data`` in passes of bounded memory; the loss is the one of a
        single pass: each pass's mean weighted by what the network's loss averages over."""
        lengths = data.lengths()
        # A CRF's loss is a mean over (non-empty) sequences, a softmax tagger's over elements.
        per_element = data.seq_offsets is not None and getattr(self.model, "crf", None) is None
        parts, loss_sum, loss_weight = [], 0.0, 0
        with torch.inference_mode():
            for items in self.passes(data):
                batch = collate(data, items).to(self.device)
                if with_loss:
                    weight = int(lengths[items].sum()) if per_element else len(items)
                    loss_sum += float(self.model.loss(batch)) * weight
                    loss_weight += weight
                parts.append((items, self.model.predict(batch)))
        outputs = self._gather(data, parts, want_distribution)
        return outputs, (loss_sum / loss_weight if loss_weight else None)

    def _gather(self, data: Encoded, parts: list, want_distribution: bool) -> RowOutputs:
        """Put per-chunk predictions back into row order (sequences: drop the padding)."""
        num_rows = len(data.nominal)
        regression = self.codec.task == "regression"
        k = len(self.codec.labels)
        ids = np.zeros(num_rows, np.int64) if not regression else None
        conf = np.zeros(num_rows, np.float64) if not regression else None
        dist = np.zeros((num_rows, k), np.float32) if want_distribution and not regression else None
        values = np.zeros(num_rows, np.float64) if regression else None
        for items, pred in parts:
            if data.seq_offsets is None:
                rows, take = items, slice(None)
            else:
                starts = data.seq_offsets[items]
                lengths = data.seq_offsets[items + 1] - starts
                valid = np.arange(pred.label_ids.shape[1])[None, :] < lengths[:, None]
                rows = (starts[:, None] + np.arange(valid.shape[1])[None, :])[valid]
                take = torch.from_numpy(valid).to(pred.label_ids.device)
            if regression:
                values[rows] = (
                    pred.values.double().cpu().numpy() * self.codec.target_std + self.codec.target_mean
                )
                continue
            ids[rows] = pred.label_ids[take].cpu().numpy()
            conf[rows] = _probabilities(pred.confidence[take])
            if dist is not None:
                dist[rows] = _probabilities(pred.distribution[take])
        return RowOutputs(ids, conf, dist, values)

    def apply(self, instances: list, *, distribution: bool = False) -> list[dict]:
        """One result per instance: label(s), confidence(s), optionally distribution(s)."""
        data = encode_instances(self.codec, instances)
        if len(data) == 0:
            return []
        out, _ = self.run(data, want_distribution=distribution)
        return self._results(data, out, distribution)

    def _results(self, data: Encoded, out: RowOutputs, distribution: bool) -> list[dict]:
        if out.values is not None:
            return [{"label": float(v), "confidence": 1.0} for v in out.values.tolist()]
        labels = self.codec.labels
        names = [labels[i] for i in out.label_ids.tolist()]
        conf = out.confidence.tolist()
        dist = out.distribution.tolist() if distribution else None
        if data.seq_offsets is None:
            results = [{"label": names[i], "confidence": conf[i]} for i in range(len(names))]
            if dist is not None:
                for r, d in zip(results, dist):
                    r["distribution"] = d
            return results
        results = []
        bounds = data.seq_offsets.tolist()
        for a, b in zip(bounds[:-1], bounds[1:]):
            r = {"label": names[a:b], "confidence": conf[a:b]}
            if dist is not None:
                r["distribution"] = dist[a:b]
            results.append(r)
        return results

    def evaluate(self, data: Encoded) -> dict:
        """Metrics of lfengine.evaluation.metrics for labeled data, plus the mean loss."""
        return self.evaluate_rows(data)[0]

    def evaluate_rows(self, data: Encoded, labels: list[str] | None = None) -> tuple[dict, RowOutputs]:
        """``evaluate``, and the predictions it scored (for error analysis).

        ``labels``: the model's labels followed by gold labels unseen in training (target ids from
        ``len(codec.labels)`` on); those rows count as errors and are reported in ``unseen_labels``.
        The loss covers the items whose gold labels the model knows.
        """
        labels = labels or self.codec.labels
        if self.codec.task == "regression":
            out, loss = self.run(data, want_distribution=False, with_loss=True)
            return {**score(self.codec, data, out, labels), "loss": loss or 0.0}, out
        unseen_rows = data.targets >= len(self.codec.labels)
        if not unseen_rows.any():
            out, loss = self.run(data, want_distribution=False, with_loss=True)
        else:
            out, _ = self.run(data, want_distribution=False)
            owner = np.repeat(np.arange(len(data)), data.lengths()) if data.seq_offsets is not None else None
            bad_items = np.unique(owner[unseen_rows]) if owner is not None else np.flatnonzero(unseen_rows)
            known_items = np.setdiff1d(np.arange(len(data)), bad_items)
            loss = self.run(data.subset(known_items), with_loss=True)[1] if len(known_items) else None
        report = score(self.codec, data, out, labels)
        report["loss"] = loss if loss is not None else 0.0
        report["oov"] = _oov(self.codec, data, out, labels)
        counts = np.bincount(data.targets[unseen_rows] - len(self.codec.labels), minlength=len(labels))
        report["unseen_labels"] = {
            "count": int(unseen_rows.sum()),
            "labels": {label: int(n) for label, n in zip(labels[len(self.codec.labels) :], counts)},
        }
        return report, out

    def evaluate_file(self, path: str) -> tuple[dict, Encoded, RowOutputs]:
        """``evaluate_rows`` on a labeled data file, with the confusion matrix of a classifier or
        tagger; gold labels the model never saw count as errors (``unseen_labels``)."""
        unseen = unseen_gold_labels(self.codec, path)
        labels = [*self.codec.labels, *unseen]
        codec = dataclasses.replace(self.codec, labels=labels) if unseen else self.codec
        data = read_data(codec, path).data
        report, outputs = self.evaluate_rows(data, labels)
        if self.codec.task != "regression":
            report["confusion"] = metrics.confusion_matrix(data.targets, outputs.label_ids, labels)
        return report, data, outputs


def _probabilities(values: torch.Tensor) -> np.ndarray:
    """Confidences and distributions both pass here, rounded to float32 alike (a CRF computes its
    marginals in float64), so that a label's confidence equals its distribution entry exactly."""
    return values.float().cpu().numpy()


def score(codec: Codec, data: Encoded, out: RowOutputs, labels: list[str] | None = None) -> dict:
    """Compare predictions with the gold targets of ``data`` (``labels``: see ``evaluate_rows``)."""
    if codec.task == "regression":
        gold = data.targets.astype(np.float64) * codec.target_std + codec.target_mean
        return {"task": "regression", **metrics.regression_report(gold, out.values)}
    labels = labels or codec.labels
    if data.seq_offsets is None:
        return metrics.classification_report(data.targets, out.label_ids, labels)
    bounds = data.seq_offsets.tolist()
    gold = [data.targets[a:b].tolist() for a, b in zip(bounds[:-1], bounds[1:])]
    pred = [out.label_ids[a:b].tolist() for a, b in zip(bounds[:-1], bounds[1:])]
    return metrics.sequence_report(gold, pred, labels, len(codec.labels))


def _oov(codec: Codec, data: Encoded, out: RowOutputs, labels: list[str]) -> dict | None:
    """Known vs unknown token strings (the codec's key column); None when there is none."""
    if codec.key_column is None or codec.task == "regression":
        return None
    vocab = codec.vocabs[codec.nominal[codec.key_column].emb_id]
    unknown = data.nominal[:, codec.key_column] == vocab.unknown_index
    bounds = data.seq_offsets.tolist() if data.seq_offsets is not None else None
    return metrics.oov_report(data.targets, out.label_ids, unknown, labels, bounds, len(codec.labels))


def headline(report: dict) -> dict[str, float]:
    """The few numbers shown in progress lines and used for early stopping."""
    if report.get("task") == "regression":
        return {
            "mse": report["mse"],
            "mae": report["mae"],
            "r2": report["r2"],
            "loss": report.get("loss", 0.0),
        }
    result = {
        "accuracy": report["accuracy"],
        "macro_f1": report["macro"]["f1"],
        "loss": report.get("loss", 0.0),
    }
    if "spans" in report:
        result["span_f1"] = report["spans"]["overall"]["f1"]
    return result
