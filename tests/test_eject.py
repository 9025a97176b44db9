"""`lfengine eject`: the written source is the built network (its weights load and predict the
same), it trains under --module exactly like the built network, and it passes `ruff check`."""

from __future__ import annotations

import ast
import importlib.util
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lfengine import cli, service
from lfengine.data.reader import read_records
from lfengine.data.synthetic import LfAttribute
from lfengine.eject import load_weights
from lfengine.errors import OptionError
from lfengine.options import TrainOptions
from lfengine.predictor import Predictor
from lfengine.storage import store

REPO = Path(__file__).resolve().parent.parent


def _data(meta: Path) -> Path:
    return meta.with_name(meta.name.replace(".meta.", ".data."))


def _import_class(path: Path, name: str) -> type:
    """What a user does with the ejected file: import it explicitly (nothing is imported at load)."""
    spec = importlib.util.spec_from_file_location(f"ejected_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def _ruff(path: Path) -> None:
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    # Default settings, as a user runs it on the file where it was written (outside this repo).
    run = subprocess.run(
        [str(ruff), "check", "--isolated", "--no-cache", path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def _round_trip(meta: Path, tmp_path: Path, max_epochs: int = 2, **model: object) -> None:
    model_dir = tmp_path / "model"
    options = TrainOptions(max_epochs=max_epochs, threads=1, device="cpu", model=model)
    service.train(str(meta), str(model_dir), options)
    source = tmp_path / "my_network.py"
    assert cli.main(["eject", str(model_dir), "-o", str(source)]) == 0
    _ruff(source)
    text = source.read_text(encoding="utf-8")
    for name, _ in service.load_model(str(model_dir)).codec.layout().nominal[:3]:
        assert name in text  # the comments name the LF columns each layer reads

    network_class = _import_class(source, "MyNetwork")
    network, codec = load_weights(network_class, str(model_dir))
    instances = [record[0] for chunk in read_records(str(_data(meta)), labeled=True) for record in chunk]
    instances = instances[:200]
    built = service.load_model(str(model_dir)).apply(instances, distribution=True)
    ejected = Predictor(network, codec, "cpu").apply(instances, distribution=True)
    assert ejected == built


def test_classifier_round_trip(lfdata: Path, tmp_path: Path) -> None:
    _round_trip(lfdata / "class-window-pos1.meta.json", tmp_path)


def test_crf_tagger_round_trip(lfdata: Path, tmp_path: Path) -> None:
    _round_trip(lfdata / "seq-pos2.meta.json", tmp_path, affix_dims=6)
    text = (tmp_path / "my_network.py").read_text(encoding="utf-8")
    assert "self.crf = Crf(9, LABELS)" in text and "self.affixes = AffixEmbeddings(6)" in text


def _regression_corpus(lf_pair) -> Path:
    rng = random.Random(3)
    words = [f"w{i}" for i in range(30)]
    records = []
    for _ in range(150):
        x, kind = rng.uniform(0, 10), rng.choice(["a", "b", "c"])
        text = [rng.choice(words) for _ in range(rng.randint(1, 6))]
        target = 2 * x + {"a": 0, "b": 5, "c": -5}[kind] + text.count("w1")
        records.append([[x, kind, text], target])
    attributes = [
        LfAttribute("A", "x", datatype="numeric"),
        LfAttribute("A", "kind"),
        LfAttribute("N", "string", number=1, name="text", emb_id="words"),
    ]
    return lf_pair(attributes, records, base="reg")


def test_regressor_round_trip(lf_pair, tmp_path: Path) -> None:
    meta = _regression_corpus(lf_pair)
    _round_trip(meta, tmp_path / "run")


def test_ejected_class_trains_exactly_like_the_built_network(lf_pair, tmp_path: Path) -> None:
    """Same seed, same data: --module FILE.py:Class gives the built network's weights bit for bit."""
    meta = _regression_corpus(lf_pair)
    source = tmp_path / "reg_net.py"
    assert cli.main(["eject", str(meta), "-o", str(source)]) == 0
    options = TrainOptions(max_epochs=2, threads=1, device="cpu")
    service.train(str(meta), str(tmp_path / "built"), options)
    module_options = TrainOptions(max_epochs=2, threads=1, device="cpu", module=f"{source}:RegNet")
    service.train(str(meta), str(tmp_path / "ejected"), module_options)
    built = torch.load(store.committed_file(tmp_path / "built", "weights"), weights_only=True)
    ejected = torch.load(store.committed_file(tmp_path / "ejected", "weights"), weights_only=True)
    assert built.keys() == ejected.keys()
    for key in built:
        assert torch.equal(built[key], ejected[key]), key


def test_ejected_class_refuses_other_data(lfdata: Path, tmp_path: Path) -> None:
    source = tmp_path / "ner_net.py"
    assert cli.main(["eject", str(lfdata / "seq-pos2.meta.json"), "-o", str(source)]) == 0
    with pytest.raises(OptionError, match="written for other data"):
        service.describe(str(lfdata / "seq-pos1.meta.json"), TrainOptions(module=f"{source}:NerNet"))


def test_eject_refuses_what_it_cannot_write(lfdata: Path, tmp_path: Path, caplog) -> None:
    meta = str(lfdata / "class-ngram-sp1.meta.json")
    target = tmp_path / "net.py"
    assert cli.main(["eject", meta, "-o", str(target), "--module", "TextCnn"]) == 1
    assert "already source" in caplog.text
    target.write_text("# mine\n", encoding="utf-8")
    assert cli.main(["eject", meta, "-o", str(target)]) == 1
    assert target.read_text(encoding="utf-8") == "# mine\n"  # never overwritten without --force
    assert cli.main(["eject", meta, "-o", str(tmp_path / "missing" / "net.py")]) == 1


def test_softmax_tagger_with_a_list_column_round_trip(lf_pair, tmp_path: Path) -> None:
    """Per-token list columns (LISTSEP values) and no CRF: the other code paths of the tagger."""
    rng = random.Random(5)
    records = []
    for _ in range(40):
        words = [rng.choice(["the", "cat", "sat", "on", "mat", "A", "Dog"]) for _ in range(rng.randint(1, 7))]
        vectors = [[w, [w[:1], w[-1:]]] for w in words]
        records.append([vectors, ["X" if w[0].isupper() else "y" for w in words]])
    attributes = [LfAttribute("A", "string"), LfAttribute("A", "letters", listsep=";", emb_id="letters")]
    meta = lf_pair(attributes, records, is_sequence=True, base="seq")
    _round_trip(meta, tmp_path / "run")
    text = (tmp_path / "run" / "my_network.py").read_text(encoding="utf-8")
    assert (
        "encode_positions(" in text
        and "self.crf" not in text
        and "    self.linear = LinearCrf(layout, None)" in text
    )


def _payloads(marker: Path) -> list[str]:
    """Strings that would run code if written into the source raw (the reliability bench's):
    each closes the literal, comment or docstring it lands in, writes ``marker``, reopens one."""
    from bench.reliability.code_routes import payloads

    return payloads(marker)


def test_hostile_names_labels_and_paths_stay_literals(lf_pair, tmp_path: Path) -> None:
    """Issue 19: names, emb_ids, labels, the meta file's path in model.json and the model
    directory's name reach the ejected file as literals; importing it runs nothing."""
    marker = tmp_path / "MARKER"
    bad = _payloads(marker)
    rng = random.Random(7)
    records = [
        [
            [rng.choice(["a", "b"]), rng.random(), [rng.choice(["p", "q"])], rng.choice(["u", "v"])],
            bad[i % len(bad)],
        ]
        for i in range(42)
    ]
    attributes = [
        LfAttribute("A", "kind", name=bad[0], emb_id=bad[1]),
        LfAttribute("A", "x", datatype="numeric", name=bad[2]),
        LfAttribute("N", "string", number=1, name=bad[3], emb_id=bad[4]),
        LfAttribute("A", "other", name=bad[4]),
    ]
    meta = lf_pair(attributes, records, base="hostile")
    model_dir = tmp_path / "m''';1/0;'''\n\"\"\";1/0;\"\"\"\\"  # written into the docstring
    service.train(str(meta), str(model_dir), TrainOptions(max_epochs=1, threads=1, device="cpu"))
    document = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
    document["metadata"]["training"]["meta_file"] = bad[1] + bad[2]
    (model_dir / "model.json").write_text(json.dumps(document), encoding="utf-8")
    for source in (str(meta), str(model_dir)):
        target = tmp_path / "hostile_net.py"
        assert cli.main(["eject", source, "-o", str(target), "--force"]) == 0
        text = target.read_text(encoding="utf-8")
        ast.parse(text)
        module = _import_class(target, "LABELS")
        assert not marker.exists()
        assert set(module) == set(bad)  # the labels, character for character
        layout = service.load_model(str(model_dir)).codec.layout()
        network, _ = load_weights(_import_class(target, "HostileNet"), str(model_dir))
        assert _import_class(target, "NOMINAL_COLUMNS") == layout.nominal  # names and emb_ids
        assert _import_class(target, "LIST_COLUMNS") == layout.lists
        assert _import_class(target, "NUMERIC_COLUMNS") == layout.numeric
        assert not marker.exists() and network is not None


def test_sequence_eject_quotes_the_character_column_and_labels(lf_pair, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    bad = _payloads(marker)
    rng = random.Random(5)
    records = []
    for _ in range(20):
        words = [rng.choice(["the", "cat", "A", "Dog"]) for _ in range(rng.randint(1, 5))]
        records.append([[[w] for w in words], [bad[0] if w[0].isupper() else bad[1] for w in words]])
    meta = lf_pair([LfAttribute("A", "string", name=bad[2], emb_id=bad[3])], records, is_sequence=True)
    target = tmp_path / "seq_net.py"
    settings = ["--set", "word_shape=true", "--set", "affix_dims=4"]  # every part that names the column
    assert cli.main(["eject", str(meta), "-o", str(target), *settings]) == 0
    assert set(_import_class(target, "LABELS")) == {bad[0], bad[1]} and not marker.exists()


def test_generated_source_that_does_not_parse_imports_more_or_runs_code_is_refused() -> None:
    from lfengine.builder.eject_check import checked_source
    from lfengine.errors import ModelError

    data = 'X = 1\nY: dict[str, Any] = {"a": (-1, 2.5, [None])}\nE = {"w": EmbeddingInfo("w", dims=3)}\n'
    assert checked_source(f'"""doc."""\n\nimport torch\n\n{data}')
    code = [
        "X = (\n",
        "import os\n",
        "X = 1\nprint(X)\n",
        'X = __import__("os").system("true")\n',  # a constant that runs code when imported
        'X = [open("f")]\n',
        'X: dict = {"a": EmbeddingInfo(open("f"))}\n',
        "X: f() = 1\n",
        "X = EmbeddingInfo\n",
        "X.y = 1\n",
        "X = lambda: 1\n",
    ]
    for text in code:
        with pytest.raises(ModelError, match="nothing was written"):
            checked_source(f'"""doc."""\n{text}')
