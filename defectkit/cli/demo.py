"""``inspect demo``: the README's main job, offline, on the embedded default backbone.

Fits from ``shots`` labelled images per class (good, local, global) of the textile
benchmark shipped by ``conformal-clip-data``, evaluates on the paper's held-out test set
(100 good, 50 local, 50 global), writes the model and an HTML report, exports an OpenVINO
bundle (which checks itself against PyTorch), inspects the test set again through the
torch-free runtime, and prints a table.
"""

from __future__ import annotations

import time
from pathlib import Path

from defectkit.core.labels import GOOD


def register(sub) -> None:
    p = sub.add_parser(
        "demo", help="fit, evaluate and report on the bundled textile benchmark (offline)",
        description="The main job on the embedded default backbone, offline: fit from N shots per class "
        "of the textile benchmark (package conformal-clip-data), evaluate on 100 good + 50 local + "
        "50 global held-out images, write the model, an HTML report and print a table.",
    )
    p.add_argument("-o", "--output", default="inspect-demo", metavar="DIR", help="where to write model/ and report/ (default: ./inspect-demo)")
    p.add_argument("--shots", type=int, default=2, help="labelled images per class (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (default: 0)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    return run_demo(Path(args.output), shots=args.shots, seed=args.seed)


def run_demo(output: Path, *, shots: int = 2, seed: int = 0) -> int:
    from defectkit.datasets.textile import load_textile, textile_protocol_split
    from defectkit.exporters.export import export_bundle
    from defectkit.exporters.runtime import load_bundle
    from defectkit.fewshot.support import SupportSet
    from defectkit.inspect.evaluate import evaluate
    from defectkit.inspect.inspector import Inspector, InspectorConfig
    from defectkit.inspect.metrics import format_metrics
    from defectkit.inspect.report import write_report

    t0 = time.perf_counter()
    split = textile_protocol_split(load_textile(), 2 * shots, seed=seed)
    goods = [s for s in split.train if s.label == GOOD][:shots]
    support = SupportSet.from_samples(goods + [s for s in split.train if s.label != GOOD])
    print(f"textile benchmark: {len(support.shots)} shots "
          f"({', '.join(f'{c} {n}' for c, n in support.summary()['shots_per_class'].items())}), "
          f"{len(split.test)} held-out test images, seed {seed}")

    inspector = Inspector(InspectorConfig(seed=seed))
    fit = inspector.fit(support, progress=True)
    model_dir = inspector.save(output / "model")
    evaluation = evaluate(inspector, split.test, progress=True)
    report_dir = write_report(evaluation, output / "report", title="defectkit demo: textile, "
                              f"{shots} shots per class, {inspector.backbone.name}")
    print("exporting to OpenVINO (with self-check against PyTorch) ...", flush=True)
    bundle_dir = export_bundle(
        inspector, output / "bundle", target="openvino",
        check_images=[s.load_image() for s in support.shots],
    )
    bundle = load_bundle(bundle_dir)
    runtime_eval = evaluate(bundle, split.test, progress=True, keep_maps=False)
    m = evaluation.metrics
    agree = sum(a.label == b.label for a, b in zip(evaluation.results, runtime_eval.results, strict=True))
    print()
    print(format_metrics(m))
    print(f"{'fit time':<20}{fit.seconds['total']:.2f} s ({fit.bank_size} bank patches)")
    print(f"{'latency PyTorch':<20}median {_median_ms(evaluation)} ms / image")
    print(f"{'latency OpenVINO':<20}median {_median_ms(runtime_eval)} ms / image")
    check = bundle.manifest["selfcheck"]
    # The absolute difference: the shots' own scores are near zero (their patches are in
    # the bank), so a relative one is large for differences far inside the tolerance.
    print(f"{'OpenVINO agrees':<20}{agree} of {len(split.test)} labels; self-check "
          f"{'passed' if check['passed'] else 'FAILED'}, largest score difference {check['score_max_abs']:.1e} "
          f"(tolerance {check['tolerance']['score_atol']:.0e} or {check['tolerance']['score_rtol']:.0e} of the score)")
    print(f"{'total':<20}{time.perf_counter() - t0:.1f} s")
    print(f"model:  {model_dir}\nreport: {report_dir / 'index.html'}\nbundle: {bundle_dir}")
    return 0


def _median_ms(evaluation) -> str:
    values = sorted(r.timings["model"] for r in evaluation.results)
    return f"{values[len(values) // 2]:.1f}"
