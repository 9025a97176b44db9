"""The benches run: each in its smallest setting, as a real subprocess, over the shared LF files.

Nothing else runs bench/; three benches once broke silently when ``lfengine train --json``
began printing an end summary they parsed as JSON. These tests check what a reader of a bench
relies on: exit status 0, the table's header, a row per requested file (or configuration) with
numbers in range, and the ``--json`` file with the keys the bench writes. Scores are noise at
one or two epochs: they are checked to be scores (within [0, 1]), never against a value.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from timeouts import scaled

REPO = Path(__file__).resolve().parent.parent


def run_bench(script: str, *args: str | Path) -> str:
    """Run ``bench/<script>`` with ``args``; its stdout (the test fails on a non-zero exit)."""
    cmd = [sys.executable, str(REPO / "bench" / script), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=scaled(300))
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.stdout


def header(stdout: str, first: str) -> list[str]:
    """The words of the table's header line, the one that starts with ``first``."""
    lines = [line.split() for line in stdout.splitlines() if line.split()[:1] == [first]]
    assert len(lines) == 1, f"no single header line starting with {first!r} in:\n{stdout}"
    return lines[0]


def rows(stdout: str, *keys: str) -> list[list[str]]:
    """The table rows whose first words are ``keys``, split into words."""
    return [line.split() for line in stdout.splitlines() if line.split()[: len(keys)] == list(keys)]


def row(stdout: str, *keys: str) -> list[str]:
    found = rows(stdout, *keys)
    assert len(found) == 1, f"expected one row for {keys} in:\n{stdout}"
    return found[0]


def assert_score(value: object) -> None:
    assert isinstance(value, float) and 0.0 <= value <= 1.0, value


def test_generalisation_bench_prints_a_row_per_file_and_writes_its_runs(lfdata: Path, tmp_path: Path) -> None:
    out = tmp_path / "generalisation.json"
    stdout = run_bench(
        "bench_generalisation.py",
        *("--only", "seq-pos2", "--seeds", "1", "--configs", "after"),
        *("--set", "max_epochs=2", "--jobs", "1", "--json", out),
    )
    assert header(stdout, "data")[:6] == ["data", "metric", "config", "valid", "tail", "gap"]
    name, metric, config, valid, tail, gap, unknown_share, *_ = row(stdout, "seq-pos2")
    assert (metric, config) == ("span_f1", "after")
    for score in (valid, tail):
        assert_score(float(score))
    assert float(gap) == pytest.approx(float(valid) - float(tail), abs=0.002)
    assert 0.0 < float(unknown_share) <= 100.0  # the tail of a 100-sentence file has unknown tokens
    (run,) = json.loads(out.read_text())
    assert {"name", "config", "seed", "val", "tail", "unknown_share", "known", "unknown"} <= run.keys()
    assert {"unseen_labels", "epochs", "best_epoch", "cpu_to_best", "cpu"} <= run.keys()
    assert (run["name"], run["config"], run["seed"]) == ("seq-pos2", "after", 1)
    for key in ("val", "tail", "unknown_share"):
        assert_score(run[key])
    assert 1 <= run["best_epoch"] <= run["epochs"] <= 2
    assert run["cpu"] > 0 and run["unseen_labels"] >= 0


def test_accuracy_bench_prints_a_row_per_file_and_writes_a_summary(lfdata: Path, tmp_path: Path) -> None:
    out = tmp_path / "accuracy.json"
    names = ["class-ionosphere", "seq-pos2"]
    stdout = run_bench(
        "bench_accuracy.py",
        *("--only", *names, "--seeds", "1", "--set", "max_epochs=2", "--jobs", "1", "--json", out),
    )
    assert header(stdout, "data")[:3] == ["data", "metric", "old"]
    summary = json.loads(out.read_text())
    assert sorted(summary) == names
    for name, metric in zip(names, ("accuracy", "span_f1")):
        words = row(stdout, name, metric)
        mean, low, score, epochs = (float(w) for w in words[-6:-2])
        assert words[-1] in ("yes", "NO")
        assert_score(mean)
        assert low == mean and score == pytest.approx(mean, abs=5e-4) and 1 <= epochs <= 2  # one seed
        entry = summary[name]
        assert {"metric", "mean", "min", "scores", "target", "sec_per_epoch", "runs"} <= entry.keys()
        assert entry["metric"] == metric and entry["mean"] == pytest.approx(mean, abs=1e-4)
        (run,) = entry["runs"]
        assert {"name", "module", "seed", "score", "epochs", "best_epoch", "seconds"} <= run.keys()
        assert run["module"] == "auto" and 1 <= run["best_epoch"] <= run["epochs"] <= 2
        assert_score(run["score"])
        assert entry["sec_per_epoch"] > 0


def test_accuracy_bench_compares_a_module_with_the_auto_network(lfdata: Path, tmp_path: Path) -> None:
    out = tmp_path / "modules.json"
    stdout = run_bench(
        "bench_accuracy.py",
        *("--modules", "NerTagger", "--seeds", "1", "--set", "max_epochs=1", "--jobs", "1", "--json", out),
    )
    assert header(stdout, "module")[:4] == ["module", "data", "metric", "mean"]
    summary = json.loads(out.read_text())
    assert sorted(summary) == ["NerTagger seq-pos2", "auto seq-pos2"]
    for module in ("NerTagger", "auto"):
        words = row(stdout, module, "seq-pos2", "span_f1")
        assert_score(float(words[3]))
        entry = summary[f"{module} seq-pos2"]
        assert {"data", "metric", "mean", "scores", "epochs", "sec_per_epoch"} <= entry.keys()
        assert entry["epochs"] == [1]
        assert_score(entry["mean"])


def test_time_to_quality_bench_prints_both_configurations(tmp_path: Path) -> None:
    stdout = run_bench("bench_time_to_quality.py", "--sentences", "200", "--max-epochs", "2")
    assert stdout.splitlines()[0] == "200 training sentences, 50 test sentences, epochs capped at 2"
    assert " ".join(header(stdout, "config")) == "config epochs best CPU s to best test acc span F1"
    for config in ("before", "after"):
        _, epochs, best, cpu, to_best, accuracy, span_f1 = row(stdout, config)
        assert 1 <= int(best) <= int(epochs) <= 2
        assert 0 <= float(to_best) <= float(cpu)
        assert_score(float(accuracy))
        assert_score(float(span_f1))


def test_linear_fit_bench_prints_a_row_per_size(tmp_path: Path) -> None:
    stdout = run_bench("bench_linear_fit.py", "--sizes", "300", "150", "--json", tmp_path / "fit.json")
    assert header(stdout, "sentences") == ["sentences", "features", "cpu_s", "folds_cpu_s", "peak_rss_mib"]
    small, large = row(stdout, "150"), row(stdout, "300")
    assert 0 < int(small[1]) < int(large[1])  # more sentences, more words and word pairs
    assert float(large[2]) >= 0 and float(large[3]) > 0 and int(large[4]) > 0
    assert [r["sentences"] for r in json.loads((tmp_path / "fit.json").read_text())] == [150, 300]


def test_cancel_bench_prints_a_row_per_phase(tmp_path: Path) -> None:
    stdout = run_bench(
        "bench_cancel.py", "--sentences", "2000", "--after", "0", "--json", tmp_path / "c.json"
    )
    assert header(stdout, "cancel")[:5] == ["cancel", "during", "seconds", "stopped", "epochs"]
    for phase in ("fit", "epoch"):
        assert float(row(stdout, phase)[1]) >= 0 and row(stdout, phase)[2] == "cancelled"
    assert [r["phase"] for r in json.loads((tmp_path / "c.json").read_text())] == ["fit", "epoch"]


def test_previous_labels_bench_prints_a_row_per_rate(lfdata: Path) -> None:
    stdout = run_bench("bench_previous_labels.py", "--seeds", "1", "--rates", "0", "0.5", "--max-epochs", "1")
    assert header(stdout, "previous_label_dropout")[:3] == ["previous_label_dropout", "gold", "previous"]
    for rate in ("0.00", "0.50"):
        gold, empty = (float(w) for w in row(stdout, rate)[1:3])
        assert_score(gold)
        assert_score(empty)


def test_framing_bench_prints_a_row_per_size_and_limit() -> None:
    stdout = run_bench("bench_framing.py", "--sizes", "1")
    assert stdout.splitlines()[0] == f"lfengine from {REPO / 'lfengine'}"
    assert " ".join(header(stdout, "MiB")) == "MiB limit first item CPU s CPU s/MiB scanned/byte"
    for limit in ("32", "128"):
        _, _, first, seconds, per_mib, scanned = row(stdout, "1", limit)
        assert first == "dict"  # a 1 MiB line is under both limits: it is decoded
        assert float(seconds) >= 0 and float(per_mib) >= 0
        assert float(scanned) == pytest.approx(1.0, abs=0.01)  # each byte searched once


def test_startup_bench_reports_the_cpu_seconds_of_each_command(tmp_path: Path) -> None:
    out = tmp_path / "startup.json"
    cmd = [sys.executable, str(REPO / "bench" / "bench_startup.py"), "--runs", "1", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=scaled(120))
    # Exit 1 means a median over its limit: the limit itself is held by test_cli_messages's
    # torch-free --help test, which no machine's speed can flake.
    assert proc.returncode == 0 or "over the limit" in proc.stderr, proc.stderr
    assert header(proc.stdout, "command")[:2] == ["command", "median_cpu_s"]
    for command in ("--help", "train --help", "describe --help"):
        assert 0.0 < float(row(proc.stdout, "lfengine", *command.split())[len(command.split()) + 1]) < 30
    results = json.loads(out.read_text(encoding="utf-8"))
    assert set(results) == {"--help", "train --help", "describe --help"}
    assert all({"median_cpu_s", "runs", "limit_cpu_s"} <= set(r) for r in results.values())


def test_baselines_bench_prints_lfengine_beside_the_linear_models(lfdata: Path, tmp_path: Path) -> None:
    pytest.importorskip("sklearn", reason="the baselines bench needs the bench extra (scikit-learn)")
    out = tmp_path / "baselines.json"
    stdout = run_bench(
        "bench_baselines.py", *("--quick", "--only", "class-ionosphere", "--seeds", "1", "--json", out)
    )
    assert header(stdout, "data")[:6] == ["data", "train", "metric", "system", "mean", "sd"]
    for system in ("onehot-lr", "linear-svm", "lfengine"):
        words = row(stdout, "class-ionosphere", "280", "accuracy", system)
        assert_score(float(words[4]))
    margin = row(stdout, "class-ionosphere", "lfengine", "-")  # lfengine's margin over the best linear model
    results = json.loads(out.read_text())
    by_system = {r["system"]: r["score"] for r in results}
    best = max(by_system["onehot-lr"], by_system["linear-svm"])
    assert float(margin[-1]) == pytest.approx(by_system["lfengine"] - best, abs=6e-4)
    for r in results:
        assert set(r) == {"data", "task", "train_size", "metric", "system", "seed", "score"}
        assert (r["data"], r["train_size"], r["seed"]) == ("class-ionosphere", 280, 1)


def test_share_bench_scores_each_rule_and_every_fixed_share(lfdata: Path, tmp_path: Path) -> None:
    out = tmp_path / "share.json"
    arguments = ("--only", "class-ngram-sp1", "--seeds", "1", "--set", "max_epochs=1", "--json", out)
    stdout = run_bench("bench_share.py", *arguments)
    assert header(stdout, "data")[:3] == ["data", "rule", "mean"]
    results = {r["rule"]: r for r in json.loads(out.read_text())}
    assert list(results)[:4] == ["chosen", "one-se", "posterior", "oracle"]
    assert len(results) == 4 + 21  # shares 0, 0.05, ..., 1
    # the oracle picks each run's best share on the test: no rule and no fixed share beats it
    assert results["oracle"]["scores"][0] == max(r["scores"][0] for r in results.values())
    for rule, r in results.items():
        assert_score(r["scores"][0])
        assert 0.0 <= r["shares"][0] <= 1.0
        assert float(row(stdout, "class-ngram-sp1", *rule.split())[len(rule.split()) + 1].rstrip("*")) == (
            pytest.approx(r["scores"][0], abs=6e-4)
        )
    # the share lfengine chose, rebuilt from the two models apart, scores as that fixed share does
    chosen = results["chosen"]
    assert chosen["scores"] == results[f"share {chosen['shares'][0]:.2f}"]["scores"]
