"""The codec written once per training run beside model.json (lfengine/storage/model_parts.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lfengine import service
from lfengine.data.synthetic import write_sequence_corpus
from lfengine.errors import ModelError
from lfengine.options import TrainOptions
from lfengine.storage import store


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parts")
    meta = write_sequence_corpus(root / "data", 60, seed=2)
    model_dir = root / "m"
    saves: list[tuple[int, int]] = []

    def on_progress(event: dict) -> None:
        if event["metrics"]:
            codec = next(model_dir.glob("codec-*.json"))
            saves.append((codec.stat().st_ino, codec.stat().st_mtime_ns))

    service.train(
        str(meta),
        str(model_dir),
        TrainOptions(max_epochs=3, device="cpu", threads=1),
        on_progress=on_progress,
    )
    assert len(saves) == 3 and len(set(saves)) == 1, "the codec file was rewritten during the run"
    return model_dir


def test_model_json_refers_to_the_codec_written_once_and_loads(trained: Path) -> None:
    header = json.loads((trained / "model.json").read_text())
    ref = header["metadata"]["codec"]
    assert set(ref) == {"file", "sha256"} and (trained / ref["file"]).is_file()
    assert header["format_version"] == store.FORMAT_VERSION == 4
    model = service.load_model(str(trained))
    assert model.codec.to_dict() == json.loads((trained / ref["file"]).read_text())
    assert [p.name for p in trained.glob("codec-*.json")] == [ref["file"]]


def test_a_missing_or_altered_codec_file_is_refused_clearly(trained: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in trained.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    codec = next(copy.glob("codec-*.json"))
    codec.write_text(codec.read_text().replace("PER", "PRS"))
    with pytest.raises(ModelError, match="does not belong"):
        service.load_model(str(copy))
    codec.unlink()
    with pytest.raises(ModelError, match="missing"):
        service.load_model(str(copy))


def test_retraining_into_the_directory_leaves_one_codec_file(trained: Path, tmp_path: Path) -> None:
    meta = write_sequence_corpus(tmp_path / "other", 40, seed=9)  # other words: another codec
    service.train(str(meta), str(trained), TrainOptions(max_epochs=1, device="cpu", threads=1))
    files = list(trained.glob("codec-*.json"))
    assert len(files) == 1
    assert json.loads((trained / "model.json").read_text())["metadata"]["codec"]["file"] == files[0].name
    service.load_model(str(trained))
