"""The drop-in wrapper directory: files, and the scripts run for real with bash and sh.

Argument handling is checked with a recording stand-in for the interpreter (PYTHON_BIN points
at a small shell script that writes down its arguments and environment); the scripts' use of
the real lfengine is checked with the real interpreter further down and in test_gate_e2e.py.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from timeouts import scaled

from lfengine.gate.wrapper import WRAPPER_NAME, render_wrapper_files, source_checkout, write_wrapper_dir

SHELLS = [shell for shell in ("bash", "sh") if shutil.which(shell)]
REPO = Path(__file__).resolve().parent.parent

RECORDER = """\
#!/bin/sh
for arg in "$@"; do printf '%s\\n' "$arg"; done > "$RECORD_DIR/args"
printf '%s\\n' "PYTHONPATH=$PYTHONPATH" "PYTHONSAFEPATH=$PYTHONSAFEPATH" "PWD=$(pwd)" > "$RECORD_DIR/env"
echo $$ > "$RECORD_DIR/pid"
cat
exit "${FAKE_RC:-0}"
"""


@pytest.fixture
def datadir(tmp_path: Path) -> Path:
    path = tmp_path / "data dir"  # GATE passes absolute paths, which may contain spaces
    write_wrapper_dir(str(path))
    return path


@pytest.fixture
def recorder(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "fakepython"
    path.parent.mkdir()
    path.write_text(RECORDER, encoding="utf-8")
    path.chmod(0o755)
    return path


def run_script(shell, script: Path, args, *, cwd: Path, env: dict, stdin: bytes = b""):
    return subprocess.run(
        [shell, str(script), *map(str, args)],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        timeout=scaled(120),
    )


def gate_env(datadir: Path, python: str, **extra: str) -> dict:
    """The environment GATE gives the scripts (gate-plugin.md §6.3)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(
        WRAPPER_HOME=str(datadir / WRAPPER_NAME),
        GATE_LF_DATA_DIR=str(datadir),
        PYTHON_BIN=python,
        RECORD_DIR=str(Path(python).parent),
        **extra,
    )
    return env


def recorded(recorder: Path, name: str) -> list[str]:
    return (recorder.parent / name).read_text(encoding="utf-8").splitlines()


def test_wrapper_dir_has_the_scripts_gate_runs(datadir):
    wrapper = datadir / WRAPPER_NAME
    assert (
        (datadir / "FileJsonPyTorch.yaml")
        .read_text(encoding="utf-8")
        .endswith(f"PYTHON_BIN: '{sys.executable}'\n")
    )
    assert sorted(p.name for p in wrapper.iterdir()) == [
        "apply.cmd",
        "apply.sh",
        "train.cmd",
        "train.sh",
        "wrapperInfo.yaml",
    ]
    for name in ("train.sh", "apply.sh"):
        assert (wrapper / name).stat().st_mode & stat.S_IXUSR
        assert b"\r" not in (wrapper / name).read_bytes()
    for name in ("train.cmd", "apply.cmd"):
        data = (wrapper / name).read_bytes()
        assert data.count(b"\n") == data.count(b"\r\n")  # cmd.exe wants CRLF
    assert "- version: 1.0" in (wrapper / "wrapperInfo.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("script", ["train.sh", "apply.sh"])
def test_scripts_are_valid_shell(datadir, shell, script):
    result = subprocess.run([shell, "-n", str(datadir / WRAPPER_NAME / script)], capture_output=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_train_sh_passes_the_gate_arguments_through_from_any_directory(datadir, recorder, tmp_path, shell):
    meta, prefix = datadir / "crvd.meta.json", datadir / "FileJsonPyTorch.model"
    result = run_script(
        shell,
        datadir / WRAPPER_NAME / "train.sh",
        [meta, prefix, "--maxepochs", "2", "--embs", "token:50:yes"],
        cwd=tmp_path,
        env=gate_env(datadir, str(recorder)),
    )
    assert result.returncode == 0, result.stderr
    assert recorded(recorder, "args") == [
        "-m",
        "lfengine",
        "gate-train",
        str(meta),
        str(prefix),
        "--maxepochs",
        "2",
        "--embs",
        "token:50:yes",
    ]
    env = recorded(recorder, "env")
    assert f"PYTHONPATH={source_checkout()}" in env and "PYTHONSAFEPATH=1" in env
    assert f"PWD={tmp_path}" in env  # the working directory is left as GATE set it


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("script", ["train.sh", "apply.sh"])
def test_the_engine_replaces_the_shell_and_its_exit_code_is_the_scripts(datadir, recorder, shell, script):
    """exec: the process GATE starts (and kills on stop()) is the engine itself, not a shell
    whose child would outlive it; lfengine prints the PROCESSING lines and exits 127 itself."""
    process = subprocess.Popen(
        [shell, str(datadir / WRAPPER_NAME / script), "a", "b", "c"],
        cwd=datadir,
        env=gate_env(datadir, str(recorder), FAKE_RC="3"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.communicate(timeout=scaled(120))
    assert process.returncode == 3
    assert recorded(recorder, "pid") == [str(process.pid)]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("script", ["train.sh", "apply.sh"])
def test_missing_positionals_exit_1_with_usage(datadir, recorder, shell, script):
    result = run_script(
        shell,
        datadir / WRAPPER_NAME / script,
        ["only-one"],
        cwd=datadir,
        env=gate_env(datadir, str(recorder)),
    )
    assert result.returncode == 1 and "usage:" in result.stderr.decode()
    assert not (recorder.parent / "args").exists()


@pytest.mark.parametrize("shell", SHELLS)
def test_apply_sh_inserts_cuda_false_and_metafile_and_keeps_stdout_for_replies(datadir, recorder, shell):
    prefix, meta, wrapper = (
        datadir / "FileJsonPyTorch.model",
        datadir / "crvd.meta.json",
        datadir / WRAPPER_NAME,
    )
    result = run_script(
        shell,
        wrapper / "apply.sh",
        [prefix, meta, wrapper, "--cuda", "True", "--logevery", "5"],
        cwd=datadir,
        env=gate_env(datadir, str(recorder)),
        stdin=b'["request"]\n',
    )
    assert result.returncode == 0
    assert recorded(recorder, "args") == [
        "-m",
        "lfengine",
        "gate-apply",
        str(prefix),
        "--cuda",
        "False",
        "--metafile",
        str(meta),
        "--cuda",
        "True",
        "--logevery",
        "5",
    ]
    assert result.stdout == b'["request"]\n'  # what the interpreter wrote, nothing else


@pytest.mark.parametrize("shell", SHELLS)
def test_apply_sh_by_hand_without_the_wrapper_dir_keeps_the_options(datadir, recorder, shell):
    result = run_script(
        shell,
        datadir / WRAPPER_NAME / "apply.sh",
        ["m", "meta.json", "--labeled"],
        cwd=datadir,
        env=gate_env(datadir, str(recorder)),
    )
    assert result.returncode == 0
    assert recorded(recorder, "args")[3:] == ["m", "--cuda", "False", "--metafile", "meta.json", "--labeled"]


def test_empty_python_bin_falls_back_to_the_recorded_interpreter(tmp_path, recorder):
    wrapper = tmp_path / WRAPPER_NAME
    wrapper.mkdir()
    script = wrapper / "train.sh"
    script.write_text(render_wrapper_files(str(recorder), "")["train.sh"], encoding="utf-8")
    env = gate_env(tmp_path, "")
    env["RECORD_DIR"] = str(recorder.parent)
    result = run_script("sh", script, ["m.json", "p"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert recorded(recorder, "args")[:3] == ["-m", "lfengine", "gate-train"]
    assert "PYTHONPATH=" in recorded(recorder, "env")  # nothing recorded, nothing added


def test_rewriting_replaces_the_scripts_and_keeps_other_entries(tmp_path):
    wrapper = tmp_path / WRAPPER_NAME
    (wrapper / "gate-lf-pytorch-json").mkdir(parents=True)
    (wrapper / "train.sh").write_text("#!/bin/sh\necho old\n", encoding="utf-8")
    assert write_wrapper_dir(str(tmp_path)) == wrapper
    assert (wrapper / "gate-lf-pytorch-json").is_dir()
    assert "gate-train" in (wrapper / "train.sh").read_text(encoding="utf-8")
    assert not list(wrapper.glob(".*.tmp"))


def test_portable_directory_records_no_paths(tmp_path):
    wrapper = write_wrapper_dir(str(tmp_path), portable=True)
    for name in ("train.sh", "apply.sh", "train.cmd", "apply.cmd"):
        text = (wrapper / name).read_text(encoding="utf-8")
        assert sys.executable not in text and str(REPO) not in text


def test_cmd_scripts_keep_the_argument_order_and_propagate_the_exit_code(datadir):
    wrapper = datadir / WRAPPER_NAME
    train_cmd = (wrapper / "train.cmd").read_text(encoding="utf-8")
    apply_cmd = (wrapper / "apply.cmd").read_text(encoding="utf-8")
    assert '"%PY%" -m lfengine gate-train %*' in train_cmd
    assert '"%PY%" -m lfengine gate-apply "%MODEL%" --cuda False --metafile "%META%"%REST%' in apply_cmd
    for text in (train_cmd, apply_cmd):
        # cmd has no exec: the engine's own exit code (127 after a failure) is passed on at once
        lines = text.splitlines()
        engine = next(i for i, line in enumerate(lines) if "-m lfengine gate-" in line)
        assert lines[engine + 1] == "exit /b %ERRORLEVEL%"
        assert "exit /b 1" in text  # the usage error


def test_portable_directory_writes_no_yaml_and_an_existing_yaml_is_never_touched(tmp_path):
    write_wrapper_dir(str(tmp_path / "portable"), portable=True)
    assert not list((tmp_path / "portable").glob("FileJsonPyTorch.yaml*"))
    for name in ("FileJsonPyTorch.yaml", "FileJsonPyTorch.yaml.txt"):
        datadir = tmp_path / name
        datadir.mkdir()
        (datadir / name).write_text("PYTHON_BIN: /usr/bin/mine\n", encoding="utf-8")
        write_wrapper_dir(str(datadir))
        assert (datadir / name).read_text(encoding="utf-8") == "PYTHON_BIN: /usr/bin/mine\n"
        assert [p.name for p in datadir.glob("FileJsonPyTorch.yaml*")] == [name]


@pytest.mark.parametrize("path", ["/opt/it's", "C:\\100%", "/tmp/$HOME", "/a\nb"])
def test_paths_that_cannot_be_quoted_safely_are_refused(path):
    with pytest.raises(ValueError, match="cannot be written safely"):
        render_wrapper_files(path, "")


# --- with the real interpreter ----------------------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_train_sh_runs_the_real_lfengine_from_the_data_directory(datadir, shell):
    result = run_script(
        shell,
        datadir / WRAPPER_NAME / "train.sh",
        [datadir / "crvd.meta.json", datadir / "FileJsonPyTorch.model", "--help"],
        cwd=datadir,
        env=gate_env(datadir, sys.executable),
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "usage: gate-train METAFILE MODELPREFIX" in out and out.strip().endswith("PROCESSING OK 0")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="PYTHONSAFEPATH needs Python 3.11")
def test_files_in_the_data_directory_cannot_shadow_modules(datadir):
    (datadir / "json.py").write_text("raise SystemExit('shadowed json imported')\n", encoding="utf-8")
    (datadir / "lfengine").mkdir()
    (datadir / "lfengine" / "__init__.py").write_text("raise SystemExit('shadowed lfengine')\n")
    result = run_script(
        "sh",
        datadir / WRAPPER_NAME / "train.sh",
        ["crvd.meta.json", "FileJsonPyTorch.model", "--nocreate"],
        cwd=datadir,
        env=gate_env(datadir, sys.executable),
    )
    assert result.returncode == 0, result.stderr
    assert b"shadowed" not in result.stderr


def test_unknown_option_fails_training_with_127_and_the_reason(datadir):
    result = run_script(
        "sh",
        datadir / WRAPPER_NAME / "train.sh",
        ["crvd.meta.json", "FileJsonPyTorch.model", "--maxepoch", "3"],
        cwd=datadir,
        env=gate_env(datadir, sys.executable),
    )
    err = result.stderr.decode()
    assert result.returncode == 127
    assert "unknown option --maxepoch; did you mean --maxepochs?" in err and "PROCESSING ERROR 2" in err


def test_the_shipped_portable_directory_is_up_to_date():
    """bin/FileJsonPyTorch/ is what the LF plugin jar can ship; regenerate it with
    ``write_wrapper_dir("bin", portable=True)`` when the scripts change."""
    shipped = REPO / "bin" / WRAPPER_NAME
    for name, content in render_wrapper_files("", "").items():
        assert (shipped / name).read_bytes() == content.encode("utf-8"), name
    assert all((shipped / name).stat().st_mode & stat.S_IXUSR for name in ("train.sh", "apply.sh"))
