"""The codec stored as an ordered list of parts (model format 4, lfengine/data/codec_parts.py),
and models written before it: tests/models/ holds two small models that lfengine wrote in
format 3 (a tagger with characters, a classifier with a token list and numeric columns), with
the replies that version gave for a dozen instances."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lfengine import cli, service
from lfengine.data.codec import Codec
from lfengine.errors import ModelError
from lfengine.storage import store

MODELS = Path(__file__).resolve().parent / "models"


def _numbers(value: object) -> list[float]:
    """Every number of a reply, in order (confidences and distributions, nested per token)."""
    if isinstance(value, dict):
        return [n for key in sorted(value) for n in _numbers(value[key])]
    if isinstance(value, list):
        return [n for item in value for n in _numbers(item)]
    return [value] if isinstance(value, float) else []


def _copy(name: str, tmp_path: Path) -> Path:
    model_dir = tmp_path / name
    shutil.copytree(MODELS / f"format3-{name}", model_dir)
    return model_dir


@pytest.mark.parametrize("name", ["seq", "cls"])
def test_a_format_3_model_loads_and_predicts_as_the_version_that_wrote_it(name: str, tmp_path: Path) -> None:
    model_dir = _copy(name, tmp_path)
    metadata, _ = store.load_model_dir(model_dir)
    assert json.loads((model_dir / "model.json").read_text())["format_version"] == 3
    assert "nominal" in metadata["codec"] and "parts" not in metadata["codec"]  # the old groups
    expected = json.loads((MODELS / f"format3-{name}.expected.json").read_text())
    replies = service.load_model(str(model_dir)).apply(expected["instances"], distribution=True)
    assert [r["label"] for r in replies] == [r["label"] for r in expected["replies"]]
    # recorded on one CPU: another may round float32 sums differently in the last bits
    assert _numbers(replies) == pytest.approx(_numbers(expected["replies"]), abs=1e-4)
    assert cli.main(["eject", str(model_dir), "-o", str(tmp_path / "net.py")]) == 0


@pytest.mark.parametrize("name", ["seq", "cls"])
def test_an_old_codec_is_stored_again_as_its_parts_and_reads_back_the_same(name: str, tmp_path: Path) -> None:
    metadata, _ = store.load_model_dir(_copy(name, tmp_path))
    codec = Codec.from_dict(metadata["codec"])
    stored = json.loads(json.dumps(codec.to_dict()))
    kinds = [part["kind"] for part in stored["parts"]]
    assert kinds == (
        ["nominal", "numeric", "lists", "chars"] if name == "seq" else ["nominal", "numeric", "lists"]
    )
    assert not {"nominal", "numeric", "lists", "char_vocab", "kinds"} & set(stored)
    again = Codec.from_dict(stored)
    assert again.to_dict() == stored and again.layout() == codec.layout()
    assert again.char_oov_rows == codec.char_oov_rows and again.key_column == codec.key_column


def test_a_garbled_part_is_a_model_error(tmp_path: Path) -> None:
    metadata, _ = store.load_model_dir(_copy("cls", tmp_path))
    stored = Codec.from_dict(metadata["codec"]).to_dict()
    stored["parts"][0] = {**stored["parts"][0], "extra": 1}
    with pytest.raises(ModelError, match="nominal part has keys"):
        Codec.from_dict(stored)
    stored["parts"][0] = ["nominal"]
    with pytest.raises(ModelError, match="not"):
        Codec.from_dict(stored)
