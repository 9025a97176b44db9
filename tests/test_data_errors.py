"""Broken LF input: every defect is a typed error naming the file, the 1-based line and the problem.

The files live in tests/broken/: ``cls`` and ``seq`` are valid pairs; ``cls-*.data.json`` and
``seq-*.data.json`` are broken data files for those metas; meta defects are made here by
editing the valid ``cls`` meta.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lfengine.data.codec import build_codec
from lfengine.data.meta import read_meta
from lfengine.data.reader import read_data
from lfengine.errors import DataLineError, EmbeddingsError, MetaFileError

WORD, SCORE = "\u2506word\u256cA", "\u2506score\u256cA"


@pytest.fixture(scope="module")
def codecs(broken_dir: Path):
    return {base: build_codec(read_meta(broken_dir / f"{base}.meta.json"))[0] for base in ("cls", "seq")}


# file, line (None: the whole file), problem in the message, feature column
DATA_DEFECTS = [
    ("cls-truncated", 3, "not valid JSON", None),
    ("cls-bad-utf8", 2, "not valid UTF-8", None),
    ("cls-arity", 2, "wrong number of feature values: expected a list of 4, found a list of 3", None),
    ("cls-list-for-string", 3, "wrong value type: expected a string, found a list of 2", WORD),
    ("cls-string-for-number", 1, "wrong value type: expected a number or boolean, found str '1.5'", SCORE),
    ("cls-nan", 2, "not a finite number: found nan", SCORE),
    ("cls-unknown-label", 3, "unknown label: expected one of a, b, found str 'c'", None),
    ("cls-not-pair", 1, "a training record must be [features, target]", None),
    ("cls-numeric-target", 2, "the target must be a label string", None),
    ("cls-blank-lines", 5, "unknown label", None),  # blank lines 2-3 are skipped but still counted
    ("cls-empty", None, "data file is empty", None),
    ("seq-label-count", 2, "a sequence needs one label per element: expected a list of 3 labels", None),
    ("seq-element-arity", 2, "element 1: wrong number of feature values", None),
]


@pytest.mark.parametrize("name,line,problem,feature", DATA_DEFECTS, ids=[d[0] for d in DATA_DEFECTS])
def test_broken_data_line(codecs, broken_dir, name, line, problem, feature):
    path = broken_dir / f"{name}.data.json"
    with pytest.raises(DataLineError) as info:
        read_data(codecs[name.split("-")[0]], path)
    error = info.value
    assert (error.file, error.line, error.feature) == (str(path), line, feature)
    assert problem in error.message
    assert error.message.startswith(f"{path}:{line}" if line else str(path))


def test_crlf_line_ends_are_accepted(codecs, broken_dir):
    plain = read_data(codecs["cls"], broken_dir / "cls.data.json")
    crlf = read_data(codecs["cls"], broken_dir / "cls-crlf.data.json")
    assert crlf.lines == plain.lines == 3
    assert np.array_equal(crlf.data.nominal, plain.data.nominal)
    assert np.array_equal(crlf.data.numeric, plain.data.numeric)
    assert np.array_equal(crlf.data.targets, plain.data.targets)


def test_skip_bad_lines_keeps_the_good_ones(codecs, broken_dir, caplog):
    result = read_data(codecs["cls"], broken_dir / "cls-some-bad.data.json", skip_bad_lines=True)
    assert (result.lines, result.skipped, len(result.data)) == (6, 3, 3)
    assert result.data.targets.tolist() == [0, 1, 0]
    assert result.data.nominal[:, 0].tolist() == [2, 4, 2]  # red, green, red
    logged = caplog.text
    assert ":2:" in logged and ":4:" in logged and ":6:" in logged
    blanks = read_data(codecs["cls"], broken_dir / "cls-blank-lines.data.json", skip_bad_lines=True)
    assert (blanks.lines, blanks.skipped, len(blanks.data)) == (3, 1, 2)


def test_skip_bad_lines_in_sequences(codecs, broken_dir):
    result = read_data(codecs["seq"], broken_dir / "seq-label-count.data.json", skip_bad_lines=True)
    assert (result.skipped, len(result.data), result.data.lengths().tolist()) == (1, 1, [2])


def test_a_file_of_only_bad_lines_is_an_error(codecs, broken_dir):
    path = broken_dir / "cls-only-bad.data.json"
    with pytest.raises(DataLineError) as info:
        read_data(codecs["cls"], path, skip_bad_lines=True)
    assert (
        info.value.file == str(path)
        and "no usable line" in info.value.message
        and "3 bad" in info.value.message
    )
    with pytest.raises(DataLineError) as info:
        read_data(codecs["cls"], path)
    assert info.value.line in (1, 2, 3)  # every line is bad; without skipping, one of them is reported


def test_data_file_missing(raw_pair, broken_dir):
    meta = raw_pair((broken_dir / "cls.meta.json").read_text(encoding="utf-8"))
    spec = read_meta(meta)
    codec, _ = build_codec(spec)
    with pytest.raises(DataLineError) as info:
        read_data(codec, spec.data_path())
    assert info.value.file == str(meta.with_name("t.data.json")) and "not found" in info.value.message


# --- meta files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,problem,line",
    [
        ("meta-not-json", "not valid JSON", 1),
        ("meta-empty", "meta file is empty", None),
        ("meta-first-version", "isSequence is missing or null", None),
        ("no-such", "meta file not found", None),
    ],
)
def test_broken_meta_file(broken_dir, name, problem, line):
    path = broken_dir / f"{name}.meta.json"
    with pytest.raises(MetaFileError) as info:
        read_meta(path)
    assert (info.value.file, info.value.line) == (str(path), line)
    assert problem in info.value.message


def _attr(i, key, value):
    return lambda m: m["featureInfo"]["attributes"][i].update({key: value})


def _drop_stats(m):
    del m["featureStats"][WORD]


META_DEFECTS = [
    ("isSequence absent", lambda m: m.pop("isSequence"), "isSequence is missing or null"),
    ("featureCode", _attr(0, "featureCode", "Q"), "featureInfo.attributes[0].featureCode is unknown"),
    ("datatype", lambda m: m["features"][1].update(datatype="real"), "features[1].datatype is unknown"),
    ("attr datatype", _attr(2, "datatype", "flag"), "featureInfo.attributes[2].datatype is unknown"),
    ("emb_train", _attr(3, "emb_train", "sometimes"), "featureInfo.attributes[3].emb_train is unknown"),
    ("shorten", _attr(3, "shorten", "sideways"), "featureInfo.attributes[3].shorten is unknown"),
    (
        "attrid",
        lambda m: m["features"][2].update(attrid=7),
        "features[2].attrid is out of range: expected 0..3",
    ),
    ("featureStats", _drop_stats, f"featureStats has no entry for nominal column {WORD!r}"),
    ("featureInfo absent", lambda m: m.pop("featureInfo"), "meta has no key 'featureInfo'"),
    (
        "from > to",
        lambda m: m["featureInfo"]["attributes"][0].update(featureCode="L", code="L", **{"from": 2, "to": 1}),
        "has from > to",
    ),
]


@pytest.mark.parametrize("what,patch,problem", META_DEFECTS, ids=[d[0] for d in META_DEFECTS])
def test_broken_meta_content(raw_pair, broken_dir, what, patch, problem):
    meta = json.loads((broken_dir / "cls.meta.json").read_text(encoding="utf-8"))
    patch(meta)
    path = raw_pair(meta)
    with pytest.raises(MetaFileError) as info:
        read_meta(path)
    assert info.value.file == str(path) and problem in info.value.message


def test_meta_that_is_not_an_object(raw_pair):
    path = raw_pair("[1, 2]")
    with pytest.raises(MetaFileError, match="must hold a JSON object"):
        read_meta(path)


def test_meta_without_target_cannot_train(raw_pair, broken_dir):
    meta = json.loads((broken_dir / "cls.meta.json").read_text(encoding="utf-8"))
    del meta["targetStats"]
    spec = read_meta(raw_pair(meta))
    assert spec.target_datatype == "none"
    with pytest.raises(MetaFileError, match="no targetStats"):
        build_codec(spec)


def test_meta_name_must_end_in_meta_json(tmp_path, broken_dir):
    path = tmp_path / "cls.json"
    path.write_text((broken_dir / "cls.meta.json").read_text(encoding="utf-8"), encoding="utf-8")
    spec = read_meta(path)
    with pytest.raises(MetaFileError) as info:
        spec.data_path()
    assert info.value.file == str(path) and ".meta.json" in info.value.message


def test_data_path_replaces_only_the_suffix(tmp_path):
    odd = tmp_path / "x.meta.json.d" / "crvd.meta.json"
    odd.parent.mkdir()
    odd.write_text(
        (Path(__file__).parent / "broken" / "cls.meta.json").read_text(encoding="utf-8"), encoding="utf-8"
    )
    assert read_meta(odd).data_path() == tmp_path / "x.meta.json.d" / "crvd.data.json"


# --- embeddings files ---------------------------------------------------------------------------


def _with_embeddings(raw_pair, broken_dir, emb_file):
    meta = json.loads((broken_dir / "cls.meta.json").read_text(encoding="utf-8"))
    for attr in meta["featureInfo"]["attributes"]:
        if attr["emb_id"] == "w":
            attr["emb_file"] = emb_file
    return read_meta(raw_pair(meta))


def test_embeddings_file_missing(raw_pair, broken_dir):
    spec = _with_embeddings(raw_pair, broken_dir, "missing-vectors.txt")
    with pytest.raises(EmbeddingsError) as info:
        build_codec(spec)
    assert info.value.file == "missing-vectors.txt"
    assert (
        "not found" in info.value.message
        and str(spec.path.parent / "missing-vectors.txt") in info.value.message
    )


def test_embeddings_file_of_an_unsupported_format(raw_pair, broken_dir):
    path = broken_dir / "vectors.npy"
    spec = _with_embeddings(raw_pair, broken_dir, str(path))
    with pytest.raises(EmbeddingsError) as info:
        build_codec(spec)
    assert info.value.file == str(path) and "no vector in the embeddings file" in info.value.message
    assert "the first at line 1" in info.value.message
    assert "fastText .vec" in info.value.message
