"""Review-store test doubles: a made-up escalated part (no model, no daemon)."""

from __future__ import annotations

import numpy as np

from defectkit.apps.reviewqueue.items import ReviewItem, encode_mask


def review_item(
    n: int, *, station: str = "line-1", size: int = 100, score: float = 0.49,
    mask: np.ndarray | None = None,
) -> ReviewItem:  # fmt: skip
    """Part ``n``: name ``{n}.png``, SHA-256 ``n`` in hex, ``size`` image bytes of value
    ``n``, created at ``1000 + n`` (so a higher ``n`` is newer)."""
    return ReviewItem(
        sha256=f"{n:064x}", created_at=1000.0 + n, station=station, name=f"{n}.png",
        bundle_id="abc", reason="score near", policy="hold", verdict="hold",
        model_verdict="good", label="good", score=score, threshold=0.5,
        proposal={"caption": f"part {n}", "probabilities": {"good": 0.6}},
        image=bytes([n % 256]) * size, mask_png=encode_mask(mask),
    )  # fmt: skip
