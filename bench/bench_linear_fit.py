"""What fitting the text classifier's linear model (``linear_text``) costs, by data size.

    python bench/bench_linear_fit.py [--sizes 1000 10000 50000] [--json FILE]

For each size, a made-up polarity export of that many sentences (bench/polarity_data.py) is
encoded as training would encode it, and ``LinearText.fit`` runs on all of it, on one thread,
then ``fit_folds`` (the out-of-fold fits that ``gated_evidence`` trains on): the table gives the
features kept, the CPU seconds of the fit and of the fold fits, and the process's peak resident
memory after both (sizes run in increasing order, so each peak includes the smaller ones').
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.polarity_data import write_polarity_corpus  # noqa: E402
from lfengine.builder.linear_text import LinearText  # noqa: E402
from lfengine.data.codec import build_codec  # noqa: E402
from lfengine.data.meta import read_meta  # noqa: E402
from lfengine.data.reader import read_data  # noqa: E402


def measure(sentences: int, work: Path) -> dict:
    write_polarity_corpus(work, sentences, 18, base=f"p{sentences}")
    spec = read_meta(work / f"p{sentences}.meta.json")
    codec, _ = build_codec(spec, embs=None, maxlens=None, seed=1)
    data = read_data(codec, spec.data_path()).data
    model = LinearText(codec.layout())
    started = time.process_time()
    model.fit(data)
    fitted = time.process_time()
    model.fit_folds(data)
    return {
        "sentences": sentences,
        "features": len(model.keys),
        "cpu_s": round(fitted - started, 2),
        "folds_cpu_s": round(time.process_time() - fitted, 2),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def main() -> int:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    print(f"{'sentences':>10} {'features':>10} {'cpu_s':>8} {'folds_cpu_s':>12} {'peak_rss_mib':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in sorted(args.sizes):
            row = measure(size, Path(tmp))
            rows.append(row)
            cells = f"{row['sentences']:>10} {row['features']:>10} {row['cpu_s']:>8} {row['folds_cpu_s']:>12}"
            print(f"{cells} {row['peak_rss_mib']:>13}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
