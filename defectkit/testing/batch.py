"""``inspect batch`` with the daemon's test-double bundle, for tests and benchmarks.

``python -m defectkit.testing.batch BUNDLE SOURCE... --store DB`` is ``inspect batch``
whose workers load :func:`defectkit.testing.daemon.load_fake_bundle` instead of the
runtime, so kill tests can pace a run (``delay_s``) without exporting a model.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: The double's loader, as the workers resolve it.
FAKE_LOADER = "defectkit.testing.daemon:load_fake_bundle"


def write_archive(root: Path, *, n: int = 12, seed: int = 5) -> list[Path]:
    """``n`` synthetic parts (good, scratch, spot) as PNGs in a folder tree."""
    from PIL import Image

    from defectkit.datasets import make_synthetic

    per_class = max(1, n // 3)
    samples = make_synthetic(
        n_good=n - 2 * per_class, defects={"scratch": per_class, "spot": per_class},
        size=(128, 128), seed=seed,
    )  # fmt: skip
    paths = []
    for i, sample in enumerate(samples):
        path = Path(root) / ("deep/er" if i % 2 else "") / f"{sample.key}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sample.load_image()).save(path)
        paths.append(path)
    return paths


def write_gray_archive(root: Path, n: int, *, dark_every: int = 2) -> list[Path]:
    """``n`` distinct small PNGs for the test double: every ``dark_every``-th is dark
    (good), the others bright (defect)."""
    from defectkit.testing.daemon import png_bytes

    paths = []
    for i in range(n):
        path = Path(root) / f"{i // 50:03d}" / f"part{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(30 if i % dark_every == 0 else 220, tag=i))
        paths.append(path)
    return paths


def main(argv: list[str]) -> int:
    from defectkit.cli import build_parser
    from defectkit.cli.batch import cmd_batch
    from defectkit.errors import DefectkitError

    args = build_parser().parse_args(["batch", *argv])
    try:
        return cmd_batch(args, loader=FAKE_LOADER)
    except DefectkitError as exc:
        print(f"inspect: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
