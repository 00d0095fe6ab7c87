"""Few-shot accuracy across data sets, through the path a user takes, beside the peers.

For every data set, seed and shot setting: the shots are copied into a fresh folder in
the layout ``inspect fit`` reads (``good/``, ``<defect>/``, ``masks/<defect>/``), loaded
with the public ``load_dataset``, fitted with the public ``Inspector``, and the rest of
the data set is inspected with ``Inspector.inspect`` - no loader that knows the data.
In the same run, on the same shots: anomalib's PatchCore (the embedded EfficientNet-Lite0
weights, the same good shots, 224 x 224 as anomalib resizes by default) and a 1-NN on
global-pooled Lite0 features (the deepest map, L2-normalised; anomaly score = distance
to the nearest good shot, class = the nearest shot's).

Data sets: ``textile_shipped`` (the packaged textile benchmark copied as shipped, its
1-px frame kept), ``textile_cropped`` (the frame cropped before copying), ``synthetic``
(made here), and the real sets ``bsdata``, ``aitex``, ``xsdd`` from ``$DEFECTKIT_DATA``
(default ``~/.cache/defectkit-data``; prepared with ``../shared/datasets/prepare_*.sh``;
a missing one is skipped with the command that makes it).

Measures per run: image AUROC; pixel AUROC and AUPRO where masks exist (on maps and
masks subsampled 4x per side); binary accuracy at the fitted threshold and at the best
threshold for this test set (the gap is what calibration loses); class accuracy (good
or the defect type; for type-only data sets, the type); fit seconds; milliseconds per
image and megapixels per second of ``inspect`` (tiling, model, head, regions, caption).

Usage::

    python3 benchmarks/fewshot_suite.py                      # everything, seeds 2 3 4
    python3 benchmarks/fewshot_suite.py --datasets bsdata --seeds 0 1 --max-test 200 \\
        --config bank_size=8192 --tag ablation-bank
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import fields
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, header, table  # noqa: E402
from defectkit import Inspector, InspectorConfig, load_dataset  # noqa: E402
from defectkit.core.labels import GOOD  # noqa: E402
from defectkit.datasets import unlabelled_files  # noqa: E402
from defectkit.inspect import metrics  # noqa: E402

DATA = Path(os.environ.get("DEFECTKIT_DATA", Path.home() / ".cache" / "defectkit-data"))
REAL = ("bsdata", "aitex", "xsdd")
ALL = ("textile_shipped", "textile_cropped", "synthetic", *REAL)
PREPARE = {name: f"../shared/datasets/prepare_{name}.sh GIT_DIR (see ../shared/datasets/README.md)" for name in REAL}
#: (labelled shots per defect class, good shots): the labelled sweep at good = labelled,
#: then more good shots at 2 labelled per class.
SETTINGS = ((1, 1), (2, 2), (5, 5), (2, 10), (2, 50))


# ------------------------------------------------------------------------ data
def materialise(name: str, cache: Path) -> Path | None:
    """The data set as a folder in the user's layout, or None when it is not here."""
    if name in REAL:
        folder = DATA / name
        return folder if folder.is_dir() else None
    folder = cache / name
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    if name.startswith("textile"):
        _textile_folder(folder, crop=name.endswith("cropped"))
    elif name == "synthetic":
        from defectkit.datasets import make_synthetic, write_folder

        samples = make_synthetic(
            n_good=80, defects={"scratch": 20, "hole": 20, "stain": 20}, size=(256, 320), seed=7
        )
        write_folder(samples, folder)
    (folder / ".complete").touch()
    return folder


def _textile_folder(folder: Path, *, crop: bool) -> None:
    """The packaged textile images as a user would copy them: nominal -> good/."""
    from PIL import Image

    from defectkit.datasets.textile import _package_dirs

    names = {"nominal": GOOD, "local": "local", "global": "global"}
    for group, src in _package_dirs().items():
        dst = folder / names[group]
        dst.mkdir(parents=True, exist_ok=True)
        for f in sorted(src.iterdir()):
            if crop:  # the 1-px frame on the bottom and right edges, cut before copying
                Image.open(f).crop((0, 0, 249, 249)).save(dst / (f.stem + ".png"))
            else:
                shutil.copy(f, dst / f.name)


def split(samples, n_defect: int, n_good: int, seed: int, max_test: int | None, n_unlabelled: int = 0,
          unlabelled_from: str = "mix"):
    """Shots (n per defect class, n_good good), ``n_unlabelled`` unlabelled images (a
    draw from the rest: the data set's own mix of good and defects, or its good images
    only when ``unlabelled_from`` is ``"good"``) and the test set (what is left; a
    stratified sample of at most ``max_test``), reproducibly from ``seed``.
    Returns (shots, unlabelled, test)."""
    rng = random.Random(seed)
    by = defaultdict(list)
    for s in sorted(samples, key=lambda s: s.key):
        by[s.label].append(s)
    shots, test = [], []
    for label in sorted(by):
        pool = by[label][:]
        rng.shuffle(pool)
        k = n_good if label == GOOD else n_defect
        k = min(k, len(pool) - 1)
        shots += pool[:k]
        test += pool[k:]
    rng.shuffle(test)  # the stratified sample below takes the first of each class: a random draw
    if unlabelled_from == "good":
        goods = [s for s in test if s.label == GOOD]
        unlabelled = goods[:n_unlabelled]
        test = [s for s in test if s not in unlabelled]
    else:
        unlabelled, test = test[:n_unlabelled], test[n_unlabelled:]
    if max_test and len(test) > max_test:
        frac = max_test / len(test)
        by_t = defaultdict(list)
        for s in test:
            by_t[s.label].append(s)
        test = [s for label in sorted(by_t) for s in by_t[label][: max(1, round(len(by_t[label]) * frac))]]
    return shots, unlabelled, test


def unseen_types(shots, test, seed: int):
    """Shots of every other defect type only (the types sorted; which half alternates with
    the seed) and the test set's good images and the types left out: how the inspector
    does on defects nobody labelled, as a line meets them. (shots, test, labelled types)."""
    types = sorted({s.label for s in [*shots, *test]} - {GOOD})
    labelled = set(types[seed % 2 :: 2])
    shots = [s for s in shots if s.label == GOOD or s.label in labelled]
    test = [s for s in test if s.label == GOOD or s.label not in labelled]
    return shots, test, sorted(labelled)


def write_support(shots, folder: Path, unlabelled=()) -> Path:
    """The shots in the folder layout (images and masks copied; the user's path), the
    unlabelled images in ``unlabelled/`` (their labels and masks left behind)."""
    folder.mkdir(parents=True, exist_ok=True)
    if unlabelled:
        (folder / "unlabelled").mkdir()
        for i, s in enumerate(unlabelled):
            shutil.copy(s.path, folder / "unlabelled" / f"{i:05d}{Path(s.path).suffix}")
    for s in shots:
        (folder / s.label).mkdir(parents=True, exist_ok=True)
        name = Path(s.path).name
        shutil.copy(s.path, folder / s.label / name)
        if s.mask_path is not None:
            mdir = folder / "masks" / s.label
            mdir.mkdir(parents=True, exist_ok=True)
            shutil.copy(s.mask_path, mdir / (Path(name).stem + Path(s.mask_path).suffix))
    return folder


# ------------------------------------------------------------------------ ours
def run_ours(shots, test, config: InspectorConfig, unlabelled=()) -> dict:
    with tempfile.TemporaryDirectory(prefix="dk-suite-") as tmp:
        folder = write_support(shots, Path(tmp) / "shots", unlabelled)
        support = load_dataset(folder)
        inspector = Inspector(config)
        t0 = time.perf_counter()
        report = inspector.fit(support, unlabelled=unlabelled_files(folder))
        fit_s = time.perf_counter() - t0
    truth = [s.label for s in test]
    scores, labels, maps, masks, pixels, seconds = [], [], [], [], 0, 0.0
    for s in test:
        image = s.load_image()
        t0 = time.perf_counter()
        (result,) = inspector.inspect([image])
        seconds += time.perf_counter() - t0
        pixels += image.shape[0] * image.shape[1]
        scores.append(result.score)
        labels.append(result.label)
        mask = s.load_mask()
        if mask is not None or s.label == GOOD:
            maps.append(result.anomaly_map[::4, ::4])
            masks.append(np.zeros(result.anomaly_map.shape, bool)[::4, ::4] if mask is None else mask[::4, ::4])
    out = _anomaly_measures(truth, scores, inspector.thresholds.image, has_verdict=inspector.model.has_verdict)
    out["class_acc"] = float(np.mean([a == b for a, b in zip(truth, labels, strict=True)]))
    if any(m.any() for m in masks):
        out["pixel_auroc"] = metrics.pixel_auroc(masks, maps)
        out["aupro"] = metrics.aupro(masks, maps)
    out |= {
        "fit_s": fit_s, "ms_per_image": 1e3 * seconds / len(test), "mp_per_s": pixels / 1e6 / seconds,
        "evidence": report.evidence, "tile": list(report.tile_size or ()),
        "unlabelled_rejected": len(report.unlabelled_rejected),
        "frame": report.frame.describe() if report.frame else None,
    }  # fmt: skip
    return out


def _anomaly_measures(truth, scores, threshold, *, has_verdict: bool) -> dict:
    if not has_verdict or GOOD not in truth:
        return {}
    y = np.array([t != GOOD for t in truth])
    s = np.asarray(scores, dtype=np.float64)
    return {
        "auroc": metrics.image_auroc(truth, s),
        "binary_acc": float(np.mean((s >= threshold) == y)),
        "binary_acc_best": best_accuracy(y, s),
    }


def best_accuracy(y: np.ndarray, s: np.ndarray) -> float:
    """Binary accuracy at the best threshold for this test set (an oracle)."""
    order = np.argsort(s, kind="stable")
    ys = y[order]
    below_good = np.concatenate([[0], np.cumsum(~ys)])  # goods under each cut
    above_bad = ys.sum() - np.concatenate([[0], np.cumsum(ys)])
    return float(((below_good + above_bad) / len(y)).max())


# ------------------------------------------------------------------------ peers
class GlobalFeatures:
    """Global-pooled deepest Lite0 map, L2-normalised (the 1-NN baseline's features)."""

    def __init__(self) -> None:
        import torch

        from defectkit.inspect.backbones import create_backbone

        self.torch = torch
        self.backbone = create_backbone("efficientnet_lite0", layers=("s32",))
        pre = self.backbone.preprocessing
        self.mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(pre.std).view(1, 3, 1, 1)
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, sample) -> np.ndarray:
        if sample.key not in self.cache:
            from defectkit.core.images import preprocess

            image = sample.load_image()
            x = self.torch.from_numpy(preprocess([image], image.shape[:2]))
            with self.torch.inference_mode():
                f = self.backbone((x - self.mean) / self.std)["s32"].mean(dim=(2, 3))[0].numpy()
            self.cache[sample.key] = f / max(np.linalg.norm(f), 1e-12)
        return self.cache[sample.key]


def run_nn(shots, test, features: GlobalFeatures) -> dict:
    if not shots:
        return {}
    X = np.stack([features(s) for s in shots])
    labels = [s.label for s in shots]
    T = np.stack([features(s) for s in test])
    d = np.sqrt(np.maximum(((T[:, None] - X[None]) ** 2).sum(-1), 0))
    truth = [s.label for s in test]
    out = {"class_acc": float(np.mean([labels[i] == t for i, t in zip(d.argmin(1), truth, strict=True)]))}
    goods = [i for i, lab in enumerate(labels) if lab == GOOD]
    if goods and GOOD in truth:
        out["auroc"] = metrics.image_auroc(truth, d[:, goods].min(1))
    return out


def run_patchcore(shots, test) -> dict:
    from benchmarks.patchcore import build_patchcore, patchcore_predict

    goods = [s.load_image() for s in shots if s.label == GOOD]
    truth = [s.label for s in test]
    if not goods or GOOD not in truth:
        return {}
    model, _ = build_patchcore(goods)
    scores, _ = patchcore_predict(model, [s.load_image() for s in test])
    return {"auroc": metrics.image_auroc(truth, scores)}


# ------------------------------------------------------------------------ driver
def parse_config(pairs: list[str]) -> InspectorConfig:
    kinds = {f.name: f.type for f in fields(InspectorConfig)}
    values = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        if key not in kinds:
            raise SystemExit(f"--config: unknown InspectorConfig field {key!r}")
        values[key] = json.loads(raw) if raw[:1] in "[{0123456789-tfn" else raw
        if isinstance(values[key], list):
            values[key] = tuple(values[key])
    return InspectorConfig(**values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=list(ALL), choices=ALL)
    ap.add_argument("--seeds", nargs="+", type=int, default=[2, 3, 4],
                    help="seeds to report (0 and 1 were used for tuning)")
    ap.add_argument("--settings", nargs="+", default=[f"{a}x{b}" for a, b in SETTINGS],
                    help="LABELLEDxGOOD shots per class, e.g. 2x2 2x10")
    ap.add_argument("--unlabelled", nargs="+", type=int, default=[0], metavar="N",
                    help="unlabelled images drawn from the rest of the data set (its own mix), "
                    "one run per count; 0 = none. Setting 0x0 = no labelled shots at all")
    ap.add_argument("--unlabelled-from", choices=["mix", "good"], default="mix",
                    help="draw the unlabelled images from the data set's own mix (default) or from "
                    "its good images only (the issue's aitex setting: 'the remaining good rolls')")
    ap.add_argument("--max-test", type=int, help="a stratified sample of at most this many test images")
    ap.add_argument("--unseen-types", action="store_true",
                    help="label every other defect type only and test on the good images and the types "
                    "left out (defects nobody labelled; class accuracy then counts only the good images right)")
    ap.add_argument("--config", nargs="*", default=[], metavar="FIELD=VALUE",
                    help="InspectorConfig overrides for our method (ablations)")
    ap.add_argument("--no-peers", action="store_true", help="skip PatchCore and the 1-NN")
    ap.add_argument("--patchcore-max-good", type=int, metavar="N",
                    help="run PatchCore only on settings with at most N good shots (the 1-NN runs on "
                    "all): anomalib's coreset on 10 good shots of a 2-core machine took ~28 minutes "
                    "per seed")
    ap.add_argument("--tag", default="", help="suffix of the results files")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "defectkit-suite"),
                    help="where made data sets (textile, synthetic) are kept between runs")
    args = ap.parse_args()
    config = parse_config(args.config)
    settings = [tuple(int(v) for v in s.split("x")) for s in args.settings]
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    rows, raw, skipped = [], [], []
    features = None if args.no_peers else GlobalFeatures()
    for name in args.datasets:
        folder = materialise(name, cache)
        if folder is None:
            skipped.append(f"{name}: not found in {DATA}; run {PREPARE[name]}")
            print("skip", skipped[-1], flush=True)
            continue
        samples = load_dataset(folder)
        has_good = any(s.label == GOOD for s in samples)
        pool_size = max(args.unlabelled)
        for n_def, n_good in settings:
            if not has_good and n_good != n_def:
                continue
            per_count = defaultdict(list)
            for seed in args.seeds:
                # One draw per seed: the same shots, unlabelled pool and test set for every
                # count of unlabelled images (the first N of the pool), so the gain is paired.
                shots, pool, test = split(samples, n_def, n_good, seed, args.max_test, pool_size, args.unlabelled_from)
                labelled = None
                if args.unseen_types:
                    shots, test, labelled = unseen_types(shots, test, seed)
                if n_good > len([s for s in samples if s.label == GOOD]) - 1 and has_good:
                    break
                peers = {}
                if features is not None and shots:
                    peers = {"nn": run_nn(shots, test, features)}
                    if args.patchcore_max_good is None or n_good <= args.patchcore_max_good:
                        peers["patchcore"] = run_patchcore(shots, test)
                for n_unl in args.unlabelled:
                    if not shots and not n_unl:
                        continue
                    entry = {"dataset": name, "labelled": n_def, "good": n_good, "unlabelled": n_unl,
                             "seed": seed, "test": len(test)}  # fmt: skip
                    if labelled is not None:
                        entry["labelled_types"] = labelled
                    entry["ours"] = run_ours(shots, test, config, pool[:n_unl])
                    entry |= peers
                    print(json.dumps(entry), flush=True)
                    per_count[n_unl].append(entry)
                    raw.append(entry)
            rows += [_summary_row(entries) for _, entries in sorted(per_count.items())]
    _write(args, config, rows, raw, skipped)


COLUMNS = [
    "data", "shots (defect x good)", "unlabelled", "seeds", "test", "AUROC", "PatchCore AUROC", "1-NN AUROC",
    "binary acc (fitted thr)", "binary acc (best thr)", "gap", "class acc", "1-NN class acc",
    "pixel AUROC", "AUPRO", "fit s", "ms/image", "MP/s",
]  # fmt: skip


def _mean(entries, *path):
    vals = []
    for e in entries:
        v = e
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        if isinstance(v, (int, float)) and v == v:
            vals.append(float(v))
    return float(np.mean(vals)) if vals else None


def _summary_row(entries) -> list:
    e0 = entries[0]
    acc, best = _mean(entries, "ours", "binary_acc"), _mean(entries, "ours", "binary_acc_best")
    return [
        e0["dataset"], f"{e0['labelled']} x {e0['good']}", e0.get("unlabelled", 0), len(entries), e0["test"],
        _mean(entries, "ours", "auroc"), _mean(entries, "patchcore", "auroc"), _mean(entries, "nn", "auroc"),
        acc, best, None if acc is None else best - acc, _mean(entries, "ours", "class_acc"),
        _mean(entries, "nn", "class_acc"), _mean(entries, "ours", "pixel_auroc"), _mean(entries, "ours", "aupro"),
        _mean(entries, "ours", "fit_s"), _mean(entries, "ours", "ms_per_image"), _mean(entries, "ours", "mp_per_s"),
    ]  # fmt: skip


UNLABELLED_FROM = {"mix": "a draw from the data set's own mix", "good": "a draw from its good images only"}


def _write(args, config, rows, raw, skipped) -> None:
    RESULTS.mkdir(exist_ok=True)
    tag = f"_{args.tag}" if args.tag else ""
    changed = {f.name: getattr(config, f.name) for f in fields(config) if getattr(config, f.name) != f.default}
    text = [
        header("Few-shot suite: ours beside PatchCore and a 1-NN, through the user's path"),
        f"Seeds: {args.seeds}. Test sets: {'all images not used as shots' if not args.max_test else f'stratified, at most {args.max_test}'}. "
        f"Our configuration: {'defaults' if not changed else changed}. "
        f"Unlabelled images: {UNLABELLED_FROM[args.unlabelled_from]}.",
        *(["Defect types: every other one labelled (which half alternates with the seed); the test set is the "
            "good images and the types nobody labelled."] if args.unseen_types else []),
        "Means over seeds. Accuracies at the fitted threshold and at the best threshold for the test set "
        "(the gap is what calibration loses). Class accuracy: good or the defect type (xsdd: the type).",
        "",
        table(COLUMNS, rows),
    ]
    if skipped:
        text += ["", "Skipped: " + "; ".join(skipped)]
    (RESULTS / f"fewshot_suite{tag}.md").write_text("\n".join(text) + "\n")
    (RESULTS / f"fewshot_suite{tag}.json").write_text(json.dumps(raw, indent=1))
    print("\n".join(text))


if __name__ == "__main__":
    main()
