"""One Predictor for the PyTorch model and for every bundle engine.

An :class:`Engine` runs the graph on fixed-size tiles: N x 3 x th x tw float32 in
[0, 1] -> :class:`TileOutputs`. The PyTorch path
(``defectkit.inspect.inspector.TorchEngine``) and the runtime's OpenVINO and ONNX
Runtime engines are engines; everything around the graph is here, written once:
cutting each image into tiles (:mod:`.tiling`), batching, stitching, the head after the
graph (:mod:`.head`), then :func:`~defectkit.core.decide.decide` and
:func:`~defectkit.core.caption.describe` per image. So a model folder and its bundle
give the same verdicts and captions, and only the graph in between differs.

Bundles of format 1 and 2 ran whole images resized to one input size and returned
:class:`RawOutputs` from the graph; :class:`ResizePredictor` still runs them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from defectkit.core.caption import CaptionContext, describe
from defectkit.core.decide import decide
from defectkit.core.head import Head
from defectkit.core.images import preprocess, to_rgb
from defectkit.core.results import InspectionResult, RawOutputs, Thresholds, TileOutputs
from defectkit.core.tiling import TilePlan, TileSpec, cut_tiles, grid_to_image, stitch
from defectkit.errors import ConfigError

#: Tiles per engine call: large enough to use the cores, small enough that a 500-image
#: list does not allocate 500 images' features at once. (Exported graphs accept more.)
BATCH_SIZE = 16


class Engine(Protocol):
    """Runs the graph on tiles: N x 3 x th x tw float32 in [0, 1] -> numpy (float32)
    :class:`TileOutputs` (:class:`RawOutputs` for a format-1/2 bundle's whole images)."""

    def run(self, x: np.ndarray) -> TileOutputs: ...


@dataclass(frozen=True)
class ModelInfo:
    """What a Predictor needs beside the engine: fixed by the fit, except thresholds.

    Attributes:
        classes: class names in logit order (``good`` first when there is a good class).
        thresholds: where verdicts and masks are cut.
        input_size: (H, W) the graph runs at (one tile; a format-1/2 bundle's images).
        caption_context: the shots and vocabulary the caption evidence refers to.
        support_summary: counts of the shots it was fitted from (for reports).
        tiles: how images are cut into tiles (None: a format-1/2 bundle).
        head: the numpy head after the graph (None: a format-1/2 bundle).
    """

    classes: tuple[str, ...]
    thresholds: Thresholds
    input_size: tuple[int, int]
    caption_context: CaptionContext = field(default_factory=CaptionContext)
    support_summary: dict = field(default_factory=dict)
    tiles: TileSpec | None = None
    head: Head | None = None

    @property
    def has_verdict(self) -> bool:
        """False for a type-only model: it sorts defects into types and judges nothing good."""
        return self.head is None or self.head.has_verdict


def inspection_result(
    raw: RawOutputs,
    *,
    classes: Sequence[str],
    thresholds: Thresholds,
    context: CaptionContext | None = None,
    image: np.ndarray | None = None,
    image_size: tuple[int, int] | None = None,
    path: str | None = None,
    timings: dict[str, float] | None = None,
    has_verdict: bool = True,
) -> InspectionResult:
    """One image's raw outputs -> :class:`InspectionResult`: decide, then describe.

    Args:
        raw: this image's outputs (:meth:`RawOutputs.at`).
        image: the inspected image; compact defects' areas are read off it, and its
            size is the result's (unless ``image_size`` says otherwise).
        image_size: (H, W) the map, mask and boxes are reported at; default: the
            image's, else the map's.
        has_verdict: False for a type-only model (no verdict, no regions; the label is
            the most probable type).
    """
    if image_size is None and image is not None:
        image_size = np.asarray(image).shape[:2]
    decision = decide(raw, thresholds, classes, image_size=image_size, has_verdict=has_verdict)
    defects, caption = describe(decision, raw, context, image)
    return InspectionResult(
        score=decision.score,
        verdict=decision.verdict,
        label=decision.label,
        probabilities=decision.probabilities,
        threshold=thresholds.image,
        anomaly_map=decision.anomaly_map,
        mask=decision.mask,
        defects=defects,
        caption=caption,
        timings=dict(timings or {}),
        path=path,
        raw=raw,
        image_size=tuple(decision.image_size),
        image=image,
        mode="inspect" if has_verdict else "type_only",
    )


class _Base:
    """Thresholds, results and batching shared by both predictors."""

    def __init__(self, engine: Engine, info: ModelInfo, *, batch_size: int = BATCH_SIZE) -> None:
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.engine, self.info, self.batch_size = engine, info, int(batch_size)

    def with_thresholds(
        self, image: float | None = None, pixel: float | None = None,
        min_defect_area: int | None = None,
    ):  # fmt: skip
        """The same engine at other thresholds (:meth:`Thresholds.moved`: the pixel
        threshold follows a lowered image threshold)."""
        moved = self.info.thresholds.moved(image, pixel, min_defect_area)
        return type(self)(self.engine, replace(self.info, thresholds=moved), batch_size=self.batch_size)

    def raw(self, images: Sequence[np.ndarray]) -> RawOutputs:
        """Raw outputs of ``images`` batched: score N, anomaly_map N x H x W (every image
        of one size), class_logits N x K, and the caption evidence. Images of different
        sizes: use :meth:`raw_each`."""
        each = self.raw_each(images)
        if not each:
            return self._empty()
        sizes = {r.anomaly_map.shape for r in each}
        if len(sizes) > 1:
            raise ConfigError(f"images of {len(sizes)} different sizes: use raw_each() for one result per image")
        return RawOutputs.concat([r.map(lambda a: np.asarray(a)[None]) for r in each])

    def inspect(
        self, images: Sequence[np.ndarray], paths: Sequence[str | None] | None = None
    ) -> list[InspectionResult]:
        """Inspect images (H x W x 3 uint8, or anything ``to_rgb`` converts) -> results.

        ``timings["model"]`` is each image's share of its batch's tiling, inference and
        head, in milliseconds.
        """
        paths = list(paths) if paths is not None else [None] * len(images)
        if len(paths) != len(images):
            raise ConfigError(f"{len(images)} images but {len(paths)} paths")
        info, results = self.info, []
        for start in range(0, len(images), self.batch_size):
            chunk = list(images[start : start + self.batch_size])
            t0 = time.perf_counter()
            raws = self.raw_each(chunk)
            per_image = (time.perf_counter() - t0) * 1e3 / len(chunk)
            for i, (image, raw) in enumerate(zip(chunk, raws, strict=True)):
                results.append(
                    inspection_result(
                        raw, classes=info.classes, thresholds=info.thresholds,
                        context=info.caption_context, image=image, path=paths[start + i],
                        timings={"model": per_image}, has_verdict=info.has_verdict,
                    )  # fmt: skip
                )
        return results


class Predictor(_Base):
    """Tiles images through an engine, stitches, applies the head, and turns its outputs
    into results.

    Args:
        engine: runs the graph on tiles (PyTorch, OpenVINO, ONNX Runtime, or a double).
        info: classes, thresholds, tiles, head and caption context of the fitted model.
        batch_size: tiles per engine call.
    """

    def __init__(self, engine: Engine, info: ModelInfo, *, batch_size: int = BATCH_SIZE) -> None:
        if info.tiles is None or info.head is None:
            raise ConfigError("a tiled Predictor needs the model's tiles and head (format 3)")
        super().__init__(engine, info, batch_size=batch_size)

    def _empty(self) -> RawOutputs:
        k, p = len(self.info.classes), len(self.info.head.classes.labels)
        return RawOutputs(
            np.zeros(0, np.float32), np.zeros((0, 0, 0), np.float32), np.zeros((0, k), np.float32),
            np.zeros((0, p), np.float32), None,
        )  # fmt: skip

    def grids(self, images: Sequence[np.ndarray]) -> list[tuple[TileOutputs, TilePlan]]:
        """Each image's stitched patch grids (TileOutputs without the batch axis) and its
        tile plan."""
        spec = self.info.tiles
        cut = [cut_tiles(to_rgb(image), spec) for image in images]
        if not cut:
            return []
        tiles = np.concatenate([t for t, _ in cut])
        outs = TileOutputs.concat(
            [self.engine.run(tiles[i : i + self.batch_size]) for i in range(0, len(tiles), self.batch_size)]
        )
        stitched, start = [], 0
        for _, plan in cut:
            part = outs.map(lambda a, s=start, n=plan.n_tiles: a[s : s + n])
            stitched.append((_stitch_outputs(part, spec, plan), plan))
            start += plan.n_tiles
        return stitched

    def raw_each(self, images: Sequence[np.ndarray]) -> list[RawOutputs]:
        """One :class:`RawOutputs` per image, its anomaly map at the image's own size."""
        out = []
        for grids, plan in self.grids(images):
            raw, _ = self.info.head.outputs(
                features=grids.features, distance=grids.distance,
                defect_distance=grids.defect_distance, embed=grids.embed,
            )  # fmt: skip
            out.append(raw._replace(anomaly_map=grid_to_image(raw.anomaly_map, self.info.tiles, plan)))
        return out


def _stitch_outputs(part: TileOutputs, spec: TileSpec, plan: TilePlan) -> TileOutputs:
    """One image's tile outputs -> its grids: C x GH x GW maps, GH x GW distances."""

    def one(a: np.ndarray | None) -> np.ndarray | None:
        if a is None:
            return None
        return stitch(a[:, None], spec, plan)[0] if a.ndim == 3 else stitch(a, spec, plan)

    return TileOutputs(*(one(a) for a in part))


class ResizePredictor(_Base):
    """Format-1/2 bundles: whole images resized to ``info.input_size``, the graph
    returning :class:`RawOutputs`."""

    def _empty(self) -> RawOutputs:
        blank = np.zeros((1, 3, *self.info.input_size), dtype=np.float32)
        return self.engine.run(blank).map(lambda a: a[:0])

    def raw_each(self, images: Sequence[np.ndarray]) -> list[RawOutputs]:
        out = []
        for i in range(0, len(images), self.batch_size):
            batch = self.engine.run(preprocess(list(images[i : i + self.batch_size]), self.info.input_size))
            out += [batch.at(j) for j in range(len(batch.score))]
        return out
