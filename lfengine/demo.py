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
from lfengine.console.progress import ProgressDisplay
from lfengine.data.synthetic import write_classification_corpus, write_sequence_corpus

DEMO_EPOCHS = 6  # enough for the generated data; early stopping often ends sooner
DEMO_OPTIONS = {"max_epochs": DEMO_EPOCHS, "es_patience": 2}
# One torch thread: on a small machine more threads cost more CPU time than they save.
ENGINE_SETTINGS = {"threads": 1}


def _say(text: str = "") -> None:
    print(text, flush=True)


class _Progress:
    """The engine's progress notifications: a bar inside each epoch (on a terminal), and one
    line per validation."""

    def __init__(self) -> None:
        self.display = ProgressDisplay(sys.stderr, log_interval=5.0)

    def __call__(self, method: str, params: dict) -> None:
        p = params.get("progress", {})
        if method != "progress" or not p:
            return
        if p.get("metrics"):
            self.display.erase()
            shown = ", ".join(f"{k} {v:.3f}" for k, v in p["metrics"].items())
            _say(f"    epoch {p['epoch']:>2}: train loss {p['loss']:.3f}; validation {shown}")
        else:
            self.display.update(p)


def _data_path(meta: Path) -> Path:
    return meta.with_name(meta.name.replace(".meta.json", ".data.json"))


def _hold_out(meta: Path, count: int) -> tuple[Path, Path]:
    """Move the last ``count`` lines of the data file to a held-out test file. The meta file keeps
    describing everything, as an LF export does (vocabularies come from the whole corpus)."""
    lines = _data_path(meta).read_text(encoding="utf-8").splitlines(keepends=True)
    _data_path(meta).write_text("".join(lines[:-count]), encoding="utf-8")
    test_meta = meta.with_name("test.meta.json")
    test_meta.write_text(meta.read_text(encoding="utf-8"), encoding="utf-8")
    _data_path(test_meta).write_text("".join(lines[-count:]), encoding="utf-8")
    return meta, test_meta


def _first_records(meta: Path, count: int) -> list:
    with open(_data_path(meta), encoding="utf-8") as f:
        return [json.loads(next(f)) for _ in range(count)]


def _run_task(
    engine: EngineClient, title: str, train_meta: Path, test_meta: Path, name: str, root: Path
) -> None:
    _say(f"=== {title} ===")
    described = engine.call("describe", {"meta": str(train_meta), "options": DEMO_OPTIONS})
    _say(f"task: {described['task']}; labels: {', '.join(described['labels'])}")
    _say("architecture chosen from the feature metadata:")
    _say(described["architecture"]["text"])
    _say("training:")
    result = engine.call(
        "train",
        {
            "meta": str(train_meta),
            "model": str(root / name),
            "name": name,
            "options": DEMO_OPTIONS,
        },
    )
    _say(
        f"  stopped: {result['stopped']} after {result['epochs']} epochs ({result['seconds']:.1f} s); "
        f"best epoch {result['best_epoch']}"
    )
    test_data = str(_data_path(test_meta))
    report = engine.call("evaluate", {"model": name, "data": test_data})
    line = f"held-out evaluation: accuracy {report['accuracy']:.3f}, macro F1 {report['macro']['f1']:.3f}"
    if "spans" in report:
        line += f", entity-span F1 {report['spans']['overall']['f1']:.3f}"
    _say(line)
    records = _first_records(test_meta, 3)
    predictions = engine.call("apply-batch", {"model": name, "instances": [r[0] for r in records]})[
        "predictions"
    ]
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
        seq_train, seq_test = _hold_out(write_sequence_corpus(root / "seq", 260, seed=1), 60)
        cls_train, cls_test = _hold_out(write_classification_corpus(root / "cls", 500, seed=1), 100)
        log_path = root / "engine.log"
        _say(f"the engine's log goes to {log_path}")
        with (
            open(log_path, "wb") as log_file,
            EngineClient(on_notification=_Progress(), stderr=log_file) as engine,
        ):
            engine.call("init", {"notifications": ["progress"], "log_level": "warning", **ENGINE_SETTINGS})
            _run_task(engine, "sequence tagging (chunk labels)", seq_train, seq_test, "tagger", root)
            _run_task(
                engine,
                "classification (text + numeric + boolean features)",
                cls_train,
                cls_test,
                "classifier",
                root,
            )
            status = engine.call("status")
            _say(
                f"engine status: {status['state']}, models loaded: "
                f"{', '.join(m['name'] or m.get('model_dir', '?') for m in status['models'])}"
            )
        _say("done: both models were trained, evaluated and applied by one resident engine process.")
    return 0
