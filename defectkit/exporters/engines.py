"""OpenVINO and ONNX Runtime engines for bundles: the compiled graph, nothing around it.

Torch-free. Each engine runs N x 3 x H x W float32 in [0, 1] and returns the graph's
outputs in the manifest's ``output_names`` order; :mod:`.runtime` checks their shapes,
names them (:class:`~defectkit.core.results.RawOutputs`) and hands them to the one
:class:`~defectkit.core.predictor.Predictor`.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from defectkit.errors import BundleError, ConfigError
from defectkit.exporters.bundle import ENTRY_FILES

ENGINES = ("openvino", "onnxruntime")


class CompiledModel(Protocol):
    """One compiled model: N x 3 x H x W float32 in [0, 1] -> the raw outputs, in the
    order of the manifest's ``output_names``."""

    name: str
    device: str
    precision: str  # the precision the engine actually computes in, e.g. "f32", "bf16"

    def run(self, x: np.ndarray) -> tuple[np.ndarray, ...]: ...


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
        ov = _engine_module("openvino", "OpenVINO")
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
        # The tiles' array is read in place, not copied into the request (6.6 MB for a
        # 480 x 1152 tile); infer is synchronous, so it cannot change under the engine.
        result = request.infer({0: x}, share_inputs=True)
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


def blas_on_calling_thread() -> None:
    """Let the engine have the cores: numpy's BLAS runs on the calling thread from now on.

    OpenBLAS (numpy's and scipy's) keeps its worker threads spinning for a while after
    each multi-threaded product. The head's small products after each inference woke
    them, and on a 2-core line PC they then held a core through the engine's next
    inference: a 1130 x 460 image took 190-210 ms end to end instead of 150 (OpenVINO,
    the same outputs). The products are small; one thread loses nothing on them. Set
    once per process, when a bundle's engine is made.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an install without it: slower on few cores, never wrong
        return
    threadpool_limits(limits=1, user_api="blas")


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
        ort = _engine_module("onnxruntime", "ONNX Runtime")
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


def _engine_module(module: str, name: str):
    """The inference engine's package, or a BundleError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise BundleError(
            f"this bundle runs on {name}, which is not installed: pip install {module}"
        ) from None


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
) -> CompiledModel:
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
    blas_on_calling_thread()
    return cls(
        folder / ENTRY_FILES[target],
        device=device,
        precision=manifest["precision"],
        outputs=manifest["output_names"],
        streams=int(streams),
    )
