"""lfengine: the deep-learning back-end of the GATE Learning Framework.

One process default is set here, before torch loads: OpenMP threads waiting for work sleep
instead of spinning (OMP_WAIT_POLICY=PASSIVE), unless OMP_WAIT_POLICY or GOMP_SPINCOUNT says
otherwise. With libgomp's own spinning, torch's 2 threads on a 2-core machine that other
processes also use (GATE beside the engine, parallel jobs) took 13-29x the CPU of one thread
and 17-43x its wall time per epoch; waiting passively, 1.2-1.3x the CPU and 1.2-1.3x the wall
time (bench/bench_scale.py, README "Threads"). It takes effect only in a process that imports
lfengine before torch, as every lfengine command does.
"""

import os

if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

__version__ = "0.1.0"
