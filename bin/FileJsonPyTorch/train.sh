#!/bin/sh
# train.sh: lfengine drop-in for the GATE Learning Framework's PyTorch wrapper (lfengine 0.1.0).
# GATE runs: train.sh METAFILE MODELPREFIX [OPTION ...]
# Interpreter: $PYTHON_BIN, or when it is empty the recorded one, python3, python.
# Written by 'lfengine gate-wrapper'; safe to edit, rewritten by the next 'lfengine gate-wrapper'.
recorded_python=''
LFENGINE_HOME="${LFENGINE_HOME:-}"
if [ $# -lt 2 ]; then
    echo "usage: train.sh METAFILE MODELPREFIX [OPTION ...]" >&2
    exit 1
fi
py="${PYTHON_BIN:-}"
if [ -z "$py" ]; then
    for candidate in "$recorded_python" python3 python; do
        if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1; then
            py="$candidate"
            break
        fi
    done
fi
if [ -z "$py" ]; then
    echo "train.sh: no Python found: set PYTHON_BIN (e.g. in FileJsonPyTorch.yaml)" >&2
    exit 1
fi
if [ -n "$LFENGINE_HOME" ] && [ -f "$LFENGINE_HOME/lfengine/__init__.py" ]; then
    PYTHONPATH="$LFENGINE_HOME${PYTHONPATH:+:$PYTHONPATH}"
    export PYTHONPATH
fi
PYTHONSAFEPATH=1
export PYTHONSAFEPATH
exec "$py" -m lfengine gate-train "$@"
