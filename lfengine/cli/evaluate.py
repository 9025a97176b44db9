"""``lfengine evaluate``: scores, a confusion matrix, warnings for results that cannot be trusted,
and per-token (or per-instance) predictions for error analysis."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lfengine.cli import hints
from lfengine.cli.arguments import TRUST_MODULE, add_flags, add_model_and_data
from lfengine.cli.readable import token_column, token_text
from lfengine.cli.reports import render_evaluation
from lfengine.console.printable import printable


def evaluate_arguments(p: argparse.ArgumentParser) -> None:
    add_model_and_data(p, "a labeled LF data file ([features, target] per line)")
    predictions = (
        "also write every prediction: for sequences CoNLL-style columns token, gold, predicted, "
        "confidence (a blank line between sequences); for instances TSV line, gold, predicted, confidence"
    )
    add_flags(
        p,
        {
            "--json": {
                "action": "store_true",
                "help": "print the report as JSON (with confusion and warnings)",
            },
            "--predictions": {"metavar": "FILE", "help": predictions},
            **TRUST_MODULE,
        },
    )


@contextmanager
def _as_file(path: str) -> Iterator[str]:
    """A path to read (twice if need be): stdin is copied to a temporary file first."""
    if path != "-":
        yield path
        return
    with tempfile.NamedTemporaryFile(prefix="lfengine-stdin-", suffix=".data.json") as copy:
        shutil.copyfileobj(sys.stdin.buffer, copy)
        copy.flush()
        yield copy.name


def run_evaluate(args: argparse.Namespace) -> int:
    from lfengine import service
    from lfengine.files.paths import check_output, writing_output

    hints.check_model_argument(args.model_dir, args.data)
    if args.predictions:  # before the evaluation, which may take a while
        check_output(args.predictions, f"--predictions {args.predictions}: cannot write it")
    model = service.load_model(args.model_dir, trust_module=args.trust_module)
    with _as_file(args.data) as path:
        with hints.explaining_file(model, path):
            report, data, outputs = model.evaluation(path)
        report["file"] = args.data
        report["warnings"] = evaluation_warnings(report, model.metadata.get("training", {}), path)
        if args.predictions:
            labels = [*model.labels, *report.get("unseen_labels", {}).get("labels", {})]
            with writing_output(args.predictions, f"--predictions {args.predictions}: cannot write it"):
                write_predictions(Path(args.predictions), model, path, data, outputs, labels)
    print(json.dumps(report, indent=2) if args.json else printable(render_evaluation(report)))
    return 0


def evaluation_warnings(report: dict, training: dict[str, Any], path: str) -> list[str]:
    """Reasons not to trust the scores."""
    from lfengine.evaluation.metrics import (
        single_predicted_label,  # numpy: loaded by the command, not by --help
    )

    warnings = []
    only = single_predicted_label(report)
    if only is not None:
        warnings.append(
            f"the model predicts {only!r} for everything: it learnt only the majority label "
            "(train longer, or check the labels and the data)"
        )
    if _is_training_file(path, training):
        warnings.append(
            "this is the training data file: the scores show how well the model remembers, not how "
            "well it generalises; evaluate on held-out data"
        )
    return warnings


def _is_training_file(path: str, training: dict[str, Any]) -> bool:
    from lfengine.files.safe_io import sha256_file  # torch: loaded by the command, not by --help

    if training.get("data_sha256"):
        return sha256_file(Path(path)) == training["data_sha256"]
    meta = training.get("meta_file")  # models trained before the digest was stored
    return bool(meta) and Path(path).resolve() == Path(meta.replace(".meta.json", ".data.json")).resolve()


def write_predictions(
    target: Path, model: Any, path: str, data: Any, outputs: Any, labels: list[str]
) -> None:
    """``labels``: the model's, then the gold labels unseen in training (evaluate's target ids)."""
    from lfengine.data.reader import read_records

    records = [r for chunk in read_records(path, labeled=True) for r in chunk]
    with open(target, "w", encoding="utf-8") as out:
        if model.task == "regression":
            out.write("line\tgold\tpredicted\n")
            for i, (gold, value) in enumerate(zip(records, outputs.values.tolist()), 1):
                out.write(f"{i}\t{gold[1]}\t{value:.6g}\n")
            return
        gold_ids, pred_ids, conf = (
            data.targets.tolist(),
            outputs.label_ids.tolist(),
            outputs.confidence.tolist(),
        )
        if not model.is_sequence:
            out.write("line\tgold\tpredicted\tconfidence\n")
            for i in range(len(gold_ids)):
                out.write(f"{i + 1}\t{labels[gold_ids[i]]}\t{labels[pred_ids[i]]}\t{conf[i]:.4f}\n")
            return
        column = token_column(model.codec)
        bounds = data.seq_offsets.tolist()
        for (features, _), a, b in zip(records, bounds[:-1], bounds[1:]):
            for element, row in zip(features, range(a, b)):
                token = token_text(element, column)
                out.write(f"{token}\t{labels[gold_ids[row]]}\t{labels[pred_ids[row]]}\t{conf[row]:.4f}\n")
            out.write("\n")
