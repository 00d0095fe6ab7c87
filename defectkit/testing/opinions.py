"""A small heavy model and line parts for the second-opinion tests and the loop's browser test.

Synthetic 128 x 128 images (``make_synthetic``, seed 0): six good, four scratches, four
spots. The heavy model is fitted on the first four good and three of each defect (with
two shots per class the embedded backbone calls some of these good images scratches);
``good_004``, ``good_005``, ``scratch_003`` and ``spot_003`` are parts it has not seen.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from PIL import Image

SIZE = 128
GOOD, DEFECTS = 6, 4
#: Shots of the heavy model: the first four good images, the first three of each defect.
HEAVY_SHOTS = {"good": 4, "scratch": 3, "spot": 3}


@cache
def samples():
    from defectkit.datasets import make_synthetic

    samples = make_synthetic(
        n_good=GOOD, defects={"scratch": DEFECTS, "spot": DEFECTS}, size=(SIZE, SIZE), seed=0
    )
    return {s.key: s for s in samples}


def part_png(key: str) -> bytes:
    """The synthetic image ``key`` (e.g. ``spot_002``) as PNG bytes, as a line uploads it."""
    buffer = io.BytesIO()
    Image.fromarray(samples()[key].load_image()).save(buffer, format="PNG")
    return buffer.getvalue()


def fit_heavy(folder: Path, *, good: bool = True) -> Path:
    """Fit the embedded backbone on :data:`HEAVY_SHOTS` (no good shots with ``good=False``:
    a type-only model) and save it to ``folder``."""
    from defectkit.inspect.config import InspectorConfig
    from defectkit.inspect.inspector import Inspector

    shots = [s for key, s in samples().items() if int(key[-3:]) < HEAVY_SHOTS[s.label]]
    if not good:
        shots = [s for s in shots if s.label != "good"]
    # The product's defaults (four good shots, no augmented copies) with a small bank:
    # the labelling tests' fast configuration adds a copy of each good shot, which lifts
    # this model's threshold above spot_003, a small spot at the image's right edge.
    inspector = Inspector(InspectorConfig(bank_size=256, seed=0))
    inspector.fit(shots)
    inspector.save(folder)
    return folder
