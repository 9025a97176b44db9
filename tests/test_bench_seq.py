"""bench/seq_corpora.py writes LF exports lfengine reads, whose tails hold many unseen entity
words; bench/baselines_seq.py prints its rows (when sklearn-crfsuite is installed)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from timeouts import scaled

from lfengine.data.meta import read_meta
from lfengine.evaluation.metrics import is_chunk_label_set

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.seq_corpora import write_ner, write_pos  # noqa: E402


def _lines(meta: Path) -> list[list]:
    return [json.loads(line) for line in read_meta(meta).data_path().read_text(encoding="utf-8").splitlines()]


def test_the_ner_corpus_is_cased_chunk_labelled_and_its_tail_brings_new_names(tmp_path: Path):
    meta = write_ner(tmp_path / "ner", 400, seed=3)
    spec = read_meta(meta)
    assert spec.is_sequence and [c.name for c in spec.columns] == ["Token┆string╬A", "Token┆orth╬A"]
    records = _lines(meta)
    labels = {label for _, seq in records for label in seq}
    assert is_chunk_label_set(sorted(labels)) and {"PER|I", "ORG|I", "LOC|B", "MISC|B"} <= labels
    train, tail = records[:320], records[320:]
    seen = {vec[0] for seq, _ in train for vec in seq}
    entity_words = [vec[0] for seq, labels in tail for vec, label in zip(seq, labels) if label != "O"]
    unseen = sum(word not in seen for word in entity_words) / len(entity_words)
    assert 0.3 < unseen < 0.9
    assert all(
        vec[0][0].isupper()
        for seq, labels in records
        for vec, label in zip(seq, labels)
        if label.endswith("|B")
    )
    assert _lines(write_ner(tmp_path / "again", 400, seed=3)) == records  # seeded


def test_the_pos_corpus_has_upos_like_tags(tmp_path: Path):
    records = _lines(write_pos(tmp_path / "pos", 200, seed=3))
    tags = {tag for _, seq in records for tag in seq}
    assert {"NOUN", "VERB", "ADJ", "ADV", "DET", "ADP", "PUNCT", "PROPN"} <= tags
    assert not is_chunk_label_set(sorted(tags))


@pytest.mark.skipif(importlib.util.find_spec("sklearn_crfsuite") is None, reason="sklearn-crfsuite missing")
def test_baselines_seq_prints_every_system_for_a_shared_file(lfdata: Path, tmp_path: Path):
    out = tmp_path / "rows.json"
    cmd = [
        sys.executable,
        "bench/baselines_seq.py",
        "--quick",
        "--seeds",
        "1",
        "--only",
        "seq-pos2",
        "--json",
        out,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=scaled(300))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [r["system"] for r in rows] == [
        "lfengine defaults",
        "CRF (file columns)",
        "CRF (+prefix/suffix/casing)",
    ]
    for row in rows:
        assert row["data"] == "seq-pos2" and row["metric"] == "span_f1" and row["train_size"] == 80
        assert 0.0 <= row["score"] <= 1.0
    assert "CRF (+prefix/suffix/casing)" in proc.stdout
