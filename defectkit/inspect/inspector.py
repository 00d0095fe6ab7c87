"""The Inspector: what users hold - an InspectorModel and the Predictor over it.

::

    from defectkit import Inspector
    inspector = Inspector()                      # embedded efficientnet_lite0
    inspector.fit(shots)                         # defectkit.inspect.fit.fit
    results = inspector.inspect(images)          # defectkit.core.predictor.Predictor
    inspector.save("model/"); Inspector.load("model/")

The model (``inspector.model``) is the exported graph; fitting, saving and predicting
live beside it. A loaded bundle (``defectkit.exporters.runtime.Bundle``) answers the
same ``inspect``, ``raw``, ``set_threshold``, ``classes`` and ``thresholds``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from defectkit.core.caption import CaptionContext
from defectkit.core.predictor import Predictor
from defectkit.core.results import InspectionResult, RawOutputs, Thresholds, TileOutputs
from defectkit.datasets.base import Sample
from defectkit.fewshot.support import SupportSet
from defectkit.inspect.backbones import FeatureExtractor
from defectkit.inspect.config import InspectorConfig
from defectkit.inspect.feature_cache import FeatureCache
from defectkit.inspect.fit import FitReport, fit
from defectkit.inspect.model import InspectorModel

__all__ = ["Inspector", "InspectorConfig", "TorchEngine"]


class TorchEngine:
    """An InspectorModel as a Predictor engine: numpy tiles in, numpy :class:`TileOutputs` out."""

    def __init__(self, model: InspectorModel) -> None:
        self.model = model

    @torch.inference_mode()
    def run(self, x: np.ndarray) -> TileOutputs:
        return self.model(torch.from_numpy(x)).map(lambda t: t.numpy())


class Inspector:
    """Few-shot inspector: ``fit`` from labelled shots, then ``inspect`` images.

    Args:
        config: everything that defines the inspector besides the shots.
        backbone: a ready feature extractor instead of the registry's.
    """

    def __init__(self, config: InspectorConfig | None = None, *, backbone: FeatureExtractor | None = None) -> None:
        self.model = InspectorModel(config, backbone=backbone)

    @classmethod
    def from_model(cls, model: InspectorModel) -> Inspector:
        inspector = cls.__new__(cls)
        inspector.model = model
        return inspector

    # ------------------------------------------------------------------ fit, save, load
    def fit(
        self,
        support: SupportSet | Sequence[Sample],
        *,
        unlabelled: Sequence[np.ndarray | str | Path] = (),
        progress: bool = False,
        cache: FeatureCache | None = None,
    ) -> FitReport:
        """Fill the memory banks and the head from labelled shots (and unlabelled line
        images, mostly good) and calibrate thresholds (:func:`defectkit.inspect.fit.fit`).

        Incremental fit: pass the same :class:`~defectkit.inspect.feature_cache.FeatureCache`
        to every fit, and a refit after adding shots (or a class) runs the backbone on
        the new images only; the result equals a fit without the cache."""
        return fit(self.model, support, unlabelled=unlabelled, progress=progress, cache=cache)

    def save(self, directory: str | Path) -> Path:
        """Write the fitted inspector to a model folder (see :mod:`defectkit.inspect.saved`)."""
        from defectkit.inspect.saved import save_inspector

        return save_inspector(self, directory)

    @classmethod
    def load(cls, directory: str | Path) -> Inspector:
        """Rebuild a fitted inspector from its model folder."""
        from defectkit.inspect.saved import load_inspector

        return load_inspector(directory)

    # ------------------------------------------------------------------ what it knows
    @property
    def config(self) -> InspectorConfig:
        return self.model.config

    @property
    def backbone(self) -> FeatureExtractor:
        return self.model.backbone

    @property
    def fitted(self) -> bool:
        return self.model.fitted

    @property
    def input_size(self) -> tuple[int, int]:
        return self.model.input_size

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.model.output_names

    @property
    def classes(self) -> tuple[str, ...]:
        return self.model.classes

    @property
    def caption_context(self) -> CaptionContext:
        return self.model.caption_context

    @property
    def support_summary(self) -> dict:
        return self.model.support_summary

    @property
    def thresholds(self) -> Thresholds | None:
        return self.model.thresholds

    @thresholds.setter
    def thresholds(self, value: Thresholds) -> None:
        self.model.thresholds = value

    def set_threshold(self, image: float | None = None, pixel: float | None = None) -> None:
        """Move thresholds without refitting (:meth:`Thresholds.moved`: a lowered image
        threshold takes the pixel threshold with it)."""
        self.model.require_fitted()
        self.model.thresholds = self.model.thresholds.moved(image=image, pixel=pixel)

    # ------------------------------------------------------------------ predict
    @property
    def predictor(self) -> Predictor:
        """The :class:`~defectkit.core.predictor.Predictor` over this model, at its
        current thresholds."""
        return Predictor(TorchEngine(self.model), self.model.info(), batch_size=self.config.batch_size)

    def raw(self, images: Sequence[np.ndarray]) -> RawOutputs:
        """Raw outputs for a list of images of one size (numpy), batched."""
        return self.predictor.raw(images)

    def raw_each(self, images: Sequence[np.ndarray]) -> list[RawOutputs]:
        """Raw outputs, one per image (any sizes)."""
        return self.predictor.raw_each(images)

    def inspect(self, images: Sequence[np.ndarray], paths: Sequence[str | None] | None = None) -> list[InspectionResult]:
        """Inspect images (H x W x 3 uint8, any size) -> one result each.

        Same signature as the exported runtime's ``Bundle.inspect``.
        """
        return self.predictor.inspect(images, paths)
