"""Are captions true? Synthetic defects of known type, place and size, checked statement by statement.

For every (texture, seed): make synthetic images (every defect kind), take 2 labelled
shots per class (good included) with an engineer-style note on each defect shot, fit
the default Inspector (embedded efficientnet_lite0, real weights), inspect held-out
images, caption them with :func:`defectkit.core.caption.describe` and check every
checkable statement of each caption against the ground truth the generator recorded:

- detected: a defective image must not be captioned "No defect found" (and a good one must);
- type: the stated type (hedged or not) equals the class prediction (the issue's check:
  the caption agrees with the classifier). ``type_truth``, the stricter check, asks it
  to equal the true type; it is reported as its own row and is not part of *all true*;
- place: the stated 3 x 3 cell(s) contain the true defect centre;
- size: for regions stated as elongated, "about N px long" (measured on the defect's
  pixels where its edge is sharp and they lie inside the region) must be within +-25 %
  of the true major-axis length (measured the same way on the true mask), "at least N px
  long" (measured on the anomaly map's region, or on pixels that reach its edge) must
  bound it; ``size_strict`` asks the measured length to be
  within +-25 % either way. Compact regions state
  their area as worded (:mod:`defectkit.core.caption.size`): "about N px" must be
  within +-25 % of the true area, "L to H px" must hold it, "up to N px" must bound it.
  ``size_strict`` asks one number (the estimate, a range's geometric middle, or the
  upper bound) to be within +-25 %, the brief's check, and is reported beside it;
- shape: "elongated" for true elongation >= 3, "compact" below 1.5 (either in between);
- orientation: when stated, within 30 degrees of the truth (true elongation >= 1.5);
- further regions (those stated: peak at or above the image threshold): each touches
  the true defect;
- note: the cited labelled example is of the stated type.

A caption counts as *all true* when every statement it makes holds (the issue's check);
*all true, type = ground truth* also asks ``type_truth``. Captions come from
``Inspector.inspect``, the path every user takes: the graph returns the nearest-shot
similarities with the score, and ``defectkit.core.caption.describe`` writes the caption.

    python benchmarks/caption_accuracy.py            # writes benchmarks/results/caption_accuracy.md
    python benchmarks/caption_accuracy.py --seeds 0 --textures fabric --test-per-kind 4   # quick look
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "benchmarks" / "results" / "caption_accuracy.md"
KINDS = ("scratch", "spot", "crack", "hole", "stain", "missing")
NOTES = {
    "scratch": ("hairline scratch from the gripper", "scratch from the conveyor guide"),
    "spot": ("oil droplet", "dust speck under the coating"),
    "crack": ("stress crack near the clamp", "branched crack"),
    "hole": ("punched hole", "burn-through"),
    "stain": ("coffee-coloured stain", "rust stain from the rack"),
    "missing": ("missing patch of coating", "material torn out"),
}
ORIENTATION_ANGLE = {"horizontal": 0.0, "rising": 45.0, "vertical": 90.0, "falling": 135.0}
SIZE_TOLERANCE = 0.25
ANGLE_TOLERANCE = 30.0
STATEMENTS = ("detected", "type", "place", "size", "shape", "orientation", "further", "note")
#: Checked and reported, but not part of *all true* (the issue's check): see the docstring.
STRICTER = ("type_truth", "size_strict")


def make_split(seed: int, texture: str, size: int, test_per_kind: int):
    """(support with notes, held-out samples): 2 shots per class, then the test images."""
    from defectkit.datasets import make_synthetic

    samples = make_synthetic(
        n_good=2 + test_per_kind,
        defects={k: 2 + test_per_kind for k in KINDS},
        size=(size, size),
        seed=seed,
        texture=texture,
    )
    support, test, seen = [], [], Counter()
    for s in samples:
        if seen[s.label] < 2:
            note = NOTES[s.label][seen[s.label]] if s.label in NOTES else None
            support.append(replace(s, note=note))
            seen[s.label] += 1
        else:
            test.append(s)
    return support, test


def caption_all(inspector, images):
    """Images -> [(result, records as JSON dicts, sentence)]: ``Inspector.inspect``'s own captions."""
    return [(r, [d.to_dict() for d in r.defects], r.caption) for r in inspector.inspect(images)]


def check(sample, result, records, size_ratios, shot_labels) -> dict[str, bool | None]:
    """Statement -> True / False, or None when the caption does not make it."""
    from defectkit.core.caption.geometry import cells_of, major_axis_length
    from defectkit.core.geometry import angle_difference

    found: dict[str, bool | None] = dict.fromkeys(STATEMENTS + STRICTER)
    if sample.label == "good":
        found["detected"] = not result.is_defective
        return found
    found["detected"] = result.is_defective
    if not records:
        return found
    meta, first = sample.meta, records[0]
    found["type"] = first["type"] == result.label  # the class prediction (or "anomaly")
    found["type_truth"] = first["type"] == sample.label
    if first.get("note"):  # the cited shot's class is the stated one
        found["note"] = shot_labels[first["note"]["shot"]] == first["type"]
    if not first["localised"]:
        return found
    h, w = sample.mask_array.shape
    (true_cell,) = cells_of(*meta["centre"], w, h, margin=0.0)
    found["place"] = true_cell in first["position"]
    elongated = first["shape"] != "compact"
    if elongated:
        truth, stated = major_axis_length(sample.mask_array), first["length_px"]
        # As worded: "about N px long" within the tolerance, "at least N px long" bounds it.
        if first.get("length_estimate", "about") == "about":
            found["size"] = abs(stated / truth - 1.0) <= SIZE_TOLERANCE
        else:
            found["size"] = truth >= first["length_low_px"]
    else:
        truth, how = meta["area_px"], first["area_estimate"]
        low, high = first["area_low_px"], first["area_high_px"]
        # As worded: "about N" within the tolerance, "L to H" holds it, "up to H" bounds it.
        if how == "about":
            found["size"] = abs(high / truth - 1.0) <= SIZE_TOLERANCE
        elif how == "between":
            found["size"] = low <= truth <= high
        else:
            found["size"] = high >= truth
        # One number for the strict check: the estimate, a range's geometric middle,
        # or the upper bound.
        stated = high if how != "between" else (low * high) ** 0.5
    ratio = stated / truth
    size_ratios[(sample.label, "length" if elongated else "area")].append(ratio)
    found["size_strict"] = abs(ratio - 1.0) <= SIZE_TOLERANCE
    if meta["elongation"] >= 3.0:
        found["shape"] = elongated
    elif meta["elongation"] < 1.5:
        found["shape"] = not elongated
    if first["orientation"] is not None and meta["elongation"] >= 1.5:
        word = angle_difference(ORIENTATION_ANGLE[first["orientation"]], meta["orientation_deg"])
        number = angle_difference(first["orientation_deg"], meta["orientation_deg"])
        found["orientation"] = max(word, number) <= ANGLE_TOLERANCE
    further = [r for r in records[1:] if r["stated"]]
    if further:
        found["further"] = all(_touches(r, sample.mask_array) for r in further)
    return found


def _touches(record, truth) -> bool:
    x0, y0, x1, y1 = record["box"]
    return bool(truth[y0:y1, x0:x1].any())


def run_one(seed: int, texture: str, args, size_ratios) -> list[dict]:
    from defectkit.inspect.inspector import Inspector, InspectorConfig

    support, test = make_split(seed, texture, args.size, args.test_per_kind)
    inspector = Inspector(InspectorConfig(seed=seed))
    t0 = time.perf_counter()
    inspector.fit(support)
    fit_s = time.perf_counter() - t0
    if args.pixel_threshold is not None:
        inspector.set_threshold(pixel=args.pixel_threshold)
    t0 = time.perf_counter()
    captions = caption_all(inspector, [s.load_image() for s in test])
    per_image_ms = (time.perf_counter() - t0) * 1e3 / len(test)
    shot_labels = inspector.caption_context.shot_labels
    rows = []
    for sample, (result, records, sentence) in zip(test, captions, strict=True):
        found = check(sample, result, records, size_ratios, shot_labels)
        made = [v for k, v in found.items() if k in STATEMENTS and v is not None]
        strict = {**found, "size": found.get("size_strict")}
        truth = {**found, "type": found.get("type_truth")}
        rows.append(
            {
                "seed": seed, "texture": texture, "id": sample.key, "kind": sample.label,
                "found": found, "all_true": all(made),
                "all_true_strict": all(v for k, v in strict.items() if k in STATEMENTS and v is not None),
                "all_true_truth": all(v for k, v in truth.items() if k in STATEMENTS and v is not None),
                "geometry_true": all(
                    v for k, v in found.items()
                    if k in STATEMENTS and k not in ("type", "note") and v is not None
                ),
                "area_estimate": records[0].get("area_estimate") if records else None,
                "length_estimate": records[0].get("length_estimate") if records else None,
                "confidence": records[0]["confidence"] if records else None,
                "uncertain": records[0]["uncertain"] if records else None,
                "regions": len(records), "sentence": sentence,
                "records": [{k: v for k, v in r.items() if k != "sentence"} for r in records],
                "truth": {k: v for k, v in sample.meta.items() if k != "params"},
                "fit_s": fit_s, "ms_per_image": per_image_ms,
            }
        )  # fmt: skip
    return rows


def _pct(values) -> str:
    values = list(values)
    return (
        f"{100.0 * sum(values) / len(values):.1f} % ({sum(values)}/{len(values)})"
        if values
        else "n/a"
    )


def _revision() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"


def write_markdown(rows, size_ratios, args, seconds: float, path: Path) -> str:
    defects = [r for r in rows if r["kind"] != "good"]
    goods = [r for r in rows if r["kind"] == "good"]
    from benchmarks.common import header

    lines = [
        header("Caption accuracy on synthetic defects"),
        f"defectkit at {_revision()}, {seconds:.0f} s. Seeds {list(args.seeds)}, textures {list(args.textures)}, "
        f"{args.size} x {args.size} px, 2 shots per class (good included) with notes, "
        f"{args.test_per_kind} held-out images per kind and {args.test_per_kind} good per run; "
        "default `InspectorConfig` (embedded efficientnet_lite0, real weights); pixel threshold "
        f"{'as calibrated' if args.pixel_threshold is None else args.pixel_threshold}.",
        "",
        "A caption is *all true* when every statement it makes holds (see the module docstring "
        "for the checks). The issue's check asks the stated type to match the *class prediction* "
        "(the caption agrees with the classifier); the stricter rows ask it to match the *true* "
        "kind, which the caption cannot do better than the classifier. *Geometry true* leaves "
        "out the type (and the note, which follows the type). Seeds 0-2 were used to choose "
        "`caption.ELONGATED`, `caption.PIXEL_ELONGATED`, `caption.REGION_LENGTH_OVERSHOOT`, "
        "`caption.FURTHER_MIN_RATIO`, `caption.CORE_MIN_PX`, the region descriptor "
        "(`prototypes.region_descriptor`, `inspector.MASK_MARGIN`) and the area estimate's "
        "settings (`caption_size`), so the default run uses seeds 3-5.",
        "",
        "| | share |",
        "|---|---|",
        f"| **defect captions all true (issue's check: type = class prediction; target ≥ 95 %)** | **{_pct(r['all_true'] for r in defects)}** |",
        f"| defect captions all true, type = ground truth (stricter) | {_pct(r['all_true_truth'] for r in defects)} |",
        f"| defect captions all true, compact areas as one number within ±25 % (stricter) | {_pct(r['all_true_strict'] for r in defects)} |",
        f"| defect captions, geometry all true | {_pct(r['geometry_true'] for r in defects)} |",
        f"| good parts captioned 'No defect found' | {_pct(r['found']['detected'] for r in goods)} |",
        f"| all captions all true, good parts included (type = class prediction) | {_pct(r['all_true'] for r in rows)} |",
        f"| all captions all true, good parts included (type = ground truth) | {_pct(r['all_true_truth'] for r in rows)} |",
        "",
        "## Per statement (defective images; share of the captions that make it)",
        "",
        "| statement | true |",
        "|---|---|",
    ]
    for key in ("detected", "type", "type_truth", "place", "size", "size_strict", *STATEMENTS[4:]):
        lines.append(
            f"| {key} | {_pct(r['found'][key] for r in defects if r['found'].get(key) is not None)} |"
        )
    lines += [
        "",
        "## Per kind",
        "",
        "| kind | all true | all true, type = truth | geometry | type = truth | place | size | shape | orientation |",
        "|---" * 9 + "|",
    ]
    by_kind = defaultdict(list)
    for r in defects:
        by_kind[r["kind"]].append(r)
    for kind, rs in by_kind.items():
        cells = [_pct(r[k] for r in rs) for k in ("all_true", "all_true_truth", "geometry_true")]
        for key in ("type_truth", "place", "size", "shape", "orientation"):
            cells.append(_pct(r["found"][key] for r in rs if r["found"][key] is not None))
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines += ["", "## Stated size / true size (what limits the size statement)", "",
              "| kind | measure | n | p10 | median | p90 | within ±25 % |", "|---" * 7 + "|"]  # fmt: skip
    for (kind, measure), ratios in sorted(size_ratios.items()):
        a = np.asarray(ratios)
        p10, p50, p90 = np.percentile(a, [10, 50, 90])
        ok = np.abs(a - 1) <= SIZE_TOLERANCE
        lines.append(
            f"| {kind} | {measure} | {a.size} | {p10:.2f} | {p50:.2f} | {p90:.2f} | {_pct(ok.tolist())} |"
        )
    lines += ["", "## How compact areas were worded", "",
              "| wording | captions | true as worded | within ±25 % (one number) |", "|---" * 4 + "|"]  # fmt: skip
    for how, words in (("about", "about N px"), ("between", "L to H px"), ("up_to", "up to N px")):
        rs = [r for r in defects if r["area_estimate"] == how and r["found"]["size"] is not None]
        lines.append(
            f"| {words} | {len(rs)} | {_pct(r['found']['size'] for r in rs)} | "
            f"{_pct(r['found']['size_strict'] for r in rs)} |"
        )
    lines += ["", "## How elongated lengths were worded", "",
              "| wording | captions | true as worded | within ±25 % (the measured length) |", "|---" * 4 + "|"]  # fmt: skip
    for how, words in (("about", "about N px long (the defect's pixels: sharp edge, inside the region)"),
                       ("at_least", "at least N px long (the map's region, or pixels reaching its edge)")):  # fmt: skip
        rs = [r for r in defects if r["length_estimate"] == how and r["found"]["size"] is not None]
        lines.append(
            f"| {words} | {len(rs)} | {_pct(r['found']['size'] for r in rs)} | "
            f"{_pct(r['found']['size_strict'] for r in rs)} |"
        )
    conf = [r["confidence"] for r in defects if r["confidence"] is not None]
    type_ok = [r for r in defects if r["found"]["type_truth"] is not None]
    hedged = [r for r in type_ok if r["uncertain"]]
    lines += [
        "",
        "## Type statements",
        "",
        "Against the true kind (against the class prediction every type is true by construction: "
        "the caption states the prediction, hedged when its probability is below 60 %).",
        "",
        f"- stated with confidence (>= 60 %): {_pct(r['found']['type_truth'] for r in type_ok if not r['uncertain'])} true",
        f"- hedged as uncertain (< 60 %): {len(hedged)} captions, {_pct(r['found']['type_truth'] for r in hedged)} true",
        f"- median stated confidence {np.median(conf) if conf else float('nan'):.2f}",
        "",
        "## Cost",
        "",
        f"- fit: median {np.median([r['fit_s'] for r in rows]):.1f} s per run; inspect + caption: "
        f"median {np.median([r['ms_per_image'] for r in rows]):.0f} ms per image (shared 2-core CPU)",
        "",
        "## Reading the numbers",
        "",
        "- *type = truth* is limited by the class head: the caption states its prediction and "
        "cannot be truer than the classifier (its probabilities are near 0 or 1, so 'uncertain' "
        "rarely fires even when it is wrong).",
        "- Regions come from the anomaly map (8-px patch grid, 3 x 3 pooling, Gaussian "
        "smoothing): at least ~20 px wide however small the defect, so a spot's region is several "
        "times its area. Lengths of elongated defects and places survive the blur; areas do not, so "
        "a compact defect's area is read off the image's pixels inside its region (colour distance "
        "to the ring around it). Sharp edges give an estimate, soft ones (stains' faint rims) a "
        "range, and where no pixel stands out the region's area is stated as an upper bound. "
        "Where the edge is sharp, shape, orientation and length are the defect's own pixels'; "
        "elsewhere an elongated region's length is stated as a lower bound (the map loses faint "
        "ends), and so is the pixels' length where they reach the region's edge (the region may "
        "have cut the defect off: faint scratch ends, crack branches). Where the edge is soft "
        "but the surest pixels (the seeds) form a line, the defect is called elongated with a "
        "lower-bound length rather than compact. The wording tables show how many statements are ranges or bounds, which are "
        "easier to make true than estimates.",
        "- *detected* and good parts are the inspector's verdicts, not the caption's choices.",
        "",
        "## Examples (first seed and texture)",
        "",
    ]
    first = [r for r in rows if r["seed"] == rows[0]["seed"] and r["texture"] == rows[0]["texture"]]
    for r in first[:: max(1, len(first) // 12)][:12]:
        false = [k for k, v in r["found"].items() if v is False]
        lines.append(
            f"- `{r['id']}` ({'all true' if r['all_true'] else 'false: ' + ', '.join(false)}): {r['sentence']}"
        )
    report = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Seeds 0-2 were used to tune the caption (see the markdown); the reported run uses others.
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5])
    parser.add_argument("--textures", nargs="+", default=["fabric", "metal"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--test-per-kind", type=int, default=10)
    parser.add_argument("--pixel-threshold", type=float, default=None,
                        help="override the calibrated pixel threshold (regions = map >= it)")  # fmt: skip
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--json", type=Path, default=None, help="also write every row (records, truth) here"
    )
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    rows, size_ratios = [], defaultdict(list)
    for texture in args.textures:
        for seed in args.seeds:
            rows += run_one(seed, texture, args, size_ratios)
            done = [r for r in rows if r["kind"] != "good"]
            print(
                f"{texture} seed {seed}: all true so far {_pct(r['all_true'] for r in done)}",
                flush=True,
            )
    print(write_markdown(rows, size_ratios, args, time.perf_counter() - t0, args.output))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
