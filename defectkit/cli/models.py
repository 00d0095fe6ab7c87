"""``inspect fit / predict / eval``: model folders and bundles, from labelled data to verdicts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from defectkit.errors import ConfigError, DatasetError

FORMATS = ("folder", "mvtec", "visa", "textile")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="folder", choices=FORMATS,
                   help="dataset layout of DATA (default: folder = good/, <defect>/, masks/<defect>/)")
    p.add_argument("--category", help="MVTec AD / VisA category, e.g. bottle")


def _add_config_args(p: argparse.ArgumentParser) -> None:
    """Flags that map one-to-one onto InspectorConfig fields."""
    from defectkit.inspect.config import InspectorConfig

    d = InspectorConfig()
    g = p.add_argument_group("inspector settings")
    g.add_argument("--backbone", default=d.backbone,
                   help=f"feature backbone (default: {d.backbone}, embedded, works offline); see `inspect backbones`")
    g.add_argument("--weights", help="weights file, folder or tag for the backbone (default: its standard weights)")
    g.add_argument("--layers", nargs="+", help="backbone layers to use (default: the backbone's shallow + mid maps)")
    g.add_argument("--scale", type=float, default=d.scale,
                   help="model pixels per image pixel (default: 1 = native resolution, nothing squashed; "
                   "0.5 for images much larger than their defects: a quarter of the time)")
    g.add_argument("--tile-size", nargs=2, type=int, metavar=("H", "W"),
                   help="tiles the model runs (default: the shots' size as one tile up to a megapixel, else at most "
                   "512 x 512); larger images are cut into overlapping tiles")
    g.add_argument("--roi", nargs=4, type=int, metavar=("X0", "Y0", "X1", "Y1"),
                   help="region of interest in image pixels (default: the whole image); background, "
                   "fixtures and frames outside it are neither learned nor scored")
    g.add_argument("--bank-size", type=int, default=d.bank_size,
                   help=f"memory-bank patches kept after coreset (default: {d.bank_size}); the bank distances are about "
                   "a third of the model's time: 1024 runs a 1130 x 460 image about 25 %% faster, as accurate "
                   "on some seeds and 0.03 AUROC worse on others (benchmarks/results/fewshot_suite.md)")
    g.add_argument("--augmentations", type=int, default=d.augmentations,
                   help=f"augmented copies per good shot in the memory bank (default: {d.augmentations})")
    g.add_argument("--margin-weight", type=float, default=d.margin_weight, metavar="W",
                   help=f"how much the class head counts in the image score: the anomaly score times exp(W x margin), "
                   f"the margin how far the likeliest defect type stands above good (default: {d.margin_weight}); "
                   "0 scores by how unlike the good shots an image is alone, for data whose defect types go "
                   "with something else in the shots (the fabric, a fixture)")
    g.add_argument("--evidence", choices=("auto", "distance", "contrast"), default="auto",
                   help="what makes a patch anomalous: its distance to the good patches, or (with labelled "
                   "defects) its contrast, whether it lies nearer a labelled defect than anything good. auto "
                   "(default): the one under which the left-out defect shots stand furthest above the left-out "
                   "good shots. contrast for parts whose good look varies in ways a few good shots do not show "
                   "(positions, folds, light) while the defects look alike: with 2 to 10 good shots it won "
                   "up to 0.04 AUROC over auto on bsdata and textile, and never lost there; with 50 good shots it lost 0.07-0.13 "
                   "(bsdata, aitex), and on aitex's 12 defect types 0.03 with 10 already; and it can miss a "
                   "defect type nobody labelled (benchmarks/results/fewshot_suite.md, stops 35 and 36)")
    g.add_argument("--seed", type=int, default=d.seed, help="seed for shot picking, augmentation and coreset")
    g.add_argument("--vocabulary", nargs="+", metavar="TERM", default=[],
                   help="caption terms to add to the default vocabulary (quote multi-word terms; "
                   "'attribute: dull' adds an attribute); text-aligned backbones (open_clip) only")
    g.add_argument("--vocabulary-file", metavar="FILE",
                   help="more caption terms, one per line (# comments); same rules as --vocabulary")


def config_from_args(args: argparse.Namespace):
    from defectkit.inspect.config import InspectorConfig

    if args.bank_size < 16:
        raise ConfigError(f"--bank-size must be at least 16, got {args.bank_size}")
    if args.augmentations < 0:
        raise ConfigError(f"--augmentations must be >= 0, got {args.augmentations}")
    if args.tile_size and min(args.tile_size) < 32:
        raise ConfigError(f"--tile-size must be at least 32 x 32, got {args.tile_size}")
    if not (0 <= args.margin_weight <= 10):  # (also refuses nan)
        raise ConfigError(f"--margin-weight must be between 0 and 10, got {args.margin_weight}")
    if not 0.05 <= args.scale <= 4:
        raise ConfigError(f"--scale must be between 0.05 and 4, got {args.scale}")
    if args.roi and (args.roi[2] <= args.roi[0] or args.roi[3] <= args.roi[1] or min(args.roi) < 0):
        raise ConfigError(f"--roi must be X0 Y0 X1 Y1 with X0 < X1 and Y0 < Y1, got {args.roi}")
    return InspectorConfig(
        vocabulary=vocabulary_from_args(args),
        backbone=args.backbone,
        weights=args.weights,
        layers=tuple(args.layers) if args.layers else None,
        scale=args.scale,
        tile_size=tuple(args.tile_size) if args.tile_size else None,
        roi=tuple(args.roi) if args.roi else None,
        bank_size=args.bank_size,
        augmentations=args.augmentations,
        margin_weight=args.margin_weight,
        evidence=None if args.evidence == "auto" else args.evidence,
        seed=args.seed,
    )


def vocabulary_from_args(args: argparse.Namespace) -> tuple[str, ...]:
    """``--vocabulary`` then ``--vocabulary-file`` entries (file form), checked and deduplicated.

    The file is read here, so the saved configuration holds the terms themselves.
    """
    from defectkit.core.caption.vocabulary import load_vocabulary

    entries = list(getattr(args, "vocabulary", None) or [])
    if getattr(args, "vocabulary_file", None):
        entries += list(load_vocabulary(args.vocabulary_file, defaults=False))
    return tuple(load_vocabulary(entries, defaults=False)) if entries else ()


def register(sub) -> None:
    p = sub.add_parser(
        "fit", help="fit an inspector from a few labelled images",
        description="Fit an inspector from labelled shots and save it to a model folder. "
        "Uses every image in DATA unless --shots picks N per class. Unlabelled line images "
        "(DATA/unlabelled/ or --unlabelled) teach what is normal; with no good shots and no "
        "unlabelled images, two or more defect classes give a type-only model (defect sorting, no verdict).",
    )
    p.add_argument("data", metavar="DATA", help="dataset folder")
    p.add_argument("-o", "--output", required=True, metavar="MODEL_DIR", help="model folder to write")
    p.add_argument("--shots", type=int, help="use N images per class, picked reproducibly with --seed")
    p.add_argument("--unlabelled", metavar="DIR", nargs="+",
                   help="folders or files of unlabelled line images, mostly good (default: DATA/unlabelled/ "
                   "when it exists); those that look like defects are kept out; at most 200 are used")
    _add_data_args(p)
    _add_config_args(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser(
        "predict", help="inspect images with a model folder or an exported bundle",
        description="Inspect images. Prints one line per image, or one JSON object per line with --json "
        "(keys: path, score, verdict, label, probabilities, threshold, defects, caption, timings_ms).",
    )
    p.add_argument("model", metavar="MODEL_DIR", help="model folder from `inspect fit` or bundle from `inspect export`")
    p.add_argument("inputs", metavar="IMAGE_OR_DIR", nargs="+", help="image files or folders of images")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.add_argument("--save-overlays", metavar="DIR", help="write heatmap overlays (PNG) into DIR")
    p.add_argument("--threshold", type=float,
                   help="override the image threshold for this run (a lower one takes the pixel threshold with it)")
    p.add_argument("--transductive", action="store_true",
                   help="also score the images against each other (a model folder only; two passes): variation "
                   "most of the batch shares stops counting as a defect; for re-inspecting a batch or archive "
                   "when good shots are few")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "eval", help="measure an inspector on a labelled dataset",
        description="Evaluate on labelled data: image AUROC, pixel AUROC and AUPRO (when masks exist), "
        "accuracy, balanced accuracy, macro-F1, per class. Shots the model was fitted on are left out.",
    )
    p.add_argument("model", metavar="MODEL_DIR")
    p.add_argument("data", metavar="DATA")
    _add_data_args(p)
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.add_argument("--report", metavar="DIR", help="write an HTML report (metrics, ROC, confusion, worst examples)")
    p.set_defaults(func=cmd_eval)


# ---------------------------------------------------------------------- handlers
def cmd_fit(args) -> int:
    from defectkit.datasets import load_dataset
    from defectkit.fewshot.support import SupportSet, pick_shots
    from defectkit.inspect.inspector import Inspector

    config = config_from_args(args)
    samples = load_dataset(args.data, format=args.format, category=args.category)
    if args.shots is not None:
        samples, _ = pick_shots(samples, args.shots, seed=args.seed)
    support = SupportSet.from_samples(samples)
    unlabelled = _unlabelled_paths(args)
    inspector = Inspector(config)
    report = inspector.fit(support, unlabelled=unlabelled, progress=True)
    inspector.save(args.output)
    counts = ", ".join(f"{c}: {n}" for c, n in support.summary()["shots_per_class"].items())
    if report.unlabelled:
        counts += f"; {report.unlabelled} unlabelled, {len(report.unlabelled_rejected)} of them judged defects"
        from defectkit.inspect.fit import judged_words, taught_words

        counts += judged_words(report.unlabelled_judged_by) + taught_words(report.unlabelled_taught_classes)
    if report.unlabelled_skipped:
        counts += f"; {report.unlabelled_skipped} unlabelled images over 5 MP skipped"
    if report.frame:
        from defectkit.core.frame import LEFT_OUT

        counts += f"; {LEFT_OUT.format(report.frame.describe())}: --roi sets the region yourself"
    # Without good shots there is no score to cut: say what the model does instead.
    judged = (f"threshold {report.thresholds.image:.4f}" if inspector.model.has_verdict else
              "type-only: no good shots, so it sorts defects into types and gives no verdict")
    if inspector.model.has_verdict:
        from defectkit.core.labels import GOOD
        from defectkit.inspect.fit import basis_words

        line_used = report.unlabelled_judged_by not in (None, "unused")
        more = "more good shots or unlabelled line images (--unlabelled DIR) set it on more"
        words = basis_words(support.summary()["shots_per_class"].get(GOOD, 0), line_used, more)
        judged += f" (it {words})" if words else ""
        judged += f"; evidence {report.evidence} ({'as --evidence set' if config.evidence else 'chosen on the shots'})"
        look = inspector.model.head.scoring.look
        if look is not None:
            judged += f"; +look: the overall look of {len(look.looks)} good images joins the patch map"
    print(f"fitted {args.output} from {len(support.shots)} shots ({counts}) in {report.seconds['total']:.2f} s; {judged}")
    return 0


def _unlabelled_paths(args) -> list[Path]:
    """--unlabelled files and folders, else DATA/unlabelled/ for the folder layout."""
    from defectkit.core.images import list_image_files
    from defectkit.datasets import unlabelled_files

    if args.unlabelled:
        paths = list_image_files(args.unlabelled)
        if not paths:
            raise DatasetError(f"--unlabelled {' '.join(args.unlabelled)}: no images found")
        return paths
    return unlabelled_files(args.data) if args.format == "folder" else []


def open_model(path: str | Path):
    """A model folder (PyTorch) or an exported bundle (torch-free runtime), by its files."""
    path = Path(path)
    if (path / "manifest.json").is_file():
        from defectkit.exporters.runtime import load_bundle

        return load_bundle(path)
    from defectkit.inspect.inspector import Inspector

    return Inspector.load(path)


def cmd_predict(args) -> int:
    from defectkit.core.images import list_image_files, read_image
    from defectkit.errors import ImageError

    model = open_model(args.model)
    if args.threshold is not None:
        model.set_threshold(image=args.threshold)
    paths = list_image_files(args.inputs)
    out_dir = Path(args.save_overlays) if args.save_overlays else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    readable = []
    for path in paths:
        try:
            image = read_image(path)
        except ImageError as exc:
            failures += 1
            record = {"path": str(path), "error": str(exc)}
            print(json.dumps(record) if args.json else f"{path}\tERROR\t{exc}", flush=True)
            continue
        if args.transductive:
            readable.append(path)
            continue
        _print_result(args, path, image, model.inspect([image], [str(path)])[0], out_dir)
    if args.transductive:
        for path, result in zip(readable, _transductive(model, readable), strict=True):
            _print_result(args, path, read_image(path) if out_dir else None, result, out_dir)
    if failures:
        print(f"inspect: {failures} of {len(paths)} images could not be read", file=sys.stderr)
        return 2
    return 0


def _transductive(model, paths: list[Path]) -> list:
    from tqdm.auto import tqdm

    from defectkit.core.images import read_image
    from defectkit.inspect.inspector import Inspector
    from defectkit.inspect.transductive import inspect_transductive

    if not isinstance(model, Inspector):
        raise ConfigError("--transductive needs a model folder from `inspect fit` (it compares patch features), not a bundle")
    bar = tqdm(total=2 * len(paths), desc="transductive (2 passes)", unit="img", leave=False)
    try:
        return inspect_transductive(
            model, lambda i: read_image(paths[i]), len(paths), [str(p) for p in paths], progress=bar.update
        )
    finally:
        bar.close()


def _print_result(args, path: Path, image, result, out_dir: Path | None) -> None:
    from PIL import Image

    from defectkit.core.overlay import overlay

    if out_dir:
        pic = overlay(image, result.anomaly_map, threshold=result.threshold, boxes=result.boxes)
        Image.fromarray(pic).save(out_dir / f"{path.stem}_overlay.png")
    if args.json:
        print(json.dumps(result.to_dict()), flush=True)
    else:
        # A type-only model has neither verdict nor score: "-" keeps the columns.
        verdict = result.verdict or "-"
        score = "-" if result.mode == "type_only" else f"{result.score:.4f}"
        print(f"{path}\t{verdict}\t{result.label}\t{score}", flush=True)


def _without_support(samples, model) -> list:
    used = set(getattr(model, "support_summary", {}).get("files", []))
    return [s for s in samples if s.key not in used]


def cmd_eval(args) -> int:
    from defectkit.datasets import load_dataset
    from defectkit.inspect.evaluate import evaluate
    from defectkit.inspect.metrics import format_metrics
    from defectkit.inspect.report import write_report

    model = open_model(args.model)
    samples = _without_support(load_dataset(args.data, format=args.format, category=args.category), model)
    if not samples:
        raise DatasetError(f"{args.data}: no images left to evaluate once the fitted shots are removed")
    evaluation = evaluate(model, samples, progress=True, keep_maps=bool(args.report))
    if args.report:
        write_report(evaluation, args.report)
    if args.json:
        print(json.dumps({k: v for k, v in evaluation.metrics.items() if k != "confusion"}))
    else:
        print(format_metrics(evaluation.metrics))
        if args.report:
            print(f"report: {Path(args.report) / 'index.html'}")
    return 0
