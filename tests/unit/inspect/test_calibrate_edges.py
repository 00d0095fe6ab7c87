"""Edge factors in the fit's calibration: learned on the left-out good shots, and each good
shot's own score (its reference and threshold evidence) scaled by factors learned without it."""

from __future__ import annotations

import numpy as np
import pytest

from defectkit.core.head import edge_cells, edge_factors, edge_scaled, top_mean
from defectkit.inspect.calibrate import Shot, build_scoring
from defectkit.inspect.config import InspectorConfig


def _good(rng: np.random.Generator, edge: float) -> Shot:
    """A left-out good shot whose outer ring of patches lies ``edge`` x as far from the bank."""
    m = rng.uniform(0.9, 1.1, (20, 24)).astype(np.float32)
    m *= np.array([edge, 1.0, 1.0], np.float32)[edge_cells(m.shape, 2)]
    return Shot(label="good", features=np.zeros((1, *m.shape), np.float32), distance=m)


def test_a_good_shots_reference_is_scored_with_edges_learned_without_it():
    rng = np.random.default_rng(0)
    framed, plain = _good(rng, 2.0), _good(rng, 1.0)  # only one shot's edges run far
    cfg = InspectorConfig(sigma=0.0, top_fraction=0.002)
    scoring, calibration = build_scoring([framed, plain], [], cfg)
    # a new part is scored with what both shots teach ...
    assert scoring.edges == edge_factors([framed.distance, plain.distance])
    assert scoring.edges[0] > 1.2
    # ... but each shot's own score with what the other one teaches: the framed shot's
    # edges are not discounted by its own frame, so the reference stays honest
    own = edge_scaled(framed.distance, edge_factors([plain.distance]))
    assert scoring.image_ref == pytest.approx(top_mean(own, cfg.top_fraction), rel=1e-5)
    assert scoring.image_ref > top_mean(edge_scaled(framed.distance, scoring.edges), cfg.top_fraction) * 1.2
    assert max(calibration.good_scores) == pytest.approx(1.0)
