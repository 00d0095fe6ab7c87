"""How long a fit with unlabelled line images takes (issue 16's cost target: 100 images, 30 s).

bsdata (1130 x 460 spindles): 2 good and 2 pitting shots and N unlabelled images drawn
from the rest of the data set (its own mix), the suite's split for one seed, copied into
the ``inspect fit`` layout and fitted through the public API on all the machine's cores.
Each fit runs ``--repeats`` times; the table gives every run's total and the fit's own
split of it (load, features, banks, heads), so a busy minute shows as one slow row.

Usage::

    python3 benchmarks/fit_time.py [--unlabelled 100] [--repeats 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import fewshot_suite as suite  # noqa: E402
from benchmarks.common import RESULTS, header, table  # noqa: E402
from defectkit import Inspector, InspectorConfig, load_dataset  # noqa: E402
from defectkit.datasets import unlabelled_files  # noqa: E402

TARGET_S = 30.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--unlabelled", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    folder = suite.materialise("bsdata", Path(tempfile.gettempdir()) / "defectkit-suite")
    if folder is None:
        raise SystemExit(f"bsdata not found; run {suite.PREPARE['bsdata']}")
    shots, pool, _ = suite.split(load_dataset(folder), 2, 2, args.seed, 40, args.unlabelled)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = suite.write_support(shots, Path(tmp) / "shots", pool)
        support, unlabelled = load_dataset(data), unlabelled_files(data)
        for run in range(args.repeats):
            report = Inspector(InspectorConfig(seed=args.seed)).fit(support, unlabelled=unlabelled)
            sec = report.seconds
            rows.append([run + 1, len(unlabelled), round(sec["total"], 1), TARGET_S, round(sec["load"], 1),
                         round(sec["features"], 1), round(sec["banks"], 1), round(sec["heads"], 1),
                         len(report.unlabelled_rejected)])  # fmt: skip
            print(rows[-1], flush=True)
    text = [
        header("Fit time with unlabelled line images (bsdata, 2 + 2 shots)"),
        f"Seed {args.seed}'s split; load average at the end {os.getloadavg()[0]:.1f} (2 shared cores).",
        "",
        table(["run", "unlabelled", "fit s", "target s", "load s", "features s", "banks s", "heads s",
               "judged defects"], rows),  # fmt: skip
    ]
    (RESULTS / "fit_time.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
