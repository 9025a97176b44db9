"""lfengine: the deep-learning back-end of the GATE Learning Framework.

One process default is set here, before torch loads: OpenMP threads waiting for work sleep
instead of spinning (OMP_WAIT_POLICY=PASSIVE), unless OMP_WAIT_POLICY or GOMP_SPINCOUNT says
otherwise. With libgomp's own spinning, torch's 2 threads on a 2-core machine that other
processes also use (GATE beside the engine, parallel jobs) burned 13x the CPU of one thread and
took 8x the wall time per epoch; passive waiting removes that, at little cost where the cores
are free (bench/bench_scale.py, README "Threads"). It takes effect only in a process that
imports lfengine before torch, as every lfengine command does.
"""

import os

if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

__version__ = "0.1.0"
