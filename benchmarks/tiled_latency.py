"""End-to-end time of real line images through the tiled OpenVINO bundle (issue 15's speed targets).

For each real data set found (bsdata: 1130 x 460 spindles; aitex: 4096 x 256 fabric
scans): fit from 2 labelled shots per class (the user's path: a folder, the public API),
export an OpenVINO fp32 bundle (self-checked), then time ``bundle.inspect`` one image at a
time on held-out images - read from disk, tiles, model, head, regions, caption - and the
model's throughput in megapixels per second (the compiled graph alone on the images' tiles). The timing runs
in a fresh process that never imports PyTorch, as on the line (``inspect serve``): in the
fitting process PyTorch's idle OpenMP threads would compete with the engine's.

Usage::

    python3 benchmarks/tiled_latency.py [--images 20]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, header, table  # noqa: E402
from defectkit.core.images import read_image  # noqa: E402
from defectkit.core.labels import GOOD  # noqa: E402
from defectkit.core.tiling import cut_tiles  # noqa: E402
from defectkit.datasets import load_dataset  # noqa: E402

DATA = Path(os.environ.get("DEFECTKIT_DATA", Path.home() / ".cache" / "defectkit-data"))
TARGETS = {"bsdata": 150.0, "aitex": 300.0}  # ms per image, end to end (issue 15)


def measure(name: str, n_images: int, seed: int = 0) -> list | None:
    folder = DATA / name
    if not folder.is_dir():
        print(f"skip {name}: not in {DATA}", flush=True)
        return None
    samples = load_dataset(folder)
    rng = random.Random(seed)
    by: dict[str, list] = {}
    for s in samples:
        by.setdefault(s.label, []).append(s)
    shots, rest = [], []
    for label in sorted(by):
        pool = sorted(by[label], key=lambda s: s.key)
        rng.shuffle(pool)
        shots += pool[:2]
        rest += pool[2:]
    rng.shuffle(rest)
    test = rest[:n_images]
    from defectkit import Inspector, InspectorConfig
    from defectkit.exporters.export import export_bundle

    inspector = Inspector(InspectorConfig())
    t0 = time.perf_counter()
    report = inspector.fit(shots)
    fit_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = export_bundle(inspector, Path(tmp) / "bundle", target="openvino",
                             check_images=[s.load_image() for s in shots])  # fmt: skip
        out = subprocess.run(
            [sys.executable, __file__, "--time", str(path), *[str(s.path) for s in test]],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
    timed = json.loads(out.strip().splitlines()[-1])
    times = timed["seconds"]
    return [
        name, timed["size"], f"{report.tile_size[0]} x {report.tile_size[1]}", len(test), round(fit_s, 2),
        round(1e3 * float(np.median(times)), 1), round(1e3 * float(np.percentile(times, 90)), 1),
        TARGETS.get(name), round(timed["pixels"] / 1e6 / sum(times), 2), round(timed["model_mp_s"], 2),
    ]  # fmt: skip


def time_bundle(path: str, files: list[str]) -> dict:
    """In a process without PyTorch: each image end to end, then raw throughput."""
    from defectkit.exporters.runtime import load_bundle

    assert "torch" not in sys.modules
    bundle = load_bundle(path)
    bundle.inspect([read_image(files[0])])  # warm-up
    times, pixels = [], 0
    for f in files:
        t = time.perf_counter()
        image = read_image(f)
        bundle.inspect([image], [f])
        times.append(time.perf_counter() - t)
        pixels += image.shape[0] * image.shape[1]
    # The model alone: the compiled graph on the images' tiles, nothing before or after.
    images = [read_image(f) for f in files[:8]]
    tiles = [cut_tiles(image, bundle.predictor.info.tiles)[0] for image in images]
    engine_s = 0.0
    for batch in tiles:
        t = time.perf_counter()
        bundle.engine.run(batch)
        engine_s += time.perf_counter() - t
    mp = sum(i.shape[0] * i.shape[1] for i in images) / 1e6
    return {"seconds": times, "pixels": pixels, "model_mp_s": mp / engine_s,
            "size": f"{images[0].shape[1]} x {images[0].shape[0]}"}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--time", nargs="+", metavar=("BUNDLE", "IMAGE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.time:  # the child process: time one bundle, print JSON
        print(json.dumps(time_bundle(args.time[0], args.time[1:])))
        return
    rows = [r for r in (measure(name, args.images) for name in TARGETS) if r]
    load = os.getloadavg()[0]
    text = [
        header("Tiled OpenVINO bundle: end-to-end time of real line images"),
        f"Load average at the end: {load:.1f} (the 2 cores were shared with other work when this ran).",
        f"Fit: 2 labelled shots per class ({GOOD} and each defect), default configuration.",
        "",
        table(["data", "image", "tile", "images", "fit s", "ms/image median (read..caption)", "p90 ms",
               "target ms", "MP/s end to end", "MP/s model (the graph alone, 8 images)"], rows),  # fmt: skip
    ]
    (RESULTS / "tiled_latency.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
