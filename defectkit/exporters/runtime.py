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
from defectkit.core.head import Head
from defectkit.core.predictor import ModelInfo, Predictor, ResizePredictor
from defectkit.core.results import InspectionResult, RawOutputs, Thresholds, TileOutputs
from defectkit.core.tiling import TileSpec
from defectkit.errors import BundleError, ConfigError
from defectkit.exporters.bundle import read_manifest
from defectkit.exporters.engines import ENGINES, CompiledModel, create_engine

__all__ = ["ENGINES", "Bundle", "load_bundle"]

#: The graph's first three outputs, in this order, in every format-1/2 bundle.
CORE_OUTPUTS = RawOutputs._fields[:3]


class BundleGraph:
    """A bundle's compiled model as a Predictor engine: checks every output's shape
    against the manifest and names the outputs (:class:`TileOutputs`, or
    :class:`RawOutputs` for a format-1/2 bundle)."""

    def __init__(self, model: CompiledModel, output_names: Sequence[str], expected: dict, path: Path, *, tiled: bool):
        self.model, self.output_names, self.path, self.tiled = model, tuple(output_names), path, tiled
        self._per_image = expected  # output name -> shape per image (None: any size)

    def run(self, x: np.ndarray) -> TileOutputs | RawOutputs:
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
        if self.tiled:
            return TileOutputs(**named)
        # Version-1 bundles have no caption evidence: no shots to be similar to.
        named.setdefault("prototype_similarity", np.zeros((n, 0), np.float32))
        return RawOutputs.from_named(named)


def _tiled_engine(path: Path, manifest: dict[str, Any], engine: CompiledModel) -> tuple[Predictor, ModelInfo]:
    """Format 3: tiles, the numpy head, and the graph's per-tile outputs."""
    names = tuple(manifest["output_names"])
    if "features" not in names or not set(names) <= set(TileOutputs._fields):
        raise BundleError(f"{path}: the manifest's outputs {list(names)} are not tile outputs; re-export the bundle")
    try:
        tiles = TileSpec.from_dict(manifest["tiles"])
        head = Head.from_dict(manifest["head"])
        context = CaptionContext.from_dict(manifest)
    except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as exc:
        raise BundleError(f"{path}: the manifest's tiles, head, shots or vocabulary are unreadable ({exc})") from None
    info = ModelInfo(
        classes=tuple(manifest["classes"]), thresholds=Thresholds.from_dict(manifest["thresholds"]),
        input_size=tuple(tiles.size), caption_context=context, support_summary=manifest.get("support", {}),
        tiles=tiles, head=head,
    )  # fmt: skip
    gh, gw = tiles.grid
    dim = (len(head.classes.center) - 2) // 4  # descriptors: 4 D statistics + 2 shape values
    per_tile = {"features": (dim, gh, gw), "distance": (gh, gw), "defect_distance": (gh, gw), "embed": (None, gh, gw)}
    return Predictor(BundleGraph(engine, names, per_tile, path, tiled=True), info), info


def _legacy_engine(path: Path, manifest: dict[str, Any], engine: CompiledModel) -> tuple[ResizePredictor, ModelInfo]:
    """Format 1/2: whole images resized to one input size, raw outputs from the graph."""
    names = tuple(manifest["output_names"])
    if names[:3] != CORE_OUTPUTS or not set(names) <= set(RawOutputs._fields):
        raise BundleError(
            f"{path}: the manifest's outputs {list(names)} are not "
            f"{list(CORE_OUTPUTS)} and then caption outputs; re-export the bundle"
        )
    try:
        context = CaptionContext.from_dict(manifest)
    except (KeyError, TypeError, AttributeError, ConfigError) as exc:
        raise BundleError(f"{path}: the manifest's shots or vocabulary are unreadable ({exc})") from None
    info = ModelInfo(
        classes=tuple(manifest["classes"]), thresholds=Thresholds.from_dict(manifest["thresholds"]),
        input_size=tuple(manifest["input_size"]), caption_context=context,
        support_summary=manifest.get("support", {}),
    )  # fmt: skip
    per_image = {
        "score": (),
        "anomaly_map": info.input_size,
        "class_logits": (len(info.classes),),
        "prototype_similarity": (len(context.shot_labels) or None,),
        "vocab_scores": (len(context.vocabulary) or None,),
    }
    return ResizePredictor(BundleGraph(engine, names, per_image, path, tiled=False), info), info


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
        self.engine = engine
        tiled = int(manifest.get("format_version", 1)) >= 3
        build = _tiled_engine if tiled else _legacy_engine
        self.predictor, _ = build(self.path, manifest, engine)

    @property
    def mode(self) -> str:
        """``"inspect"`` (verdicts) or ``"type_only"`` (defect sorting, no verdict)."""
        return "inspect" if self.predictor.info.has_verdict else "type_only"

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
        """Raw outputs of images of one size as numpy: score N, anomaly_map N x H x W,
        class_logits N x K, then the caption evidence (N x P, N x V)."""
        return self.predictor.raw(images)

    def raw_each(self, images: Sequence[np.ndarray]) -> list[RawOutputs]:
        """Raw outputs, one per image (any sizes)."""
        return self.predictor.raw_each(images)

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
