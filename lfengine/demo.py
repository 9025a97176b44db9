"""``lfengine demo``: the whole job on generated data, through the real engine process.

Writes two small LF corpora (a chunk-labelled sequence-tagging corpus and a text classification
corpus with numeric and boolean columns), then drives ``lfengine serve`` exactly as a client
would: describe, train with progress notifications, evaluate on held-out data, apply a batch.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from lfengine.client import EngineClient
from lfengine.data.synthetic import write_classification_corpus, write_sequence_corpus

DEMO_EPOCHS = 15  # enough for the generated data; early stopping often ends sooner


def _say(text: str = "") -> None:
    print(text, flush=True)


def _progress(method: str, params: dict) -> None:
    p = params.get("progress", {})
    if method == "progress" and p.get("metrics"):
        shown = ", ".join(f"{k} {v:.3f}" for k, v in p["metrics"].items())
        _say(f"    epoch {p['epoch']:>2}: train loss {p['loss']:.3f}; validation {shown}")


def _first_records(meta: Path, count: int) -> list:
    data = meta.with_name(meta.name.replace(".meta.json", ".data.json"))
    with open(data, encoding="utf-8") as f:
        return [json.loads(next(f)) for _ in range(count)]


def _run_task(engine: EngineClient, title: str, train_meta: Path, test_meta: Path, name: str, root: Path) -> None:
    _say(f"=== {title} ===")
    described = engine.call("describe", {"meta": str(train_meta), "options": {"max_epochs": DEMO_EPOCHS}})
    _say(f"task: {described['task']}; labels: {', '.join(described['labels'])}")
    _say("architecture chosen from the feature metadata:")
    _say(described["architecture"]["text"])
    _say("training:")
    result = engine.call("train", {"meta": str(train_meta), "model": str(root / name), "name": name,
                                   "options": {"max_epochs": DEMO_EPOCHS}})
    _say(f"  stopped: {result['stopped']} after {result['epochs']} epochs ({result['seconds']:.1f} s); "
         f"best epoch {result['best_epoch']}")
    test_data = str(test_meta.with_name(test_meta.name.replace(".meta.json", ".data.json")))
    report = engine.call("evaluate", {"model": name, "data": test_data})
    line = f"held-out evaluation: accuracy {report['accuracy']:.3f}, macro F1 {report['macro']['f1']:.3f}"
    if "spans" in report:
        line += f", entity-span F1 {report['spans']['overall']['f1']:.3f}"
    _say(line)
    records = _first_records(test_meta, 3)
    predictions = engine.call("apply-batch", {"model": name, "instances": [r[0] for r in records]})["predictions"]
    _say("a few predictions:")
    for (features, gold), pred in zip(records, predictions):
        if isinstance(pred["label"], list):
            tokens = [element[0] for element in features]
            shown = " ".join(f"{t}/{p}" for t, p in zip(tokens, pred["label"]))
            _say(f"  {shown}")
            _say(f"    gold: {' '.join(gold)}; min confidence {min(pred['confidence'], default=1.0):.2f}")
        else:
            text = " ".join(features[0][:8]) + (" ..." if len(features[0]) > 8 else "")
            _say(f"  [{text}] -> {pred['label']} ({pred['confidence']:.2f}), gold {gold}")
    _say()


def run_demo(workdir: str | None = None) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(workdir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        _say(f"writing generated LF corpora to {root}")
        seq_train = write_sequence_corpus(root / "seq-train", 400, seed=1)
        seq_test = write_sequence_corpus(root / "seq-test", 100, seed=2)
        cls_train = write_classification_corpus(root / "cls-train", 600, seed=1)
        cls_test = write_classification_corpus(root / "cls-test", 150, seed=2)
        with EngineClient(on_notification=_progress, stderr=sys.stderr) as engine:
            engine.call("init", {"notifications": ["progress"], "log_level": "warning"})
            _run_task(engine, "sequence tagging (chunk labels)", seq_train, seq_test, "tagger", root)
            _run_task(engine, "classification (text + numeric + boolean features)", cls_train, cls_test,
                      "classifier", root)
            status = engine.call("status")
            _say(f"engine status: {status['state']}, models loaded: "
                 f"{', '.join(m['name'] or m.get('model_dir', '?') for m in status['models'])}")
        _say("done: both models were trained, evaluated and applied by one resident engine process.")
    return 0
