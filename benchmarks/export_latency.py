"""Latency, throughput, memory and size of one inspector on PyTorch, ONNX Runtime and OpenVINO.

One run, one machine: fits the default Inspector (embedded efficientnet_lite0, default
input size) on the textile benchmark's few-shot split, exports it to ONNX (fp32, fp16)
and OpenVINO (fp32, fp16) bundles, builds anomalib's PatchCore on the same backbone
weights and the same good shots and exports it through anomalib's own OpenVINO path, and
measures every engine on the 200 held-out test images:

- latency per image at batch 1 (one model call on a preprocessed image): median and
  p95 over the 200 images, after 10 warm-up calls;
- end-to-end per image: ``inspect([image])`` (preprocess + model + postprocess);
- throughput (images/s) at batch 1..32 and the best batch size;
- peak RSS and load time, each engine alone in its own subprocess (the runtime
  processes never import torch), plus its raw outputs for parity with PyTorch and
  image AUROC.

Timing runs all engines in one process, *interleaved* (10 images per engine in turn,
the order rotating every round): the machine is shared, and interleaving spreads other
jobs' load evenly over the engines instead of penalising whichever ran during a spike.

    python benchmarks/export_latency.py            # writes benchmarks/results/export_latency.md

anomalib's PatchCore is built on our embedded weights as ``benchmarks/patchcore.py`` says.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.patchcore import DEFAULT_SIZE, LAYERS, build_patchcore  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "export_latency.md"
BATCHES = (1, 2, 4, 8, 16, 32)
WARMUP = 10
CHUNK = 10  # images per engine per turn when interleaving
ANOMALIB_SIZE = DEFAULT_SIZE

#: row name -> (engine kind, folder in the work dir)
ENGINES = {
    "PyTorch eager (fp32)": ("pytorch", "model"),
    "ONNX Runtime fp32": ("onnxruntime", "onnx_fp32"),
    "ONNX Runtime fp16": ("onnxruntime", "onnx_fp16"),
    "OpenVINO fp32": ("openvino", "openvino_fp32"),
    "OpenVINO fp16": ("openvino", "openvino_fp16"),
    "anomalib PatchCore, OpenVINO (its inferencer, default precision)": ("anomalib", "anomalib"),
    "anomalib PatchCore, OpenVINO (f32 hint)": ("anomalib-f32", "anomalib"),
}
BUNDLES = (
    ("onnx_fp32", "onnx", "fp32"),
    ("onnx_fp16", "onnx", "fp16"),
    ("openvino_fp32", "openvino", "fp32"),
    ("openvino_fp16", "openvino", "fp16"),
)


# ---------------------------------------------------------------------- preparation
def prepare(work: Path, *, shots: int, seed: int) -> dict:
    """Fit, save, export; returns facts for the report. Needs torch."""
    from defectkit.datasets.base import GOOD
    from defectkit.datasets.textile import load_textile, textile_protocol_split
    from defectkit.exporters.export import export_bundle
    from defectkit.fewshot.support import SupportSet
    from defectkit.inspect.inspector import Inspector, InspectorConfig

    split = textile_protocol_split(load_textile(), 2 * shots, seed=seed)  # as `inspect demo`
    goods = [s for s in split.train if s.label == GOOD][:shots]
    support = SupportSet.from_samples(goods + [s for s in split.train if s.label != GOOD])
    tests = [{"path": str(s.path), "label": s.label} for s in split.test]
    (work / "test.json").write_text(json.dumps(tests))
    inspector = Inspector(InspectorConfig(seed=seed))
    fit = inspector.fit(support)
    inspector.save(work / "model")
    support_images = [s.load_image() for s in support.shots]
    facts: dict = {
        "fit_s": fit.seconds["total"],
        "bank": fit.bank_size,
        "input_size": list(inspector.input_size),
        "feature_groups": [name for name, _ in getattr(inspector.features, "groups", [])],
        "support": support.summary()["shots_per_class"],
        "n_test": len(split.test),
        "test_sizes": sorted({"x".join(map(str, s.load_image().shape[1::-1])) for s in split.test}),
        "exports": {},
    }
    for name, target, precision in BUNDLES:
        t0 = time.perf_counter()
        out = export_bundle(
            inspector, work / name, target=target, precision=precision, check_images=support_images
        )
        manifest = json.loads((out / "manifest.json").read_text())
        facts["exports"][name] = {
            "seconds": time.perf_counter() - t0,
            "selfcheck": manifest["selfcheck"],
        }
    t0 = time.perf_counter()
    facts["anomalib"] = prepare_anomalib(work / "anomalib", [s.load_image() for s in goods])
    facts["anomalib"]["seconds"] = time.perf_counter() - t0
    return facts


def prepare_anomalib(out: Path, good_images: list[np.ndarray]) -> dict:
    """anomalib's PatchCore on our embedded weights and good shots, exported its own way."""
    model, weights_id = build_patchcore(good_images, ANOMALIB_SIZE)
    # anomalib exports with a batch of 2 for symbolic dimensions, and PatchCore's chunked
    # nearest-neighbour loop specialises the batch, so its default export accepts batches
    # of exactly 2; a static (1, 3, H, W) export is what batch-1 latency needs.
    xml = model.to_openvino(
        out,
        input_size=ANOMALIB_SIZE,
        onnx_kwargs={"dynamic_shapes": None, "dynamic_axes": None},
    )
    return {
        "xml": str(xml),
        "bank": int(model.model.memory_bank.shape[0]),
        "weights_id": weights_id,
    }


# ---------------------------------------------------------------------- engines
class Runner:
    """One engine, as the timing loop sees it."""

    def __init__(self, kind: str, work: Path, folder: str) -> None:
        from defectkit.core.images import preprocess, resize

        self.kind = kind
        self.batches = BATCHES
        if kind.startswith("anomalib"):
            from anomalib.deploy import OpenVINOInferencer

            xml = json.loads((work / "facts.json").read_text())["anomalib"]["xml"]
            config = {"INFERENCE_PRECISION_HINT": "f32"} if kind.endswith("f32") else None
            inf = OpenVINOInferencer(xml, device="CPU", config=config)
            self.precision = inf.model.get_property("INFERENCE_PRECISION_HINT").get_type_name()
            name, port = inf.input_blob.any_name, inf.model.output("pred_score")
            # Its export is static 250 -> images are resized like ours first (both bilinear).
            self.prepare = lambda im: inf.pre_process(resize(im, ANOMALIB_SIZE))
            self.run = lambda x: (inf.model({name: x})[port],)
            self.e2e = lambda im: inf.predict(resize(im, ANOMALIB_SIZE))
            self.batches = (1,)  # static batch-1 export
            return
        if kind == "pytorch":
            import torch

            from defectkit.inspect.inspector import Inspector

            model = Inspector.load(work / folder)

            def run(x):
                with torch.inference_mode():
                    return tuple(t.numpy() for t in model.model(torch.from_numpy(x)).present())

            self.run, self.precision = run, "f32"
        else:
            from defectkit.exporters.runtime import load_bundle

            model = load_bundle(work / folder, engine=kind)
            self.run, self.precision = model.engine.run, model.engine.precision
        size = model.input_size
        self.prepare = lambda im: preprocess([im], size)
        self.batch = lambda ims: preprocess(ims, size)
        self.e2e = lambda im: model.inspect([im])


def _peak_rss_mb() -> float:
    """This process's peak RSS. Not ``getrusage``: on Linux its ``ru_maxrss`` starts from
    the parent's peak at fork, so every child of a big parent would report the parent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"median": float(np.median(a)), "p95": float(np.percentile(a, 95)), "n": len(a)}


def _test_images(work: Path) -> list[np.ndarray]:
    from defectkit.core.images import read_image
    from defectkit.datasets.textile import FRAME_CROP

    # Crop the textile frame exactly as load_textile does, or the test images differ from
    # the support images by a white border line (that is what made AUROC read 0.66).
    x0, y0, x1, y1 = FRAME_CROP
    return [read_image(t["path"])[y0:y1, x0:x1] for t in json.loads((work / "test.json").read_text())]


def measure_alone(kind: str, work: Path, folder: str) -> dict:
    """Subprocess: one engine alone -> load time, raw outputs (for parity), peak RSS."""
    images = _test_images(work)
    t0 = time.perf_counter()
    runner = Runner(kind, work, folder)
    load_s = time.perf_counter() - t0
    if "batch" in vars(runner):
        outs = [runner.run(runner.batch(images[i : i + 16])) for i in range(0, len(images), 16)]
    else:
        outs = [runner.run(runner.prepare(im)) for im in images]
    raw = {
        k: np.concatenate(p)
        for k, p in zip(("score", "map", "logits"), zip(*outs, strict=True), strict=False)
    }
    np.savez(work / f"raw_{kind}_{folder}.npz", **raw)
    return {
        "precision": runner.precision,
        "load_s": load_s,
        "raw": f"raw_{kind}_{folder}.npz",
        "rss_mb": _peak_rss_mb(),
        "torch_imported": "torch" in sys.modules,
    }


def measure_timing(work: Path) -> dict:
    """Subprocess: every engine loaded, timed interleaved (see the module docstring)."""
    images = _test_images(work)
    runners = {name: Runner(kind, work, folder) for name, (kind, folder) in ENGINES.items()}
    names = list(runners)
    inputs = {n: [r.prepare(im) for im in images] for n, r in runners.items()}
    for n, r in runners.items():
        for x in inputs[n][:WARMUP]:
            r.run(x)
    latency: dict[str, list[float]] = {n: [] for n in names}
    e2e: dict[str, list[float]] = {n: [] for n in names}
    for turn, start in enumerate(range(0, len(images), CHUNK)):
        order = names[turn % len(names) :] + names[: turn % len(names)]
        for n in order:
            for i in range(start, min(start + CHUNK, len(images))):
                t0 = time.perf_counter()
                runners[n].run(inputs[n][i])
                latency[n].append((time.perf_counter() - t0) * 1e3)
            for i in range(start, min(start + CHUNK, len(images)), 2):  # every other image
                t0 = time.perf_counter()
                runners[n].e2e(images[i])
                e2e[n].append((time.perf_counter() - t0) * 1e3)
    done: dict[str, dict[int, list[float]]] = {n: {} for n in names}
    for rnd in range(2):
        for bs in BATCHES:
            for n in names[rnd:] + names[:rnd]:
                r = runners[n]
                if bs not in r.batches:
                    continue
                x = (
                    r.batch([images[i % len(images)] for i in range(bs)])
                    if bs > 1
                    else inputs[n][0]
                )
                r.run(x)
                count, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < 1.0 or count < 2:
                    r.run(x)
                    count += bs
                done[n].setdefault(bs, []).append(count / (time.perf_counter() - t0))
    return {
        n: {
            "latency_ms": _stats(latency[n]),
            "e2e_ms": _stats(e2e[n]),
            # best of the two rounds: other jobs only ever slow a round down
            "throughput": {bs: float(np.max(v)) for bs, v in done[n].items()},
        }
        for n in names
    }


# ---------------------------------------------------------------------- report
def _auroc(scores: np.ndarray, labels: list[str]) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score([lab != "good" for lab in labels], scores))


def _parity(ref: dict, other: dict) -> str:
    if "map" not in other:
        return "n/a (another model)"

    def rel(a: np.ndarray, b: np.ndarray) -> float:  # error relative to each image's scale
        n = len(a)
        scale = np.abs(b).reshape(n, -1).max(1)
        return float((np.abs(a - b).reshape(n, -1).max(1) / scale).max())

    agree = (other["logits"].argmax(1) == ref["logits"].argmax(1)).mean()
    return (
        f"{rel(other['score'][:, None], ref['score'][:, None]):.1e} / "
        f"{rel(other['map'], ref['map']):.1e} / {rel(other['logits'], ref['logits']):.1e} / {agree:.0%}"
    )


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def _machine() -> list[str]:
    from benchmarks.common import cpu_name

    cpu = cpu_name()
    try:
        import openvino as ov

        caps = ", ".join(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # noqa: BLE001 - only a description
        caps = "n/a"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [
        f"- Machine: {cpu}, {len(os.sched_getaffinity(0))} cores for this process (OpenVINO CPU "
        f"capabilities: {caps}), {mem:.0f} GiB RAM, {platform.platform()}, "
        f"Python {platform.python_version()}",
    ]


def _header(facts: dict, *, command: str, loads: tuple[float, float]) -> list[str]:
    from defectkit.inspect.saved import package_versions

    a = facts["anomalib"]
    return [
        "# Export latency: PyTorch vs ONNX Runtime vs OpenVINO (and anomalib PatchCore)",
        "",
        f"- Command: `{command}`",
        f"- Date: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}",
        *_machine(),
        f"- Load average (1 min) at start / end: {loads[0]:.2f} / {loads[1]:.2f} on "
        f"{len(os.sched_getaffinity(0))} cores. The machine is shared with other engineers' jobs "
        "(tests, benchmarks, apps), so absolute times carry their load; the engines were timed "
        f"in one process, interleaved ({CHUNK} images each in turn), so they share it evenly "
        "and the ratios are fairer than the absolute numbers.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in package_versions().items()),
        f"- Data: textile benchmark (conformal-clip-data), protocol split seed {facts['seed']}, "
        f"support {facts['support']} (as `inspect demo --shots {facts['shots']}`); "
        f"{facts['n_test']} held-out test images (100 good, 50 local, 50 global; "
        f"{', '.join(facts['test_sizes'])} JPEG).",
        f"- Ours: default `InspectorConfig` (efficientnet_lite0 embedded weights, feature groups "
        f"{', '.join(facts['feature_groups'])}, input {facts['input_size'][0]} x {facts['input_size'][1]}, "
        f"bank {facts['bank']} patches, seed {facts['seed']}); fit {facts['fit_s']:.1f} s.",
        f"- anomalib {_version('anomalib')}: `Patchcore` on the same weights ({a['weights_id']}), "
        f"layers {', '.join(LAYERS)} (strides 4, 8, 16), the same {facts['shots']} good "
        f"shots (PatchCore uses good images only), coreset ratio 0.1 -> bank {a['bank']} patches; "
        "exported with `Patchcore.to_openvino` (static 1 x 3 x 224 x 224; its graph normalises) and "
        "run with `anomalib.deploy.OpenVINOInferencer` on CPU, images resized to 224 first.",
        "",
    ]


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def write_report(
    work: Path, facts: dict, results: dict, *, command: str, loads: tuple, out: Path
) -> None:
    from defectkit.inspect.backbones.weights import embedded_effnet_file

    labels = [t["label"] for t in json.loads((work / "test.json").read_text())]
    raws = {name: dict(np.load(work / r["raw"])) for name, r in results.items()}
    ref = "PyTorch eager (fp32)"
    ref_ms = results[ref]["latency_ms"]["median"]
    lines = _header(facts, command=command, loads=loads) + [
        "Latency = one model call on one preprocessed image (batch 1), median and p95 over "
        f"{facts['n_test']} images after {WARMUP} warm-up calls. End-to-end = `inspect([image])` "
        "(preprocess + model + postprocess; anomalib: resize + `OpenVINOInferencer.predict`), "
        f"median over {facts['n_test'] // 2} images. Throughput: batch {', '.join(map(str, BATCHES))}, "
        "the better of two interleaved rounds of >= 1 s each; the best batch size is shown. Peak RSS: the engine alone in "
        "its own process (load + 200 images). Parity vs PyTorch on the test images: max error "
        "relative to each image's largest value, of score / anomaly map / class logits, and "
        "the share of images with the same class.",
        "",
        "| engine | computes in | latency median (ms) | p95 (ms) | speed-up vs PyTorch | "
        "end-to-end median (ms) | best batch: img/s | model size (MB) | peak RSS (MB) | "
        "parity vs PyTorch | image AUROC |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    weights_mb = embedded_effnet_file().stat().st_size / 1e6
    for name, r in results.items():
        kind, folder = ENGINES[name]
        lat = r["latency_ms"]
        best = max(r["throughput"], key=lambda b: r["throughput"][b])
        size = f"{_size_mb(work / folder):.1f}"
        if kind == "pytorch":
            size += f" + {weights_mb:.1f} backbone"
        if kind.startswith("anomalib"):
            size += " (IR only)"
        rss = f"{r['rss_mb']:.0f}" + ("" if r["torch_imported"] else " (no torch)")
        parity = "reference" if name == ref else _parity(raws[ref], raws[name])
        lines.append(
            f"| {name} | {r['precision']} | {lat['median']:.1f} | {lat['p95']:.1f} | "
            f"{ref_ms / lat['median']:.1f}x | {r['e2e_ms']['median']:.1f} | "
            f"{best}: {r['throughput'][best]:.0f} | {size} | {rss} | {parity} | "
            f"{_auroc(raws[name]['score'], labels):.3f} |"
        )
    lines += [
        "",
        "Exports (time includes the self-check on the 6 support images + 18 flipped, rotated "
        "and noised copies):",
        "",
        "| bundle | export (s) | self-check: engine precision | score max rel | map max abs / rel | "
        "logits max abs / rel | class agree |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, e in facts["exports"].items():
        c = e["selfcheck"]
        lines.append(
            f"| {name} | {e['seconds']:.1f} | {c['inference_precision']} | {c['score_max_rel']:.1e} | "
            f"{c['map_max_abs']:.1e} / {c['map_max_rel']:.1e} | {c['logit_max_abs']:.1e} / "
            f"{c['logit_max_rel']:.1e} | {c['argmax_agree']}/{c['argmax_checked']} |"
        )
    lines += [
        f"| anomalib PatchCore (fit + export) | {facts['anomalib']['seconds']:.1f} | "
        "no self-check | | | | |",
        "",
        "Throughput (images/s) by batch size:",
        "",
        "| engine | " + " | ".join(f"batch {b}" for b in BATCHES) + " |",
        "|---|" + "---|" * len(BATCHES),
    ]
    for name, r in results.items():
        cells = [f"{r['throughput'][b]:.0f}" if b in r["throughput"] else "-" for b in BATCHES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    ov = results["OpenVINO fp32"]["latency_ms"]["median"]
    lines += [
        "",
        f"Targets on 2 cores: OpenVINO fp32 >= 3x faster than PyTorch eager: {ref_ms / ov:.1f}x "
        f"({'met' if ref_ms / ov >= 3 else 'not met'}); <= 15 ms/image at batch 1: {ov:.1f} ms "
        f"median ({'met' if ov <= 15 else 'not met'}).",
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))


# ---------------------------------------------------------------------- main
def _subprocess(args: list[str]) -> dict:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shots", type=int, default=2, help="labelled images per class (default 2)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="protocol split and fit seed (default 0)"
    )
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="markdown file to write")
    parser.add_argument("--alone", nargs=2, metavar=("KIND", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument("--timing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.alone:
        kind, folder = args.alone
        print(json.dumps(measure_alone(kind, args.work, folder)))
        return 0
    if args.timing:
        print(json.dumps(measure_timing(args.work)))
        return 0

    shown = [str(Path(__file__).relative_to(REPO)), *(sys.argv[1:] if argv is None else argv)]
    command = "python " + " ".join(shlex.quote(a) for a in shown)
    work = args.work or Path(tempfile.mkdtemp(prefix="defectkit-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    if not (work / "facts.json").is_file():
        facts = prepare(work, shots=args.shots, seed=args.seed)
        facts.update(shots=args.shots, seed=args.seed)
        (work / "facts.json").write_text(json.dumps(facts, indent=1))
    facts = json.loads((work / "facts.json").read_text())
    results = {}
    for name, (kind, folder) in ENGINES.items():
        print(f"alone: {name}", file=sys.stderr, flush=True)
        results[name] = _subprocess(["--alone", kind, folder, "--work", str(work)])
    print("timing, interleaved ...", file=sys.stderr, flush=True)
    for name, timing in _subprocess(["--timing", "--work", str(work)]).items():
        timing["throughput"] = {int(k): v for k, v in timing["throughput"].items()}
        results[name].update(timing)
    write_report(
        work, facts, results, command=command, loads=(load_start, os.getloadavg()[0]), out=args.out
    )
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
