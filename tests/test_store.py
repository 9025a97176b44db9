"""Model directory: round trip, atomic writes, version checks, refusal of pickles, strict JSON,
checkpoints that resume the same random streams, and the metrics log."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import lfengine
from lfengine.errors import ModelError
from lfengine.files.safe_io import atomic_write, sha256_file
from lfengine.storage import store
from lfengine.storage.store import (
    FORMAT_NAME,
    FORMAT_VERSION,
    load_checkpoint,
    load_model_dir,
    model_dir_for_prefix,
    model_paths,
    read_model_json,
    save_checkpoint,
    save_model_dir,
)
from lfengine.storage.train_state import capture_rng_state, restore_rng_state
from lfengine.training.model_writer import append_metrics

METADATA = {
    "task": "sequence",
    "labels": ["O", "LOC|B", "PER|I"],
    "vocabularies": [{"emb_id": "", "entries": ["", "<<oov>>", "the", "Zürich", "\u65e5\u672c", "\ud800"]}],
    "hyperparameters": {
        "learning_rate": 0.001,
        "kernel_sizes": [3, 4, 5],
        "dropout": None,
        "bidirectional": True,
    },
    "history": [{"epoch": 1, "loss": 1.25, "accuracy": 0.5}],
}


def make_network() -> torch.nn.Module:
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Embedding(20, 4), torch.nn.LSTM(4, 3, batch_first=True))


class Marker:
    """An arbitrary Python object; unpickling it would need this class."""

    def __init__(self) -> None:
        self.value = 42


class Exploit:
    """Unpickling this creates a directory: proof that code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def weights_file(model_dir: Path) -> Path:
    """The weights file the committed model.json names."""
    return model_dir / json.loads((model_dir / "model.json").read_text())["weights"]["file"]


def install_file(model_dir: Path, kind: str, data: bytes) -> Path:
    """Put ``data`` under its content name and make model.json name it as its ``kind`` file."""
    digest = hashlib.sha256(data).hexdigest()
    path = model_dir / f"{kind}-{digest[:16]}.pt"
    path.write_bytes(data)
    rewrite_header(model_dir, **{kind: {"file": path.name, "sha256": digest}})
    return path


def rewrite_header(model_dir: Path, **changes) -> None:
    path = model_dir / "model.json"
    header = json.loads(path.read_text())
    header.update(changes)
    path.write_text(json.dumps(header))


# --- round trip ---------------------------------------------------------------------------------


def test_round_trip_restores_metadata_and_an_identical_network(tmp_path):
    network = make_network()
    model_dir = save_model_dir(tmp_path / "m", METADATA, network.state_dict())
    assert files_in(model_dir) == ["model.json", weights_file(model_dir).name]

    metadata, state_dict = load_model_dir(model_dir)
    expected = json.loads(json.dumps(METADATA))  # tuples would come back as lists
    assert metadata == expected
    assert set(state_dict) == set(network.state_dict())
    fresh = torch.nn.Sequential(torch.nn.Embedding(20, 4), torch.nn.LSTM(4, 3, batch_first=True))
    fresh.load_state_dict(state_dict)
    x = torch.tensor([[1, 5, 7]])
    assert torch.equal(fresh(x)[0], network(x)[0])


def test_model_json_is_strict_ascii_json_with_format_and_versions(tmp_path):
    model_dir = save_model_dir(tmp_path / "m", METADATA, make_network().state_dict())
    raw = (model_dir / "model.json").read_bytes()
    assert raw.isascii()
    header = json.loads(raw)
    assert header["format"] == FORMAT_NAME and header["format_version"] == FORMAT_VERSION
    assert header["lfengine_version"] == lfengine.__version__
    assert header["torch_version"] == torch.__version__
    assert header["weights"]["sha256"] == sha256_file(model_dir / header["weights"]["file"])
    assert header["weights"]["file"] == f"weights-{header['weights']['sha256'][:16]}.pt"
    assert header["checkpoint"] is None
    assert read_model_json(model_dir)["metadata"]["vocabularies"][0]["entries"][3] == "Zürich"


def test_weights_are_plain_tensors_readable_with_weights_only(tmp_path):
    network = make_network()
    model_dir = save_model_dir(tmp_path / "m", {}, network.state_dict())
    loaded = torch.load(weights_file(model_dir), weights_only=True)
    assert type(loaded) is dict and all(type(t) is torch.Tensor for t in loaded.values())


def test_saving_again_replaces_the_model(tmp_path):
    save_model_dir(tmp_path / "m", {"version": 1}, {"w": torch.zeros(3)})
    save_model_dir(tmp_path / "m", {"version": 2}, {"w": torch.ones(3)})
    metadata, state_dict = load_model_dir(tmp_path / "m")
    assert metadata == {"version": 2} and torch.equal(state_dict["w"], torch.ones(3))
    assert files_in(tmp_path / "m") == ["model.json", weights_file(tmp_path / "m").name]


# --- atomicity ----------------------------------------------------------------------------------


def test_atomic_write_keeps_the_old_file_when_the_writer_fails_midway(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old content")

    def write_half_then_fail(handle):
        handle.write(b"new con")
        handle.flush()
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, write_half_then_fail)
    assert target.read_bytes() == b"old content"
    assert files_in(tmp_path) == ["file.bin"]  # no temporary file left behind

    digest = atomic_write(target, lambda handle: handle.write(b"new content"))
    assert target.read_bytes() == b"new content" and digest == sha256_file(target)


def test_a_save_that_crashes_while_writing_weights_leaves_the_old_model(tmp_path, monkeypatch):
    model_dir = save_model_dir(tmp_path / "m", {"generation": 1}, {"w": torch.zeros(2)})
    before = {name: (model_dir / name).read_bytes() for name in files_in(model_dir)}

    def crash_midway(obj, handle):
        handle.write(b"PK\x03\x04 partial zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(store.torch, "save", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        save_model_dir(model_dir, {"generation": 2}, {"w": torch.ones(2)})
    monkeypatch.undo()

    assert {name: (model_dir / name).read_bytes() for name in files_in(model_dir)} == before
    metadata, state_dict = load_model_dir(model_dir)
    assert metadata == {"generation": 1} and torch.equal(state_dict["w"], torch.zeros(2))


def test_a_refused_save_touches_nothing(tmp_path):
    model_dir = save_model_dir(tmp_path / "m", {"generation": 1}, {"w": torch.zeros(2)})
    with pytest.raises(ModelError, match=r"metadata\['history'\]\[0\]\['loss'\] is nan"):
        save_model_dir(model_dir, {"history": [{"loss": float("nan")}]}, {"w": torch.ones(2)})
    with pytest.raises(ModelError, match=r"state_dict\['w'\] is a list"):
        save_model_dir(model_dir, {}, {"w": [1.0, 2.0]})
    assert load_model_dir(model_dir)[0] == {"generation": 1}


def test_weights_that_do_not_match_their_digest_are_detected(tmp_path):
    """A weights file altered after its save (not by lfengine: its files are never rewritten)."""
    model_dir = save_model_dir(tmp_path / "m", {}, {"w": torch.zeros(2)})
    atomic_write(weights_file(model_dir), lambda handle: torch.save({"w": torch.ones(2)}, handle))
    with pytest.raises(ModelError, match="does not belong to"):
        load_model_dir(model_dir)


# --- versions and missing files -----------------------------------------------------------------


def test_newer_format_version_is_refused_naming_both_versions(tmp_path):
    model_dir = save_model_dir(tmp_path / "m", {}, {"w": torch.zeros(1)})
    rewrite_header(model_dir, format_version=99)
    with pytest.raises(
        ModelError, match=r"format version 99.*supports format versions 1, 2, 3, 4: upgrade"
    ) as caught:
        load_model_dir(model_dir)
    assert caught.value.data["found"] == 99 and caught.value.data["supported"] == [1, 2, 3, 4]
    rewrite_header(model_dir, format_version=0)
    with pytest.raises(ModelError, match="format version 0.*retrain"):
        load_model_dir(model_dir)
    rewrite_header(model_dir, format_version="1")
    with pytest.raises(ModelError, match="format version '1'"):
        load_model_dir(model_dir)


def test_other_formats_are_refused(tmp_path):
    model_dir = save_model_dir(tmp_path / "m", {}, {"w": torch.zeros(1)})
    rewrite_header(model_dir, format="something-else")
    with pytest.raises(ModelError, match="found format 'something-else'"):
        load_model_dir(model_dir)
    (model_dir / "model.json").write_text("[1, 2]")
    with pytest.raises(ModelError, match="not an lfengine file"):
        load_model_dir(model_dir)


def test_a_foreign_model_json_is_never_overwritten(tmp_path):
    directory = tmp_path / "somebody"
    directory.mkdir()
    (directory / "model.json").write_text('{"their": "data"}')
    with pytest.raises(ModelError, match="refusing to overwrite"):
        save_model_dir(directory, {}, {"w": torch.zeros(1)})
    assert (directory / "model.json").read_text() == '{"their": "data"}'
    assert files_in(directory) == ["model.json"]


def test_missing_directory_and_files_are_named(tmp_path):
    with pytest.raises(ModelError, match="does not exist: train a model into it"):
        load_model_dir(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"model\.json is missing: this is not an lfengine model directory"):
        load_model_dir(tmp_path / "empty")
    model_dir = save_model_dir(tmp_path / "m", {}, {"w": torch.zeros(1)})
    with pytest.raises(ModelError, match=r"holds no checkpoint: there is nothing to resume"):
        load_checkpoint(model_dir)
    name = weights_file(model_dir).name
    weights_file(model_dir).unlink()
    with pytest.raises(ModelError, match=rf"{name} is missing: .*model\.json names it"):
        load_model_dir(model_dir)


def test_old_wrapper_model_next_to_the_gate_prefix_is_explained(tmp_path):
    prefix = tmp_path / "FileJsonPyTorch.model"
    Path(str(prefix) + ".module.pytorch").write_bytes(pickle.dumps(Marker()))
    with pytest.raises(ModelError, match="old PyTorch wrapper, a Python pickle that lfengine never loads"):
        load_model_dir(model_dir_for_prefix(prefix))


def test_model_dir_for_prefix():
    assert model_dir_for_prefix("/data/FileJsonPyTorch.model") == Path("/data/FileJsonPyTorch.model.d")
    assert model_dir_for_prefix(Path("rel/x.model/")) == Path("rel/x.model.d")
    with pytest.raises(ModelError):
        model_dir_for_prefix("")


# --- pickles are refused ------------------------------------------------------------------------


def install_weights(model_dir: Path, data: bytes) -> None:
    """Make model.json name these weights (digest and all), so only the weights_only loading can refuse."""
    install_file(model_dir, "weights", data)


def test_torch_save_of_an_arbitrary_object_is_refused(tmp_path):
    model_dir = save_model_dir(tmp_path / "m", {}, {"w": torch.zeros(1)})
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(1), "extra": Marker()}, buffer)
    install_weights(model_dir, buffer.getvalue())
    with pytest.raises(ModelError, match=r"refused.*Unsupported global.*Marker.*weights_only=True") as caught:
        load_model_dir(model_dir)
    assert "run code" in caught.value.message


def test_torch_save_of_a_whole_module_is_refused(tmp_path):
    model_dir = save_model_dir(tmp_path / "m", {}, {"w": torch.zeros(1)})
    buffer = io.BytesIO()
    torch.save(torch.nn.Linear(2, 2), buffer)  # what the old wrapper did
    install_weights(model_dir, buffer.getvalue())
    with pytest.raises(ModelError, match="Unsupported global.*Linear"):
        load_model_dir(model_dir)


def test_raw_pickle_is_refused_without_running_its_code(tmp_path):
    model_dir = save_model_dir(tmp_path / "m", {}, {"w": torch.zeros(1)})
    proof = tmp_path / "code-ran"
    install_weights(model_dir, pickle.dumps({"w": Exploit(str(proof))}, protocol=2))
    with pytest.raises(ModelError, match="cannot be read as plain tensors"):
        load_model_dir(model_dir)
    assert not proof.exists()


def test_weights_that_are_not_a_state_dict_are_refused(tmp_path):
    model_dir = save_model_dir(tmp_path / "m", {}, {"w": torch.zeros(1)})
    buffer = io.BytesIO()
    torch.save([torch.zeros(1)], buffer)
    install_weights(model_dir, buffer.getvalue())
    with pytest.raises(ModelError, match="must be a dict of name -> tensor"):
        load_model_dir(model_dir)
    install_weights(model_dir, b"PK\x03\x04 truncated")
    with pytest.raises(ModelError, match=r"weights-[0-9a-f]{16}\.pt cannot be read"):
        load_model_dir(model_dir)


def commit_checkpoint(model_dir: Path, payload: dict) -> dict:
    """Save a checkpoint and commit a model naming it, as a training run does."""
    ref = save_checkpoint(model_dir, payload)
    save_model_dir(model_dir, {}, {"w": torch.zeros(1)}, checkpoint=ref)
    return ref


def torch_bytes(value) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def test_pickled_checkpoint_is_refused(tmp_path):
    commit_checkpoint(tmp_path / "m", {"epoch": 1})
    data = torch_bytes({"format": "lfengine-checkpoint", "format_version": 1, "payload": {"x": Marker()}})
    install_file(tmp_path / "m", "checkpoint", data)
    with pytest.raises(ModelError, match="Unsupported global"):
        load_checkpoint(tmp_path / "m")


# --- strict JSON --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata, message",
    [
        ({"loss": float("nan")}, r"metadata\['loss'\] is nan: .*strict JSON"),
        ({"best": [1.0, float("inf")]}, r"metadata\['best'\]\[1\] is inf"),
        ({"counts": {1: "a"}}, r"metadata\['counts'\] has the key 1 of type int"),
        ({"size": np.int64(3)}, r"metadata\['size'\] is of type int64.*\.item\(\)"),
        ({"matrix": np.zeros(2)}, r"metadata\['matrix'\] is of type ndarray.*\.tolist\(\)"),
        ({"when": object()}, r"metadata\['when'\] is of type object"),
    ],
)
def test_metadata_must_be_strict_json(tmp_path, metadata, message):
    with pytest.raises(ModelError, match=message):
        save_model_dir(tmp_path / "m", metadata, {"w": torch.zeros(1)})
    assert not (tmp_path / "m").exists()


def test_a_model_json_with_nan_is_refused_on_load(tmp_path):
    model_dir = save_model_dir(tmp_path / "m", {"loss": 1.0}, {"w": torch.zeros(1)})
    text = (model_dir / "model.json").read_text().replace('"loss": 1.0', '"loss": NaN')
    (model_dir / "model.json").write_text(text)
    with pytest.raises(ModelError, match="not valid strict JSON: NaN"):
        load_model_dir(model_dir)


# --- checkpoints --------------------------------------------------------------------------------


def draw_all() -> tuple:
    return (
        torch.rand(3).tolist(),
        np.random.rand(3).tolist(),
        np.random.randn(),
        random.random(),
        random.gauss(0, 1),
    )


def test_checkpoint_resumes_optimizer_scheduler_and_random_streams(tmp_path):
    network = make_network()
    optimizer = torch.optim.Adam(network.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    output, _ = network(torch.tensor([[1, 2, 3]]))
    output.sum().backward()
    optimizer.step()
    scheduler.step()
    np.random.randn()  # leaves a cached gaussian in numpy's state
    random.gauss(0, 1)  # and in Python's
    payload = {
        "model": network.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": capture_rng_state(),
        "epoch": 3,
        "batches_seen": 120,
        "best": {"accuracy": 0.75, "epoch": 2},
    }
    expected_draws = draw_all()
    ref = commit_checkpoint(tmp_path / "m", payload)

    # readable by plain torch.load(weights_only=True): no pickled objects anywhere
    raw = torch.load(tmp_path / "m" / ref["file"], weights_only=True)
    assert raw["format"] == "lfengine-checkpoint" and raw["payload"]["epoch"] == 3

    draw_all()  # move every stream on
    loaded = load_checkpoint(tmp_path / "m")
    restore_rng_state(loaded["rng"])
    assert draw_all() == expected_draws

    fresh = make_network()
    fresh.load_state_dict(loaded["model"])
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=0.01)
    fresh_optimizer.load_state_dict(loaded["optimizer"])
    fresh_scheduler = torch.optim.lr_scheduler.StepLR(fresh_optimizer, step_size=1, gamma=0.5)
    fresh_scheduler.load_state_dict(loaded["scheduler"])
    assert fresh_optimizer.param_groups[0]["lr"] == pytest.approx(0.005)
    first = next(iter(fresh_optimizer.state.values()))
    assert torch.equal(first["exp_avg"], next(iter(optimizer.state.values()))["exp_avg"])
    assert (loaded["epoch"], loaded["batches_seen"], loaded["best"]) == (
        3,
        120,
        {"accuracy": 0.75, "epoch": 2},
    )


def test_checkpoint_refuses_values_weights_only_cannot_read(tmp_path):
    with pytest.raises(ModelError, match=r"checkpoint\['rng'\]\['numpy'\] is of type ndarray"):
        save_checkpoint(tmp_path / "m", {"rng": {"numpy": np.zeros(3)}})
    with pytest.raises(ModelError, match=r"checkpoint\['step'\] is of type int64"):
        save_checkpoint(tmp_path / "m", {"step": np.int64(3)})
    with pytest.raises(ModelError, match=r"checkpoint\['python_rng'\] is of type Random"):
        save_checkpoint(tmp_path / "m", {"python_rng": random.Random(1)})
    assert not list((tmp_path / "m").glob("*checkpoint*"))


def test_malformed_rng_state_is_a_model_error():
    with pytest.raises(ModelError, match="random generator state is malformed"):
        restore_rng_state({"torch": torch.get_rng_state()})


def test_checkpoint_of_another_version_is_refused(tmp_path):
    commit_checkpoint(tmp_path / "m", {"epoch": 1})
    data = torch_bytes({"format": "lfengine-checkpoint", "format_version": 7, "payload": {}})
    install_file(tmp_path / "m", "checkpoint", data)
    with pytest.raises(ModelError, match="format version 7"):
        load_checkpoint(tmp_path / "m")


# --- metrics log and paths ----------------------------------------------------------------------


def json_lines(path: Path) -> list:
    """metrics.jsonl as a JSON-lines reader sees it (jq, pandas.read_json(lines=True)): one
    value per line; a line that does not parse stays apart as None."""

    def parse(line: str):
        try:
            return json.loads(line)
        except ValueError:
            return None

    return [parse(line) for line in path.read_text(encoding="ascii").splitlines()]


def test_metrics_log_appends_one_strict_line_per_record(tmp_path):
    append_metrics(tmp_path / "m", {"epoch": 1, "loss": 0.5, "label": "Zürich"})
    append_metrics(tmp_path / "m", {"epoch": 2, "loss": 0.25})
    lines = (tmp_path / "m" / "metrics.jsonl").read_text(encoding="ascii").splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert json_lines(tmp_path / "m" / "metrics.jsonl") == [
        {"epoch": 1, "loss": 0.5, "label": "Zürich"},
        {"epoch": 2, "loss": 0.25},
    ]
    with pytest.raises(ModelError, match=r"metrics record\['loss'\] is nan"):
        append_metrics(tmp_path / "m", {"epoch": 3, "loss": float("nan")})
    assert len(json_lines(tmp_path / "m" / "metrics.jsonl")) == 2


def test_metrics_log_survives_an_interrupted_append(tmp_path):
    append_metrics(tmp_path / "m", {"epoch": 1})
    with open(tmp_path / "m" / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 2, "lo')  # a crash mid-line
    assert json_lines(tmp_path / "m" / "metrics.jsonl") == [{"epoch": 1}, None]
    append_metrics(tmp_path / "m", {"epoch": 3})
    # the debris keeps a line of its own: the records around it still read
    assert json_lines(tmp_path / "m" / "metrics.jsonl") == [{"epoch": 1}, None, {"epoch": 3}]
    assert not (tmp_path / "none" / "metrics.jsonl").exists()


def test_model_paths():
    paths = model_paths("/x/m")
    assert (paths.model_json, paths.weights, paths.checkpoint, paths.metrics, paths.log) == (
        Path("/x/m/model.json"),
        Path("/x/m/weights.pt"),
        Path("/x/m/checkpoint.pt"),
        Path("/x/m/metrics.jsonl"),
        Path("/x/m/train.log"),
    )


# --- file-system failures (found by tests/test_reliability.py) ---------------------------------
def test_a_model_dir_that_cannot_be_created_is_refused_before_any_work(tmp_path):
    """check_writable runs before training: a path under a regular file (or on a read-only file
    system, tested with a tmpfs in test_reliability.py) used to fail at the first save, as an
    internal error."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ModelError, match="is not a directory"):
        store.check_writable(blocker / "model")
    store.check_writable(tmp_path / "new" / "deeper")  # creatable: accepted, nothing created
    assert not (tmp_path / "new").exists()


_SAVE_ON_A_FULL_DISK = """
import resource, signal, sys, torch
from lfengine.storage import store
from lfengine.errors import ModelError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    store.save_model_dir(sys.argv[1], {"format": "test"}, {"w": torch.zeros(10_000)})
except ModelError as exc:
    print("ModelError:", exc.message)
"""


def test_a_full_disk_while_saving_weights_is_a_model_error_and_leaves_no_temp_file(tmp_path):
    """torch.save turns a failed write into a RuntimeError ("unexpected pos"), which escaped as an
    internal error (-32603); the file system's own error is what the user can act on."""
    import subprocess
    import sys

    from tests.timeouts import scaled

    model_dir = tmp_path / "model"
    result = subprocess.run(
        [sys.executable, "-c", _SAVE_ON_A_FULL_DISK, str(model_dir)],
        capture_output=True,
        text=True,
        timeout=scaled(120),
        cwd=Path(lfengine.__file__).parent.parent,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ModelError: cannot write the model to"), result.stdout
    assert "File too large" in result.stdout
    assert [p.name for p in model_dir.iterdir()] == []
