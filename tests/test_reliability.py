"""The reliability suite (issue 8) against the real engine: small counts by default, the full
counts of bench/bench_reliability.py under ``-m slow``.

Every case must be handled: a typed reply or a clean run; never a crash, a hang, a traceback
on stderr, an internal error, a request without exactly one reply, non-protocol bytes on
stdout, a bad data line trained, or a model directory left unloadable or with temp files.
bench/reliability/ holds the fuzzers and fault injectors; a failure message lists each failing
case with its seed, so it can be replayed.
"""

from __future__ import annotations

import pytest

from bench.reliability import faults
from bench.reliability.corpus import slice_lfdata
from bench.reliability.data_mutation import run_data_mutation
from bench.reliability.legacy_fuzz import run_legacy_fuzz, train_models
from bench.reliability.protocol_fuzz import run_protocol_fuzz
from bench.reliability.tally import Tally

SEED = 1
slow = pytest.mark.slow


def assert_all_handled(tally: Tally, at_least: int) -> None:
    assert tally.tried >= at_least, tally.report()
    assert tally.counts["handled"] == tally.tried, tally.report()


@pytest.fixture(scope="module")
def legacy_models(lfdata, tmp_path_factory):
    return train_models(lfdata, tmp_path_factory.mktemp("legacy"))


@pytest.fixture(scope="module")
def small(lfdata, tmp_path_factory):
    """The first 120 lines of every LF file: a training of a few seconds."""
    return slice_lfdata(lfdata, tmp_path_factory.mktemp("small"), lines=120)


@pytest.mark.parametrize(
    ("fmt", "count"),
    [
        ("json", 300),
        ("msgpack", 150),  # more frames swallow the sentinel: each costs a flush or a restart
        pytest.param("json", 10_000, marks=slow),
        pytest.param("msgpack", 10_000, marks=slow),
    ],
)
def test_protocol_fuzz_every_request_gets_one_reply_and_the_engine_keeps_serving(
    fmt, count, lfdata, tmp_path
):
    tally = run_protocol_fuzz(fmt, count, seed=SEED, lfdata=lfdata, workdir=tmp_path)
    assert_all_handled(tally, count)


@pytest.mark.parametrize("count", [100, pytest.param(2_000, marks=slow)])
def test_legacy_apply_fuzz_one_reply_per_line_and_stop_ends_cleanly(count, legacy_models, tmp_path):
    tally = run_legacy_fuzz(legacy_models, count, seed=SEED, workdir=tmp_path, per_process=count // 2)
    assert_all_handled(tally, count)


@pytest.mark.parametrize(("count", "cli"), [(24, 1), pytest.param(200, 5, marks=slow)])
def test_data_file_mutations_train_or_fail_naming_file_and_line(count, cli, lfdata, tmp_path):
    tally = run_data_mutation(lfdata, count, seed=SEED, workdir=tmp_path, cli_cases=cli)
    assert_all_handled(tally, count)


@pytest.mark.parametrize("count", [1, pytest.param(20, marks=slow)])
def test_kill_9_during_training_then_resume_completes_with_a_loadable_model(count, small, tmp_path):
    tally = faults.run_kill_resume(small / "class-ionosphere.meta.json", tmp_path, count, seed=SEED)
    assert_all_handled(tally, count)


@pytest.mark.parametrize("count", [1, pytest.param(3, marks=slow)])
def test_sigterm_to_serve_during_train_answers_everything_and_keeps_the_model(count, small, tmp_path):
    tally = faults.run_sigterm(small / "class-ionosphere.meta.json", tmp_path, count, seed=SEED)
    assert_all_handled(tally, count)


def test_read_only_model_dir_applies_and_refuses_training_with_a_typed_error(small, tmp_path):
    tally = faults.run_read_only(
        small / "class-ionosphere.meta.json", small / "class-ionosphere.data.json", tmp_path
    )
    if tally.skipped:
        pytest.skip(tally.skipped)
    assert_all_handled(tally, 7)


def test_full_disk_is_a_typed_error_and_the_old_model_survives(small, tmp_path):
    tally = faults.run_full_disk(small / "class-window-pos1.meta.json", tmp_path, seed=SEED, fills=(0,))
    if tally.skipped:
        pytest.skip(tally.skipped)
    assert_all_handled(tally, 2)
