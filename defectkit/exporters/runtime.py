"""Run a bundle with OpenVINO or ONNX Runtime: the factory side. Imports no torch.

The daemon imports only this, numpy and Pillow. Images go through the same
:func:`~defectkit.core.images.preprocess` and raw outputs through the same
:func:`~defectkit.inspect.results.postprocess` as the PyTorch inspector, so a bundle and
its model folder give the same verdicts and captions; only the graph in between runs on
another engine.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from defectkit.core.images import preprocess
from defectkit.errors import BundleError, ConfigError
from defectkit.exporters.bundle import ENTRY_FILES, read_manifest
from defectkit.fewshot.caption import CaptionContext
from defectkit.inspect.results import (
    CORE_OUTPUTS,
    PROTOTYPE_SIMILARITY,
    VOCAB_SCORES,
    InspectionResult,
    Thresholds,
    postprocess,
)

ENGINES = ("openvino", "onnxruntime")
#: Images per engine call in ``raw``/``inspect``: large enough to use the cores, small
#: enough that a 500-image list does not allocate 500 maps at once.
MAX_BATCH = 16


class Engine(Protocol):
    """One compiled model: N x 3 x H x W float32 in [0, 1] -> the raw outputs, in the
    order of the manifest's ``output_names``."""

    name: str
    device: str
    precision: str  # the precision the engine actually computes in, e.g. "f32", "bf16"

    def run(self, x: np.ndarray) -> tuple[np.ndarray, ...]: ...


# ------------------------------------------------------------------------- engines
class OpenVinoEngine:
    """OpenVINO compiled model with an explicit inference precision.

    Why the explicit precision: OpenVINO's CPU plugin silently computes in bf16 on
    processors that support it (Xeon since Cooper Lake, AMD Zen 4) and in f16 on some
    ARM cores, even for an fp32 model. bf16 keeps 8 mantissa bits: scores move by ~2%,
    and the prototype head, which pools features where the map peaks, can change its
    class. So fp32 bundles ask for f32. fp16 bundles ask for f16 only on devices that
    compute in f16 (``FP16`` among the device's optimisation capabilities); elsewhere
    the CPU plugin would quietly map "f16" to bf16, so they run their fp16 weights in
    f32 instead. :attr:`precision` reports what the plugin actually chose.
    """

    name = "openvino"

    def __init__(
        self, model_path: Path, *, device: str, precision: str, outputs: Sequence[str],
        streams: int = 1,
    ):  # fmt: skip
        try:
            import openvino as ov
        except ImportError:
            raise BundleError(
                "this bundle runs on OpenVINO, which is not installed: pip install openvino"
            ) from None
        core = ov.Core()
        _check_device(device, core.available_devices)
        hint = "f16" if precision == "fp16" and _computes_f16(core, device) else "f32"
        try:
            model = core.read_model(str(model_path))
            self._compiled = core.compile_model(model, device, _ov_config(hint, streams))
        except RuntimeError as exc:
            raise BundleError(f"{model_path}: OpenVINO cannot compile the model ({exc})") from None
        self.device = device
        chosen = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = getattr(chosen, "get_type_name", lambda: str(chosen))()  # "f32", "bf16"
        self._ports = [_ov_port(self._compiled, name, model_path) for name in outputs]
        # An InferRequest is not thread-safe; one per thread lets daemon workers share
        # the compiled model.
        self._local = threading.local()

    def run(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        result = request.infer({0: x})
        return tuple(np.array(result[port]) for port in self._ports)


def _ov_config(precision_hint: str, streams: int) -> dict[str, Any]:
    """One caller: the LATENCY hint (all cores on each image). ``streams`` callers at once
    (daemon workers): the THROUGHPUT hint with that many requests in flight, so each
    stream gets its share of the cores instead of every call fighting for all of them
    (the demo bundle on 2 cores, two threads calling: 63 instead of 42 images/s)."""
    config = {"INFERENCE_PRECISION_HINT": precision_hint, "PERFORMANCE_HINT": "LATENCY"}
    if streams > 1:
        config |= {"PERFORMANCE_HINT": "THROUGHPUT", "PERFORMANCE_HINT_NUM_REQUESTS": int(streams)}
    return config


def _computes_f16(core, device: str) -> bool:
    try:
        return "FP16" in core.get_property(device, "OPTIMIZATION_CAPABILITIES")
    except RuntimeError:  # virtual devices (AUTO, MULTI) have no capabilities of their own
        return False


def _ov_port(compiled, name: str, model_path: Path):
    try:
        return compiled.output(name)
    except RuntimeError:
        raise BundleError(f"{model_path}: the model has no output named {name!r}") from None


class OnnxRuntimeEngine:
    """ONNX Runtime session on the CPU (or CUDA for ``device="GPU"`` when installed).

    ONNX Runtime's CPU provider computes float32 graphs in float32 whatever the CPU, so
    no precision setting is needed; an fp16 bundle's graph is float16 inside.
    """

    name = "onnxruntime"

    def __init__(
        self, model_path: Path, *, device: str, precision: str, outputs: Sequence[str],
        streams: int = 1,
    ):  # fmt: skip
        try:
            import onnxruntime as ort
        except ImportError:
            raise BundleError(
                "this bundle runs on ONNX Runtime, which is not installed: pip install onnxruntime"
            ) from None
        providers = {
            "CPU": ["CPUExecutionProvider"],
            "GPU": ["CUDAExecutionProvider", "CPUExecutionProvider"],
        }.get(device.upper())
        if providers is None:
            raise ConfigError(f"ONNX Runtime runs on device CPU or GPU, not {device!r}")
        if providers[0] not in ort.get_available_providers():
            raise BundleError(
                f"device {device}: {providers[0]} is not available in this ONNX Runtime"
            )
        options = ort.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers are noise here
        if streams > 1:  # concurrent callers share the cores instead of oversubscribing them
            options.intra_op_num_threads = max(1, (os.cpu_count() or 1) // int(streams))
        try:
            self._session = ort.InferenceSession(str(model_path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise BundleError(f"{model_path}: ONNX Runtime cannot load the model ({exc})") from None
        names = [o.name for o in self._session.get_outputs()]
        for name in outputs:
            if name not in names:
                raise BundleError(f"{model_path}: the model has no output named {name!r}")
        self._outputs = list(outputs)
        self._input = self._session.get_inputs()[0].name
        self.device = device.upper()
        self.precision = "f16" if precision == "fp16" else "f32"

    def run(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(self._session.run(self._outputs, {self._input: x}))


def _check_device(device: str, available: Sequence[str]) -> None:
    virtual = ("AUTO", "MULTI", "HETERO", "BATCH")
    if device.split(":")[0].upper() in virtual:
        return
    if device not in available and not any(d.startswith(device + ".") for d in available):
        raise BundleError(
            f"OpenVINO device {device!r} is not available here (found: {', '.join(available)})"
        )


def create_engine(
    folder: Path, manifest: dict[str, Any], *, device: str = "CPU", engine: str | None = None,
    streams: int = 1,
) -> Engine:
    """The engine for a verified bundle: its target's engine unless ``engine`` says otherwise.

    OpenVINO also reads ``.onnx`` files, so an ONNX bundle can run on either engine; an
    OpenVINO bundle needs OpenVINO. ``streams``: how many threads will call it at once.
    """
    if int(streams) < 1:
        raise ConfigError(f"streams must be at least 1, got {streams}")
    target = manifest["target"]
    engine = engine or ("openvino" if target == "openvino" else "onnxruntime")
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; use one of: {', '.join(ENGINES)}")
    if target == "openvino" and engine != "openvino":
        raise ConfigError("an OpenVINO bundle runs on engine='openvino' only")
    cls = OpenVinoEngine if engine == "openvino" else OnnxRuntimeEngine
    return cls(
        folder / ENTRY_FILES[target],
        device=device,
        precision=manifest["precision"],
        outputs=manifest["output_names"],
        streams=int(streams),
    )


# ------------------------------------------------------------------------- bundle
class Bundle:
    """A verified, loaded bundle. Same ``inspect`` signature as the PyTorch Inspector.

    Attributes:
        path: the bundle folder.
        manifest: the parsed, verified manifest (treat it as read-only).
        id: short stable id, the first 12 hex digits of the manifest's own hash: it
            names the exact model files *and* settings, so results can cite it.
        classes, thresholds, input_size, support_summary: from the manifest;
            ``thresholds`` moves with :meth:`set_threshold` (in memory only).
        output_names: the graph's outputs, ``score, anomaly_map, class_logits`` first.
        caption_context: the shots (classes, notes) and vocabulary the caption evidence
            refers to (empty for version-1 bundles, whose captions cite no notes).
        engine: the :class:`Engine` running the graph.
    """

    def __init__(self, path: Path, manifest: dict[str, Any], engine: Engine) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.id = str(manifest["manifest_sha256"])[:12]
        self.classes: tuple[str, ...] = tuple(manifest["classes"])
        self.thresholds = Thresholds.from_dict(manifest["thresholds"])
        self.input_size: tuple[int, int] = tuple(manifest["input_size"])
        self.support_summary: dict = manifest.get("support", {})
        self.output_names: tuple[str, ...] = tuple(manifest["output_names"])
        if self.output_names[:3] != CORE_OUTPUTS:
            raise BundleError(
                f"{self.path}: the manifest's outputs {list(self.output_names)} do not start "
                f"with {list(CORE_OUTPUTS)}; re-export the bundle"
            )
        try:
            self.caption_context = CaptionContext.from_dict(manifest)
        except (KeyError, TypeError, AttributeError, ConfigError) as exc:
            raise BundleError(f"{self.path}: the manifest's shots or vocabulary are unreadable ({exc})") from None
        self.engine = engine

    def __repr__(self) -> str:
        return (
            f"Bundle({str(self.path)!r}, id={self.id}, target={self.manifest['target']}, "
            f"engine={self.engine.name}/{self.engine.device}/{self.engine.precision})"
        )

    def set_threshold(self, image: float | None = None, pixel: float | None = None) -> None:
        """Move thresholds for this process only (``bundle.set_thresholds`` writes them)."""
        t = self.thresholds
        self.thresholds = Thresholds(
            image=t.image if image is None else float(image),
            pixel=t.pixel if pixel is None else float(pixel),
            min_defect_area=t.min_defect_area,
        )

    def _shapes(self, n: int) -> list[tuple[int | None, ...]]:
        """Expected shape of each output for a batch of ``n`` (None: any size)."""
        context = self.caption_context
        per_image = {
            "score": (),
            "anomaly_map": tuple(self.input_size),
            "class_logits": (len(self.classes),),
            PROTOTYPE_SIMILARITY: (len(context.shot_labels) or None,),
            VOCAB_SCORES: (len(context.vocabulary) or None,),
        }
        return [(n, *per_image.get(name, (None,))) for name in self.output_names]

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        outputs = self.engine.run(x)
        expected = self._shapes(x.shape[0])
        got = [tuple(o.shape) for o in outputs]
        fits = len(got) == len(expected) and all(
            len(g) == len(e) and all(b is None or a == b for a, b in zip(g, e, strict=True))
            for g, e in zip(got, expected, strict=True)
        )
        if not fits:
            raise BundleError(
                f"{self.path}: the model returned shapes {got} for outputs "
                f"{list(self.output_names)}; expected {expected} (None: any)"
            )
        return tuple(o.astype(np.float32, copy=False) for o in outputs)

    def raw(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
        """Raw outputs as numpy, in :attr:`output_names` order: score N, anomaly_map
        N x H x W, class_logits N x K, then the caption evidence (N x P, N x V)."""
        if len(images) == 0:
            return tuple(
                np.zeros(tuple(0 if v is None else v for v in shape), np.float32)
                for shape in self._shapes(0)
            )
        parts = [
            self._run(preprocess(list(images[i : i + MAX_BATCH]), self.input_size))
            for i in range(0, len(images), MAX_BATCH)
        ]
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))

    def inspect(
        self, images: Sequence[np.ndarray], paths: Sequence[str | None] | None = None
    ) -> list[InspectionResult]:
        """Inspect images (H x W x 3 uint8 or anything ``preprocess`` converts) -> results.

        Images are run in batches; ``timings["model"]`` is each image's share of its
        batch's preprocessing and inference, in milliseconds.
        """
        paths = list(paths) if paths is not None else [None] * len(images)
        if len(paths) != len(images):
            raise ConfigError(f"{len(images)} images but {len(paths)} paths")
        results: list[InspectionResult] = []
        for start in range(0, len(images), MAX_BATCH):
            chunk = list(images[start : start + MAX_BATCH])
            t0 = time.perf_counter()
            scores, maps, logits, *extra = self._run(preprocess(chunk, self.input_size))
            per_image = (time.perf_counter() - t0) * 1e3 / len(chunk)
            names = self.output_names[3:]
            for i, image in enumerate(chunk):
                results.append(postprocess(
                    float(scores[i]), maps[i], logits[i], classes=self.classes,
                    thresholds=self.thresholds, image_size=np.asarray(image).shape[:2],
                    path=paths[start + i], timings={"model": per_image},
                    extras={n: e[i] for n, e in zip(names, extra, strict=True)},
                    caption_context=self.caption_context, image=image,
                ))  # fmt: skip
        return results


def load_bundle(
    path: str | Path, *, device: str = "CPU", engine: str | None = None, streams: int = 1
) -> Bundle:
    """Verify a bundle (manifest, format version, every file's SHA-256) and load it.

    Args:
        path: the bundle folder.
        device: ``"CPU"`` (default), ``"GPU"`` (OpenVINO's Intel GPU plugin; CUDA for
            ONNX Runtime when installed), or any OpenVINO device string.
        engine: ``"openvino"`` or ``"onnxruntime"``; default: the bundle's target's
            (ONNX bundles run on ONNX Runtime, OpenVINO bundles on OpenVINO).
        streams: how many threads will call :meth:`Bundle.inspect` at the same time
            (the daemon's workers). 1 (default) tunes for the latency of one call; more
            tunes for throughput, giving each caller its share of the cores.

    Raises:
        BundleError: missing or changed files, unknown format version, unreadable
            manifest, an engine that is not installed or cannot load the model.
    """
    path = Path(path)
    manifest = read_manifest(path)
    engine_ = create_engine(path, manifest, device=device, engine=engine, streams=streams)
    return Bundle(path, manifest, engine_)
