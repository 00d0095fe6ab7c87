"""The one Predictor: batches, the one preprocessing, decide + describe per image."""

from __future__ import annotations

import numpy as np
import pytest

from defectkit.core.caption import CaptionContext
from defectkit.core.predictor import BATCH_SIZE, ModelInfo, Predictor
from defectkit.core.results import RawOutputs, Thresholds
from defectkit.errors import ConfigError


class BrightnessEngine:
    """A graph stand-in: score = mean brightness x 4, the map is the image's gray value."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def run(self, x: np.ndarray) -> RawOutputs:
        self.batches.append(len(x))
        gray = x.mean(axis=1)  # N x H x W in [0, 1]
        score = 4.0 * gray.mean(axis=(1, 2))
        logits = np.stack([-score, score], axis=1)
        return RawOutputs(score, 4.0 * gray, logits, np.stack([-score, score], axis=1))


INFO = ModelInfo(
    classes=("good", "dent"), thresholds=Thresholds(1.0, 1.0, min_defect_area=1), input_size=(16, 16),
    caption_context=CaptionContext(("good", "dent"), (None, "a dent from the press")),
)


def image(value: int, size=(24, 32)) -> np.ndarray:
    return np.full((*size, 3), value, np.uint8)


def test_batches_of_the_one_batch_size_and_results_at_the_image_size():
    engine = BrightnessEngine()
    images = [image(10)] * (BATCH_SIZE + 3) + [image(250, (40, 20))]
    results = Predictor(engine, INFO).inspect(images, [f"{i}.png" for i in range(len(images))])
    assert engine.batches == [BATCH_SIZE, 4]
    assert [r.verdict for r in results[:2]] == ["good", "good"] and results[-1].verdict == "defect"
    assert results[-1].anomaly_map.shape == (40, 20) and results[-1].path == f"{len(images) - 1}.png"
    assert results[-1].caption.endswith("like the labelled example 'a dent from the press'.")
    assert set(results[0].timings) == {"model"}


def test_raw_concatenates_and_an_empty_list_keeps_the_shapes():
    predictor = Predictor(BrightnessEngine(), INFO, batch_size=2)
    raw = predictor.raw([image(10), image(20), image(30)])
    assert raw.score.shape == (3,) and raw.anomaly_map.shape == (3, 16, 16)
    empty = predictor.raw([])
    assert empty.score.shape == (0,) and empty.anomaly_map.shape == (0, 16, 16)
    assert empty.class_logits.shape == (0, 2) and empty.vocab_scores is None


def test_with_thresholds_is_a_new_predictor_under_the_one_rule():
    predictor = Predictor(BrightnessEngine(), INFO)
    lower = predictor.with_thresholds(image=0.2)
    assert lower.info.thresholds == Thresholds(0.2, 0.2, 1) and predictor.info.thresholds.image == 1.0
    assert lower.engine is predictor.engine
    assert lower.inspect([image(30)])[0].verdict == "defect"
    assert predictor.inspect([image(30)])[0].verdict == "good"


def test_paths_must_match_and_batch_size_must_be_positive():
    with pytest.raises(ConfigError, match="2 images but 1 paths"):
        Predictor(BrightnessEngine(), INFO).inspect([image(1), image(2)], ["a.png"])
    with pytest.raises(ConfigError, match="batch_size"):
        Predictor(BrightnessEngine(), INFO, batch_size=0)
