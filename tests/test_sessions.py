"""Every recorded session (tests/sessions/) replayed through a real engine process, in each of
its framings; plus checks that the replayer catches differences and that the sessions cover
protocol.md."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from timeouts import scaled

from lfengine.replay import SessionSkipped, load_session, run_session, session_paths
from lfengine.replay.compare import is_milestone

REPO = Path(__file__).resolve().parent.parent
SESSIONS = REPO / "tests" / "sessions"
PROTOCOL = REPO / "protocol.md"
CASES = [
    pytest.param(path, fmt, id=f"{path.name.removesuffix('.requests.jsonl')}-{fmt}")
    for path in session_paths([str(SESSIONS)])
    for fmt in load_session(path).formats
]
# Error codes of protocol.md §7 that no session can provoke, and where they are tested instead.
NOT_IN_SESSIONS = {
    -32603: "internal error: a bug, by definition not provoked on purpose",
    -32002: "stream corrupt: needs over 1 MiB of non-msgpack input; tests/test_server.py",
    -32003: "engine busy: needs 1,024 waiting requests or 16 MiB of them; tests/test_resource_bounds.py",
    -32004: "shutting down: needs a signal; tests/test_server.py",
    1000: "data error: only its subclasses (1001-1003) are raised",
    1022: "model in use: needs two trainings into one directory at once; tests/test_model_commit.py",
    1099: "engine error: only its subclasses are raised",
}


@pytest.fixture(scope="module")
def replays(request: pytest.FixtureRequest):
    """Replays of the selected cases, started up front, two at a time: a replay mostly waits on its
    engine process, so two overlap well on a small machine."""
    selected = [
        item.callspec.params
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_session_replays_without_differences"
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures: dict[tuple[Path, str], Future] = {}
        for params in selected:
            session = load_session(params["requests"])
            futures[(params["requests"], params["fmt"])] = pool.submit(run_session, session, params["fmt"])
        yield futures
        for future in futures.values():
            future.cancel()


def outcome_of(replays: dict, requests: Path, fmt: str):
    future = replays.get((requests, fmt))
    if future is None:  # this test runs alone: replay just this case
        future = Future()
        try:
            future.set_result(run_session(load_session(requests), fmt))
        except SessionSkipped as exc:
            future.set_exception(exc)
    try:
        return future.result()
    except SessionSkipped as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize(("requests", "fmt"), CASES)
def test_session_replays_without_differences(replays, requests, fmt):
    outcome = outcome_of(replays, requests, fmt)
    report = "\n".join(outcome.differences[:30])
    assert outcome.ok, (
        f"{outcome.session} [{fmt}]:\n{report}\n--- engine stderr ---\n{outcome.stderr[-3000:]}"
    )


def test_a_tagger_trains_to_the_recorded_replies_on_a_cpu_without_vector_instructions(monkeypatch):
    """Recorded on one CPU, replayed on another: the tagger's classical CRF is fitted in float64
    (sparse_weights.FIT_DTYPE), as in float32 the summation order of other vector widths led its
    fit, which ends short of the optimum, to predictions 1e-3 away (docs/training.md)."""
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")  # torch's kernels without SIMD
    try:
        outcome = run_session(load_session(SESSIONS / "sequence.requests.jsonl"), "json")
    except SessionSkipped as exc:
        pytest.skip(str(exc))
    assert outcome.ok, "\n".join(outcome.differences[:30])


def test_notifications_session_shows_log_records_and_throttled_progress(replays):
    outcome = outcome_of(replays, SESSIONS / "notifications.requests.jsonl", "json")
    notifications = [m for m in outcome.messages if "id" not in m]
    logs = [n["params"] for n in notifications if n["method"] == "log"]
    assert logs and {log["level"] for log in logs} <= {"info", "warning", "error"}
    assert any(log["logger"] == "lfengine.trainer" for log in logs)
    progress = [n["params"]["progress"] for n in notifications if n["method"] == "progress"]
    assert all(n["params"]["id"] == 2 for n in notifications if n["method"] == "progress")
    assert progress[0]["batch"] == 1  # the first report goes out at once
    plain = [p["elapsed"] for p in progress[1:] if not is_milestone(p)]
    assert all(later - earlier >= 0.45 for earlier, later in zip(plain, plain[1:]))
    milestones = [(p["epoch"], bool(p["metrics"])) for p in progress if is_milestone(p)]
    assert milestones == [(1, False), (2, False), (2, True)]  # validated every second epoch


def copy_session(name: str, directory: Path) -> Path:
    for suffix in (".requests.jsonl", ".expected.jsonl"):
        shutil.copy(SESSIONS / f"{name}{suffix}", directory / f"{name}{suffix}")
    return directory / f"{name}.requests.jsonl"


def test_replayer_reports_a_changed_value_an_extra_response_and_a_missing_one(tmp_path):
    requests = copy_session("errors-json", tmp_path)
    expected = requests.with_name("errors-json.expected.jsonl")
    lines = expected.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace("-32700", "-32600")  # the engine answers {oops with -32700
    expected.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")  # without shutdown's response
    differences = run_session(load_session(requests), "json").differences
    assert differences[0] == "message 2 (response to id None): error.code: expected -32600, got -32700"
    assert differences[1].startswith("message 17 (response to id 12, shutdown): unexpected {")
    assert len(differences) == 2

    expected.write_text(
        "\n".join([*lines, '{"jsonrpc": "2.0", "id": 13, "result": {}}']) + "\n", encoding="utf-8"
    )
    differences = run_session(load_session(requests), "json").differences
    assert differences[-1].startswith("message 18 (response to id 13, status): missing; expected {")


def test_replayer_stays_in_lockstep_after_a_refused_shutdown(tmp_path):
    """A shutdown refused for its params leaves the engine reading: the replayer must go on
    waiting for each response, so that a status after a training sees the engine idle (it once
    stopped waiting after any shutdown, and the errors session's status raced a training)."""
    lfdata = REPO.parent / "shared" / "lfdata"
    if not (lfdata / "class-ionosphere.meta.json").is_file():
        pytest.skip(f"the shared LF data is absent ({lfdata})")
    requests = tmp_path / "refused.requests.jsonl"
    requests.write_text(
        "#formats json\n#needs lfdata\n"
        '{"jsonrpc":"2.0","id":1,"method":"shutdown","params":[1]}\n'
        '{"jsonrpc":"2.0","id":5,"method":"init","params":{"notifications":["progress"]}}\n'
        '{"jsonrpc":"2.0","id":2,"method":"train","params":{"meta":"${LFDATA}/class-ionosphere.meta.json",'
        '"model":"${TMP}/m","options":{"max_epochs":3}}}\n'
        "#wait progress\n"  # without lockstep: the training has begun and is still running
        '{"jsonrpc":"2.0","id":3,"method":"status"}\n'
        '{"jsonrpc":"2.0","id":4,"method":"shutdown"}\n',
        encoding="utf-8",
    )
    outcome = run_session(load_session(requests), "json")
    replies = {m["id"]: m for m in outcome.messages if "id" in m}
    assert replies[1]["error"]["code"] == -32602
    assert "result" in replies[2], replies[2]
    assert replies[3]["result"]["state"] == "idle", replies[3]
    assert outcome.exit_code == 0


def test_replayer_compares_floats_with_a_tolerance_and_types_strictly():
    from lfengine.replay.compare import compare

    assert compare({"p": 0.5, "n": 3}, {"p": 0.5 + 1e-7, "n": 3}, "r") == []
    assert compare({"p": 0.5}, {"p": 0.51}, "r") == ["r.p: expected 0.5, got 0.51"]
    assert compare({"p": 1.0}, {"p": 1}, "r") == ["r.p: expected 1.0, got 1"]
    assert compare({"seconds": 1.0, "x": "$any"}, {"seconds": 7.5, "x": [1]}, "r") == []
    assert compare({"a": {"$one_of": [1, "b"]}}, {"a": "b"}, "r") == []
    assert compare({"a": 1}, {"a": 1, "b": 2}, "r") == ["r.b: unexpected member 2"]


def test_replay_command_exit_status(tmp_path):
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "lfengine",
            "replay",
            str(SESSIONS / "errors-json"),
            str(SESSIONS / "errors-msgpack"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count("ok ") == 2
    requests = copy_session("errors-msgpack", tmp_path)
    expected = requests.with_name("errors-msgpack.expected.jsonl")
    expected.write_text(
        expected.read_text(encoding="utf-8").replace('"id": 8,', '"id": 80,'), encoding="utf-8"
    )
    bad = subprocess.run(
        [sys.executable, "-m", "lfengine", "replay", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )
    assert bad.returncode == 1 and "DIFFERS  errors-msgpack [msgpack]" in bad.stdout, bad.stdout


def recorded_messages() -> list[str]:
    return [path.read_text(encoding="utf-8") for path in SESSIONS.glob("*.expected.jsonl")]


def test_sessions_cover_every_method_of_protocol_md():
    methods = set(re.findall(r"^### 5\.\d+ `([a-z-]+)`", PROTOCOL.read_text(encoding="utf-8"), re.M))
    assert len(methods) == 8
    sent = "".join(path.read_text(encoding="utf-8") for path in SESSIONS.glob("*.requests.jsonl"))
    assert {m for m in methods if f'"method":"{m}"' not in sent} == set()


def test_sessions_cover_every_error_code_of_protocol_md():
    text = PROTOCOL.read_text(encoding="utf-8").replace("\u2212", "-")
    table = text[text.index("## 7. Error codes") : text.index("## 8. Limits")]
    codes = {int(code) for code in re.findall(r"^\| (-?\d+) \|", table, re.M)}
    assert len(codes) >= 17
    recorded = "".join(recorded_messages())
    provoked = {code for code in codes if f'"code": {code},' in recorded}
    assert codes - provoked == set(NOT_IN_SESSIONS), "a documented code is neither in a session nor exempt"


def test_a_session_needing_the_lf_data_is_skipped_with_a_message_when_it_is_absent(monkeypatch, tmp_path):
    import lfengine.replay.session as session_module

    monkeypatch.setattr(session_module, "LFDATA", tmp_path / "no-lfdata")
    with pytest.raises(SessionSkipped, match="needs the shared LF data, not found at .*no-lfdata"):
        run_session(load_session(SESSIONS / "classification.requests.jsonl"), "json")
    assert run_session(load_session(SESSIONS / "errors-json.requests.jsonl"), "json").ok  # needs none
