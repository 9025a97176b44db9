"""``gate-train`` and ``gate-apply``: what the drop-in ``train.sh`` / ``apply.sh`` run.

Both are thin shells over lfengine.service. Training may log freely; it exits 0 only when a
model directory exists afterwards (or for --notrain/--nocreate, which GATE treats the same).
Application owns the real stdout for replies: file descriptor 1 is pointed at stderr before the
model is loaded, so a stray print or library banner can never desynchronise GATE.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import BinaryIO

from lfengine.console.logs import NAMED_FORMAT, log_to_stderr
from lfengine.console.printable import printable
from lfengine.description import render_description
from lfengine.errors import LfEngineError, ModelError, OptionError
from lfengine.files.paths import MAX_META_BYTES, read_regular_bytes
from lfengine.gate.cmdline import format_usage
from lfengine.gate.options import (
    APPLY_SPECS,
    TRAIN_SPECS,
    GateApplySettings,
    GateTrainSettings,
    apply_settings_from,
    save_settings,
    train_settings_from,
)
from lfengine.runtime.process import claim_stdout

log = logging.getLogger("lfengine.gate")

TRAIN_USAGE_EPILOG = (
    "Runs as train.sh METAFILE MODELPREFIX [OPTION ...]; the model is written to the directory\n"
    "MODELPREFIX.d. Unset options use lfengine's defaults and heuristics."
)
APPLY_USAGE_EPILOG = (
    "Runs as apply.sh MODELPREFIX METAFILE WRAPPERDIR [OPTION ...], which passes\n"
    "--cuda False --metafile METAFILE. Reads one request per line on stdin, writes one reply\n"
    "per line on stdout; ends on EOF or a line STOP."
)


def script_main(program: str, argv: list[str]) -> int:
    """What train.sh / apply.sh exec: the command, then the old scripts' status line and exit
    code (gate-plugin.md §6): ``PROCESSING OK 0`` and 0, or ``PROCESSING ERROR <code>`` on
    stderr and 127. The scripts exec the engine, so these lines now come from here."""
    main = gate_train_main if program == "gate-train" else gate_apply_main
    code = main(argv)
    if code == 0:
        # Training: on stdout, as before. Application: stdout carries replies only.
        stream = sys.stdout if program == "gate-train" else sys.stderr
        print("PROCESSING OK 0", file=stream, flush=True)
        return 0
    print(f"PROCESSING ERROR {code}", file=sys.stderr, flush=True)
    return 127


def _say(program: str, kind: str, message: str) -> None:
    print(printable(f"{program}: {kind}: {message}"), file=sys.stderr, flush=True)


def _setup_logging(debug: bool) -> None:
    log_to_stderr(None, NAMED_FORMAT, datefmt=None)
    logging.getLogger("lfengine").setLevel(logging.DEBUG if debug else logging.INFO)


def gate_train_main(argv: list[str]) -> int:
    """train.sh: METAFILE MODELPREFIX [old options]. Returns the exit code."""
    try:
        settings = train_settings_from(argv)
    except OptionError as e:
        _say("gate-train", "error", e.message)
        return 2
    if settings.help:
        sys.stdout.write(format_usage("gate-train", "METAFILE MODELPREFIX", TRAIN_SPECS, TRAIN_USAGE_EPILOG))
        return 0
    _setup_logging(settings.debug)
    for warning in settings.warnings:
        _say("gate-train", "warning", warning)
    for note in settings.notes:
        log.info(note)
    try:
        save_settings(settings, "gate-train")
        if settings.no_create:
            log.info("--nocreate: options are valid, exiting without loading data")
            return 0
        return _train(settings)
    except LfEngineError as e:
        _say("gate-train", "error", e.message)
        return 1
    except KeyboardInterrupt:
        _say("gate-train", "error", "interrupted")
        return 130
    except Exception as e:
        log.exception("internal error")
        _say("gate-train", "error", f"internal error ({type(e).__name__}): {e}")
        return 1


def _train(settings: GateTrainSettings) -> int:
    if not os.path.isfile(settings.meta_path):
        raise OptionError(f"meta file not found: {settings.meta_path}")
    if settings.options.valfile and not os.path.isfile(settings.options.valfile):
        raise OptionError(f"--valfile not found: {settings.options.valfile}")
    if settings.cuda:
        require_usable_gpu()
    from lfengine import service
    from lfengine.console.progress import ProgressDisplay
    from lfengine.storage.store import model_dir_for_prefix

    if settings.no_train:
        description = service.describe(settings.meta_path, settings.options)
        sys.stdout.write(printable(render_description(description)) + "\n")
        sys.stdout.flush()
        log.info("--notrain: network shown, no model trained")
        return 0
    model_dir = str(model_dir_for_prefix(settings.model_prefix))
    log.info("training %s -> %s", settings.meta_path, model_dir)
    with ProgressDisplay(sys.stderr) as progress:
        result = service.train(settings.meta_path, model_dir, settings.options, on_progress=progress.update)
    best = ", ".join(f"{name}={_number(value)}" for name, value in (result.get("best") or {}).items())
    log.info(
        "training ended (%s) after %s epoch(s) in %.1fs; best validation: %s; model: %s",
        result.get("stopped"),
        result.get("epochs"),
        float(result.get("seconds") or 0.0),
        best or "none",
        result.get("model_dir", model_dir),
    )
    if not os.path.isdir(model_dir):
        raise ModelError(f"training ended ({result.get('stopped')}) without writing a model to {model_dir}")
    return 0


def require_usable_gpu() -> None:
    """--cuda true must fail now, with a reason, rather than somewhere inside training."""
    import torch

    if not torch.cuda.is_available():
        reason = "this torch build has no CUDA support" if torch.version.cuda is None else "no GPU is visible"
        raise OptionError(f"--cuda true, but no usable GPU: {reason}; use --cuda false or leave it out")


def _number(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def gate_apply_main(argv: list[str]) -> int:
    """apply.sh: MODELPREFIX --cuda False --metafile META [old options]. Returns the exit code.

    A start-up failure (bad option, missing model) is logged and, when stdin is a pipe, also
    sent as the error reply to every request until EOF, so that GATE reports the cause.
    """
    try:
        settings = apply_settings_from(argv)
    except OptionError as e:
        _say("gate-apply", "error", e.message)
        return _fail_requests(e.message, sys.stdin.buffer, sys.stdout.buffer)
    if settings.help:
        sys.stdout.write(format_usage("gate-apply", "MODELPREFIX", APPLY_SPECS, APPLY_USAGE_EPILOG))
        return 0
    _setup_logging(debug=False)
    for warning in settings.warnings:
        _say("gate-apply", "warning", warning)
    replies = claim_stdout()
    try:
        save_settings(settings, "gate-apply")
        model = _load(settings)
    except LfEngineError as e:
        _say("gate-apply", "error", e.message)
        return _fail_requests(e.message, sys.stdin.buffer, replies)
    except Exception as e:
        log.exception("internal error loading the model")
        message = f"internal error loading the model ({type(e).__name__}): {e}"
        return _fail_requests(message, sys.stdin.buffer, replies)
    from lfengine.protocol.legacy import run_legacy_loop

    try:
        return run_legacy_loop(
            model,
            sys.stdin.buffer,
            replies,
            labeled=settings.labeled,
            noret=settings.noret,
            logevery=settings.logevery,
        )
    except KeyboardInterrupt:
        return 130


def _fail_requests(message: str, stdin: BinaryIO, replies: BinaryIO) -> int:
    if stdin.isatty():
        return 1
    from lfengine.protocol.legacy import run_error_loop

    log.info("answering every request with this error until stdin ends")
    return run_error_loop(message, stdin, replies)


def _load(settings: GateApplySettings):
    from lfengine.storage.store import model_dir_for_prefix

    model_dir = str(model_dir_for_prefix(settings.model_prefix))
    if not os.path.isdir(model_dir):
        raise ModelError(_missing_model_message(settings.model_prefix, model_dir))
    import torch

    device = "cpu"
    if settings.cuda:
        if torch.cuda.is_available():
            device = "cuda"
        else:
            _say("gate-apply", "warning", "--cuda true, but no usable GPU: applying on the CPU")
    if "OMP_NUM_THREADS" not in os.environ:
        # One request at a time: a single thread answers fastest (several threads only contend
        # for such small work) and lets GATE's many apply processes share the cores.
        torch.set_num_threads(1)
    from lfengine import service

    model = service.load_model(model_dir, device=device, trust_module=settings.trust_module)
    log.info(
        "model loaded from %s: %s, %d label(s), %d feature(s), device %s",
        model_dir,
        model.task,
        len(model.labels),
        model.num_features,
        device,
    )
    if settings.meta_path:
        _check_meta(settings.meta_path, model)
    return model


def _missing_model_message(prefix: str, model_dir: str) -> str:
    if os.path.exists(prefix + ".module.pytorch") or os.path.exists(prefix + ".wrapper.pickle"):
        return (
            f"{prefix}.* is a model of the old PyTorch wrapper (Python pickles, which lfengine never "
            f"loads); train again with this wrapper's train.sh to create {model_dir}"
        )
    return f"no model at {model_dir}: was training run with --notrain or --nocreate, or did it fail?"


def _check_meta(meta_path: str, model) -> None:
    """--metafile: warn when the data directory's meta file no longer matches the model."""
    try:
        meta = json.loads(read_regular_bytes(meta_path, MAX_META_BYTES).decode("utf-8"))
        features = len(meta.get("features") or [])
        is_sequence = meta.get("isSequence")
    except (OSError, ValueError, AttributeError) as e:  # UnicodeDecodeError is a ValueError
        log.info("--metafile %s not checked (%s); the model does not need it", meta_path, e)
        return
    if features != model.num_features or (is_sequence is not None and bool(is_sequence) != model.is_sequence):
        kind = "sequences" if is_sequence else "instances"
        _say(
            "gate-apply",
            "warning",
            f"--metafile {meta_path} describes {features} feature(s) of {kind}, but the model expects "
            f"{model.num_features} feature(s) of {'sequences' if model.is_sequence else 'instances'}: "
            "was the data exported again after training? Requests will be checked against the model.",
        )
