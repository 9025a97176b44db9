"""``lfengine eject``: its arguments and what it prints (the work is in lfengine.eject)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lfengine.cli.arguments import add_train_options, options_from


def eject_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "source", metavar="META_OR_MODEL_DIR", help="an LF meta file, or a trained model directory"
    )
    p.add_argument("-o", "--output", required=True, help="the Python file to write, e.g. my_network.py")
    p.add_argument("--class", dest="class_name", help="class name (default: from the file name)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    add_train_options(p, run_options=False)


def run_eject(args: argparse.Namespace) -> int:
    from lfengine.console.printable import printable
    from lfengine.eject import eject, source_from_meta, source_from_model
    from lfengine.errors import OptionError
    from lfengine.files.paths import check_output, writing_output

    output = Path(args.output)
    if output.suffix != ".py":
        raise OptionError(f"--output {output}: name a .py file (it is imported as --module FILE.py:Class)")
    if output.exists() and not args.force:
        raise OptionError(f"{output} exists; pass --force to overwrite it")
    check_output(output, f"cannot write {output}")
    if Path(args.source).is_dir():
        source = source_from_model(args.source)
    else:
        source = source_from_meta(args.source, options_from(args))
    with writing_output(output, f"cannot write {output}"):
        name = eject(source, str(output), args.class_name)
    print(printable(f"wrote {output} (class {name}); train it with --module {output}:{name}"))
    return 0
