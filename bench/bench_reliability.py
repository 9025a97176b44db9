"""The reliability suite of issue 8 at full counts, with its summary table.

Protocol fuzz (both framings), legacy apply.sh fuzz, data-file mutation, faults (kill -9 then
--resume, SIGTERM to serve during train, a read-only model directory, a full disk), memory per
request (bench/reliability/memory.py: peak RSS per MB of request), model saves (issue 19: a kill
before every write step of a save, two trainers into one directory, loads while a training
saves; bench/reliability/save_faults.py), code execution routes and symbolic links (issue 19),
all against the real engine. Every category counts tried / handled / crash / hang / traceback /
lost (bench/reliability/tally.py says what each means) and lists its failing cases with their
seed.

Run:  nice .venv/bin/python bench/bench_reliability.py [--seed 1] [--frames 10000] [--legacy 2000]
      [--data 200] [--kills 20] [--sigterms 3] [--only protocol,legacy,data,faults,memory,saves,code,links]
Exit code 1 when any case was not handled. Needs the shared LF data (../shared/lfdata) and,
for the read-only and full-disk cases, root (a tmpfs is mounted); they are skipped otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.reliability import faults, save_faults  # noqa: E402
from bench.reliability.code_routes import run_code_execution  # noqa: E402
from bench.reliability.corpus import LFDATA, slice_lfdata  # noqa: E402
from bench.reliability.data_mutation import run_data_mutation  # noqa: E402
from bench.reliability.legacy_fuzz import run_legacy_fuzz, train_models  # noqa: E402
from bench.reliability.links import run_links  # noqa: E402
from bench.reliability.memory import run_memory  # noqa: E402
from bench.reliability.protocol_fuzz import run_protocol_fuzz  # noqa: E402
from bench.reliability.tally import Tally, table  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--frames", type=int, default=10_000, help="protocol frames per framing")
    parser.add_argument("--legacy", type=int, default=2_000, help="legacy request lines")
    parser.add_argument("--data", type=int, default=200, help="data-file mutations")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--sigterms", type=int, default=3)
    parser.add_argument("--only", default="protocol,legacy,data,faults,memory,saves,code,links")
    args = parser.parse_args()
    if not (LFDATA / "class-ionosphere.meta.json").is_file():
        print(f"LF reference data not found at {LFDATA}", file=sys.stderr)
        return 2
    parts = set(args.only.split(","))
    tallies: list[Tally] = []
    with tempfile.TemporaryDirectory(prefix="lfengine-reliability-") as tmp:
        work = Path(tmp)

        def add(tally: Tally) -> None:
            tallies.append(tally)
            print(
                tally.report() if tally.failures else f"{tally.category}: all {tally.tried} handled",
                file=sys.stderr,
                flush=True,
            )

        if "protocol" in parts:
            for fmt in ("json", "msgpack"):
                add(
                    run_protocol_fuzz(
                        fmt, args.frames, seed=args.seed, lfdata=LFDATA, workdir=_dir(work, fmt)
                    )
                )
        if "legacy" in parts:
            models = train_models(LFDATA, _dir(work, "legacy"))
            add(run_legacy_fuzz(models, args.legacy, seed=args.seed, workdir=work / "legacy"))
        if "data" in parts:
            add(run_data_mutation(LFDATA, args.data, seed=args.seed, workdir=_dir(work, "data"), cli_cases=5))
        if "faults" in parts:
            small = slice_lfdata(LFDATA, _dir(work, "faults") / "lfdata", lines=120)
            meta = small / "class-ionosphere.meta.json"
            add(faults.run_kill_resume(meta, _dir(work, "kill"), args.kills, seed=args.seed))
            add(faults.run_sigterm(meta, _dir(work, "term"), args.sigterms, seed=args.seed))
            add(faults.run_read_only(meta, small / "class-ionosphere.data.json", _dir(work, "ro")))
            add(
                faults.run_full_disk(
                    small / "class-window-pos1.meta.json", _dir(work, "disk"), seed=args.seed
                )
            )
        if "memory" in parts:
            add(run_memory(LFDATA, _dir(work, "memory")))
        if "saves" in parts:  # issue 19: kills at every save step, concurrent trainers, loads
            meta = (
                slice_lfdata(LFDATA, _dir(work, "saves") / "lfdata", lines=120) / "class-ionosphere.meta.json"
            )
            for tally in save_faults.run_all(meta, _dir(work, "saves"), seed=args.seed):
                add(tally)
        for tally in run_code_execution(_dir(work, "code"), args.seed) if "code" in parts else []:
            add(tally)
        if "links" in parts:
            add(run_links(_dir(work, "links")))
    print(table(tallies))
    return 0 if all(t.counts["handled"] == t.tried for t in tallies) else 1


def _dir(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path


if __name__ == "__main__":
    sys.exit(main())
