"""Run a bundle with OpenVINO or ONNX Runtime: the factory side. Imports no torch.

The daemon imports only this, numpy and Pillow. A bundle's engine (:mod:`.engines`)
runs the graph; everything around it - batches, the one preprocessing, decide and
describe - is the one :class:`~defectkit.core.predictor.Predictor` the PyTorch
inspector uses too, so a bundle and its model folder give the same verdicts and
captions; only the graph in between runs on another engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from defectkit.core.caption import CaptionContext
from defectkit.core.predictor import ModelInfo, Predictor
from defectkit.core.results import InspectionResult, RawOutputs, Thresholds
from defectkit.errors import BundleError, ConfigError
from defectkit.exporters.bundle import read_manifest
from defectkit.exporters.engines import ENGINES, CompiledModel, create_engine

__all__ = ["ENGINES", "Bundle", "load_bundle"]

#: The graph's first three outputs, in this order, in every bundle (version 1 had only these).
CORE_OUTPUTS = RawOutputs._fields[:3]


class BundleGraph:
    """A bundle's compiled model as a Predictor engine: checks every output's shape
    against the manifest and names the outputs (:class:`RawOutputs`)."""

    def __init__(self, model: CompiledModel, output_names: Sequence[str], expected: dict, path: Path):
        self.model, self.output_names, self.path = model, tuple(output_names), path
        self._per_image = expected  # output name -> shape per image (None: any size)

    def run(self, x: np.ndarray) -> RawOutputs:
        outputs = self.model.run(x)
        n = x.shape[0]
        expected = [(n, *self._per_image.get(name, (None,))) for name in self.output_names]
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
        named = {k: o.astype(np.float32, copy=False) for k, o in zip(self.output_names, outputs, strict=True)}
        # Version-1 bundles have no caption evidence: no shots to be similar to.
        named.setdefault("prototype_similarity", np.zeros((n, 0), np.float32))
        return RawOutputs.from_named(named)


class Bundle:
    """A verified, loaded bundle. Same ``inspect`` and ``raw`` as the PyTorch Inspector.

    Attributes:
        path: the bundle folder.
        manifest: the parsed, verified manifest (treat it as read-only).
        id: short stable id, the first 12 hex digits of the manifest's own hash: it
            names the exact model files *and* settings, so results can cite it.
        output_names: the graph's outputs, ``score, anomaly_map, class_logits`` first.
        engine: the compiled model running the graph (name, device, precision).
        predictor: the :class:`~defectkit.core.predictor.Predictor` over it; its
            ``info`` holds classes, thresholds, input size, support summary and the
            caption context (empty for version-1 bundles, whose captions cite no notes).
    """

    def __init__(self, path: Path, manifest: dict[str, Any], engine: CompiledModel) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.id = str(manifest["manifest_sha256"])[:12]
        self.output_names: tuple[str, ...] = tuple(manifest["output_names"])
        if self.output_names[:3] != CORE_OUTPUTS or not set(self.output_names) <= set(RawOutputs._fields):
            raise BundleError(
                f"{self.path}: the manifest's outputs {list(self.output_names)} are not "
                f"{list(CORE_OUTPUTS)} and then caption outputs; re-export the bundle"
            )
        try:
            context = CaptionContext.from_dict(manifest)
        except (KeyError, TypeError, AttributeError, ConfigError) as exc:
            raise BundleError(f"{self.path}: the manifest's shots or vocabulary are unreadable ({exc})") from None
        info = ModelInfo(
            classes=tuple(manifest["classes"]),
            thresholds=Thresholds.from_dict(manifest["thresholds"]),
            input_size=tuple(manifest["input_size"]),
            caption_context=context,
            support_summary=manifest.get("support", {}),
        )
        self.engine = engine
        per_image = {
            "score": (),
            "anomaly_map": info.input_size,
            "class_logits": (len(info.classes),),
            "prototype_similarity": (len(context.shot_labels) or None,),
            "vocab_scores": (len(context.vocabulary) or None,),
        }
        self.predictor = Predictor(BundleGraph(engine, self.output_names, per_image, self.path), info)

    def __repr__(self) -> str:
        return (
            f"Bundle({str(self.path)!r}, id={self.id}, target={self.manifest['target']}, "
            f"engine={self.engine.name}/{self.engine.device}/{self.engine.precision})"
        )

    @property
    def classes(self) -> tuple[str, ...]:
        return self.predictor.info.classes

    @property
    def thresholds(self) -> Thresholds:
        return self.predictor.info.thresholds

    @property
    def input_size(self) -> tuple[int, int]:
        return self.predictor.info.input_size

    @property
    def support_summary(self) -> dict:
        return self.predictor.info.support_summary

    @property
    def caption_context(self) -> CaptionContext:
        return self.predictor.info.caption_context

    def set_threshold(self, image: float | None = None, pixel: float | None = None) -> None:
        """Move thresholds for this process only (``bundle.set_thresholds`` writes them);
        a lowered image threshold takes the pixel threshold with it
        (:meth:`~defectkit.core.results.Thresholds.moved`)."""
        self.predictor = self.predictor.with_thresholds(image=image, pixel=pixel)

    def raw(self, images: Sequence[np.ndarray]) -> RawOutputs:
        """Raw outputs as numpy: score N, anomaly_map N x H x W, class_logits N x K, then
        the caption evidence (N x P, N x V)."""
        return self.predictor.raw(images)

    def inspect(
        self, images: Sequence[np.ndarray], paths: Sequence[str | None] | None = None
    ) -> list[InspectionResult]:
        """Inspect images (H x W x 3 uint8 or anything ``preprocess`` converts) -> results,
        in batches (see :meth:`Predictor.inspect <defectkit.core.predictor.Predictor.inspect>`)."""
        return self.predictor.inspect(images, paths)


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
