"""The drop-in wrapper directory ``<dataDir>/FileJsonPyTorch/`` that GATE runs.

GATE copies its own wrapper directory into the data directory only when none exists
(gate-plugin.md §4), so writing ours there first makes the unchanged plugin train and apply with
lfengine. The scripts keep the old argument orders (§6.1, §6.2) and exit codes (0, or 127 after
a Python failure), work from any current directory, and the ``.cmd`` files propagate the exit
code, which the old ones did not (§8, item 13).

Interpreter: ``$PYTHON_BIN`` as GATE sets it; when it is empty, the interpreter that wrote the
directory, then ``python3``, then ``python``. ``PYTHONPATH``: when lfengine was imported from a
source checkout (not from site-packages), the scripts put that checkout first on PYTHONPATH,
so PYTHON_BIN only needs lfengine's dependencies; ``LFENGINE_HOME`` in the environment
overrides the recorded checkout. An installed lfengine is never put on PYTHONPATH, because
its site-packages may belong to another Python version. ``PYTHONSAFEPATH=1`` keeps the data
directory (the working directory) off ``sys.path`` on Python 3.11+, so files there cannot
shadow modules. A portable directory (for the LF plugin jar) records nothing and needs
lfengine installed in PYTHON_BIN's environment.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lfengine
from lfengine.files.safe_io import atomic_write_text

WRAPPER_NAME = "FileJsonPyTorch"
YAML_NAMES = ("FileJsonPyTorch.yaml", "FileJsonPyTorch.yaml.txt")  # what GATE reads, in its order

_SH_PROLOGUE = """\
#!/bin/sh
# {script}: lfengine drop-in for the GATE Learning Framework's PyTorch wrapper ({engine}).
# GATE runs: {usage}
# Interpreter: $PYTHON_BIN, or when it is empty the recorded one, python3, python.
# Written by 'lfengine gate-wrapper'; safe to edit, rewritten by the next 'lfengine gate-wrapper'.
recorded_python='{python}'
LFENGINE_HOME="${{LFENGINE_HOME:-{home}}}"
if [ $# -lt {min_args} ]; then
    echo "usage: {usage}" >&2
    exit 1
fi
py="${{PYTHON_BIN:-}}"
if [ -z "$py" ]; then
    for candidate in "$recorded_python" python3 python; do
        if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1; then
            py="$candidate"
            break
        fi
    done
fi
if [ -z "$py" ]; then
    echo "{script}: no Python found: set PYTHON_BIN (e.g. in FileJsonPyTorch.yaml)" >&2
    exit 1
fi
if [ -n "$LFENGINE_HOME" ] && [ -f "$LFENGINE_HOME/lfengine/__init__.py" ]; then
    PYTHONPATH="$LFENGINE_HOME${{PYTHONPATH:+:$PYTHONPATH}}"
    export PYTHONPATH
fi
PYTHONSAFEPATH=1
export PYTHONSAFEPATH
"""

# exec: the engine replaces the shell, so stopping the process GATE started stops the engine.
# It prints PROCESSING OK 0, or PROCESSING ERROR <code> and exits 127, as the old script did.
_TRAIN_SH_BODY = """\
exec "$py" -m lfengine gate-train "$@"
"""

# The third argument is the wrapper directory (unused); one that looks like an option is kept,
# so that 'apply.sh PREFIX META --labeled' by hand works too. Status lines go to stderr: stdout
# carries replies only.
_APPLY_SH_BODY = """\
model="$1"
meta="$2"
shift 2
if [ $# -gt 0 ]; then
    case "$1" in
        -*) ;;
        *) shift ;;
    esac
fi
exec "$py" -m lfengine gate-apply "$model" --cuda False --metafile "$meta" "$@"
"""

_CMD_PROLOGUE = """\
@echo off
rem {script}: lfengine drop-in for the GATE Learning Framework's PyTorch wrapper ({engine}).
rem GATE runs: {usage}
rem Interpreter: %PYTHON_BIN%, or when it is empty the recorded one, then python.
setlocal
set "RECORDED_PYTHON={python}"
if not defined LFENGINE_HOME set "LFENGINE_HOME={home}"
if "%~{min_args}"=="" goto usage
set "PY=%PYTHON_BIN%"
if defined PY set "PY=%PY:"=%"
if not defined PY if defined RECORDED_PYTHON if exist "%RECORDED_PYTHON%" set "PY=%RECORDED_PYTHON%"
if not defined PY set "PY=python"
set "LFENGINE_INIT=%LFENGINE_HOME%\\lfengine\\__init__.py"
if defined LFENGINE_HOME if exist "%LFENGINE_INIT%" set "PYTHONPATH=%LFENGINE_HOME%;%PYTHONPATH%"
set "PYTHONSAFEPATH=1"
"""

# cmd has no exec: the engine runs as the script's child, and its exit code (127 after a
# failure; it prints the PROCESSING lines itself) becomes the script's.
_CMD_EPILOGUE = """\
exit /b %ERRORLEVEL%
:usage
echo usage: {usage} 1>&2
exit /b 1
"""

_TRAIN_CMD_BODY = """\
"%PY%" -m lfengine gate-train %*
"""

_APPLY_CMD_BODY = """\
set "MODEL=%~1"
set "META=%~2"
shift
shift
set "THIRD=%~1"
if defined THIRD if not "%THIRD:~0,1%"=="-" shift
set "REST="
:collect
if "%~1"=="" goto run
set REST=%REST% %1
shift
goto collect
:run
"%PY%" -m lfengine gate-apply "%MODEL%" --cuda False --metafile "%META%"%REST%
"""

_WRAPPER_INFO = """\
# lfengine drop-in wrapper directory; GATE never reads this file.
- version: 1.0
- engine: lfengine {version}
- python: '{python}'
- lfengine_home: '{home}'
"""

TRAIN_USAGE = "train.sh METAFILE MODELPREFIX [OPTION ...]"
APPLY_USAGE = "apply.sh MODELPREFIX METAFILE [WRAPPERDIR] [OPTION ...]"


def source_checkout() -> str:
    """The directory holding the lfengine package, or "" when lfengine is installed."""
    package_dir = Path(lfengine.__file__).resolve().parent
    parent = package_dir.parent
    if parent.name in ("site-packages", "dist-packages"):
        return ""
    return str(parent)


def render_wrapper_files(python: str, home: str) -> dict[str, str]:
    """File name -> content; ``python``/``home`` are recorded ("" records nothing)."""
    for value in (python, home):
        if any(c in value for c in "'\"%$`\n\r"):
            raise ValueError(f"path cannot be written safely into the wrapper scripts: {value!r}")
    engine = f"lfengine {lfengine.__version__}"
    sh = {"engine": engine, "python": python, "home": home}
    cmd = {"engine": engine, "python": python, "home": home}
    train_cmd_usage = TRAIN_USAGE.replace("train.sh", "train.cmd")
    apply_cmd_usage = APPLY_USAGE.replace("apply.sh", "apply.cmd")
    return {
        "train.sh": _SH_PROLOGUE.format(script="train.sh", usage=TRAIN_USAGE, min_args=2, **sh)
        + _TRAIN_SH_BODY,
        "apply.sh": _SH_PROLOGUE.format(script="apply.sh", usage=APPLY_USAGE, min_args=2, **sh)
        + _APPLY_SH_BODY,
        "train.cmd": _crlf(
            _CMD_PROLOGUE.format(script="train.cmd", usage=train_cmd_usage, min_args=2, **cmd)
            + _TRAIN_CMD_BODY
            + _CMD_EPILOGUE.format(usage=train_cmd_usage)
        ),
        "apply.cmd": _crlf(
            _CMD_PROLOGUE.format(script="apply.cmd", usage=apply_cmd_usage, min_args=2, **cmd)
            + _APPLY_CMD_BODY
            + _CMD_EPILOGUE.format(usage=apply_cmd_usage)
        ),
        "wrapperInfo.yaml": _WRAPPER_INFO.format(version=lfengine.__version__, python=python, home=home),
    }


def _crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


def write_wrapper_dir(datadir: str, *, portable: bool = False) -> Path:
    """Write ``datadir/FileJsonPyTorch/`` (creating datadir if needed); returns its path.

    Existing scripts of the same names are replaced; other entries (e.g. the old wrapper's
    Python libraries) are left alone. ``portable`` records no interpreter or checkout path.
    Otherwise the interpreter is also recorded in ``FileJsonPyTorch.yaml`` when the data
    directory has none (see write_python_yaml).
    """
    python = "" if portable else sys.executable
    home = "" if portable else source_checkout()
    files = render_wrapper_files(python, home)
    target = Path(datadir) / WRAPPER_NAME
    target.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        atomic_write_text(target / name, content, executable=name.endswith(".sh"))
    if python:
        write_python_yaml(Path(datadir), python)
    return target


def write_python_yaml(datadir: Path, python: str) -> Path | None:
    """Record ``PYTHON_BIN`` in ``datadir/FileJsonPyTorch.yaml`` unless the user has one.

    GATE always exports PYTHON_BIN (default ``python``), so the scripts' fallback to the
    recorded interpreter never runs under GATE; GATE takes PYTHON_BIN from this file
    (gate-plugin.md §5). An existing ``FileJsonPyTorch.yaml`` or ``.yaml.txt`` is the user's and
    is never touched. Returns the file written, or None.
    """
    if any((datadir / name).exists() for name in YAML_NAMES):
        return None
    path = datadir / YAML_NAMES[0]
    text = (
        "# Written by 'lfengine gate-wrapper': the Python that runs lfengine for GATE. Yours to edit;\n"
        "# never overwritten.\n"
        f"PYTHON_BIN: '{python}'\n"
    )
    try:
        with open(path, "x", encoding="utf-8") as f:  # "x": never over a file created meanwhile
            f.write(text)
    except FileExistsError:
        return None
    return path
