"""One Predictor for the PyTorch model and for every bundle engine.

An :class:`Engine` runs the graph: N x 3 x H x W float32 in [0, 1] -> :class:`RawOutputs`.
The PyTorch path (``defectkit.inspect.inspector.TorchEngine``) and the runtime's
OpenVINO and ONNX Runtime engines are engines; everything around the graph is here,
written once: batching, the one :func:`~defectkit.core.images.preprocess`, timings,
then :func:`~defectkit.core.decide.decide` and
:func:`~defectkit.core.caption.describe` per image. So a model folder and its bundle
give the same verdicts and captions, and only the graph in between differs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from defectkit.core.caption import CaptionContext, describe
from defectkit.core.decide import decide
from defectkit.core.images import preprocess
from defectkit.core.results import InspectionResult, RawOutputs, Thresholds
from defectkit.errors import ConfigError

#: Images per engine call: large enough to use the cores, small enough that a 500-image
#: list does not allocate 500 maps at once. (Exported graphs accept larger batches.)
BATCH_SIZE = 16


class Engine(Protocol):
    """Runs the graph on preprocessed images: N x 3 x H x W float32 in [0, 1] -> raw
    outputs as numpy (float32)."""

    def run(self, x: np.ndarray) -> RawOutputs: ...


@dataclass(frozen=True)
class ModelInfo:
    """What a Predictor needs beside the engine: fixed by the fit, except thresholds.

    Attributes:
        classes: class names in logit order (``good`` first).
        thresholds: where verdicts and masks are cut.
        input_size: (H, W) images are resized to before the engine.
        caption_context: the shots and vocabulary the caption evidence refers to.
        support_summary: counts of the shots it was fitted from (for reports).
    """

    classes: tuple[str, ...]
    thresholds: Thresholds
    input_size: tuple[int, int]
    caption_context: CaptionContext = field(default_factory=CaptionContext)
    support_summary: dict = field(default_factory=dict)


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
) -> InspectionResult:
    """One image's raw outputs -> :class:`InspectionResult`: decide, then describe.

    Args:
        raw: this image's outputs (:meth:`RawOutputs.at`).
        image: the inspected image; compact defects' areas are read off it, and its
            size is the result's (unless ``image_size`` says otherwise).
        image_size: (H, W) the map, mask and boxes are reported at; default: the
            image's, else the map's.
    """
    if image_size is None and image is not None:
        image_size = np.asarray(image).shape[:2]
    decision = decide(raw, thresholds, classes, image_size=image_size)
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
    )


class Predictor:
    """Batches images through an engine and turns its outputs into results.

    Args:
        engine: runs the graph (PyTorch, OpenVINO, ONNX Runtime, or a test double).
        info: classes, thresholds, input size and caption context of the fitted model.
        batch_size: images per engine call.
    """

    def __init__(self, engine: Engine, info: ModelInfo, *, batch_size: int = BATCH_SIZE) -> None:
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.engine, self.info, self.batch_size = engine, info, int(batch_size)

    def with_thresholds(
        self, image: float | None = None, pixel: float | None = None,
        min_defect_area: int | None = None,
    ) -> Predictor:  # fmt: skip
        """The same engine at other thresholds (:meth:`Thresholds.moved`: the pixel
        threshold follows a lowered image threshold)."""
        moved = self.info.thresholds.moved(image, pixel, min_defect_area)
        return Predictor(self.engine, replace(self.info, thresholds=moved), batch_size=self.batch_size)

    def _run(self, images: Sequence[np.ndarray]) -> RawOutputs:
        return self.engine.run(preprocess(list(images), self.info.input_size))

    def raw(self, images: Sequence[np.ndarray]) -> RawOutputs:
        """Raw outputs of ``images`` (any size; batched), concatenated: score N,
        anomaly_map N x H x W at the input size, class_logits N x K, and the caption
        evidence."""
        if len(images) == 0:  # one blank image through the engine gives the shapes
            blank = np.zeros((1, 3, *self.info.input_size), dtype=np.float32)
            return self.engine.run(blank).map(lambda a: a[:0])
        bs = self.batch_size
        return RawOutputs.concat([self._run(images[i : i + bs]) for i in range(0, len(images), bs)])

    def inspect(
        self, images: Sequence[np.ndarray], paths: Sequence[str | None] | None = None
    ) -> list[InspectionResult]:
        """Inspect images (H x W x 3 uint8, or anything ``preprocess`` converts) -> results.

        ``timings["model"]`` is each image's share of its batch's preprocessing and
        inference, in milliseconds.
        """
        paths = list(paths) if paths is not None else [None] * len(images)
        if len(paths) != len(images):
            raise ConfigError(f"{len(images)} images but {len(paths)} paths")
        info, results = self.info, []
        for start in range(0, len(images), self.batch_size):
            chunk = list(images[start : start + self.batch_size])
            t0 = time.perf_counter()
            raw = self._run(chunk)
            per_image = (time.perf_counter() - t0) * 1e3 / len(chunk)
            for i, image in enumerate(chunk):
                results.append(
                    inspection_result(
                        raw.at(i), classes=info.classes, thresholds=info.thresholds,
                        context=info.caption_context, image=image, path=paths[start + i],
                        timings={"model": per_image},
                    )  # fmt: skip
                )
        return results
