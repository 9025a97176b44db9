"""A local training worker process: ``python -m lfengine.worker META MODEL_DIR OPTIONS_JSON THREADS``.

lfengine.training.distributed starts ``workers - 1`` of these beside the process that was asked to train;
each joins the process group as its RANK says and runs the same lfengine.service.train. The
entry point lives here, above service, so that distributed (which trainer and service use)
never imports service.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time

from lfengine import service
from lfengine.console.logs import log_to_stderr
from lfengine.options import TrainOptions
from lfengine.training import distributed


def _watch_parent(parent: int) -> None:
    """A local worker ends with the process that started it (killed or not)."""

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def worker_main(argv: list[str]) -> int:
    """A local worker: ``META MODEL_DIR OPTIONS_JSON THREADS``; it trains as its RANK says."""
    meta, model_dir, options_json, threads = argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches rank 0, which stops every rank
    log_to_stderr(logging.WARNING, "%(asctime)s worker %(message)s", datefmt=None)
    _watch_parent(int(os.environ["LFENGINE_PARENT_PID"]))
    distributed.announce_worker()
    options = json.loads(options_json)
    if options.get("threads") is None:
        options["threads"] = int(threads)
    service.train(meta, model_dir, TrainOptions.from_dict(options))
    return 0


if __name__ == "__main__":
    raise SystemExit(worker_main(sys.argv[1:]))
