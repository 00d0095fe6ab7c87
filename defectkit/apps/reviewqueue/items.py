"""One escalated part: what the line saw, what the model proposed, and the image."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
from PIL import Image


@dataclass
class ReviewItem:
    """A part the daemon was unsure about.

    Attributes:
        sha256: the image's content hash (the results row has the same one).
        reason: why it was escalated ("score 0.49 within 10% of the threshold 0.5").
        policy: what the line did meanwhile (hold, reject or accept).
        verdict: the verdict the line was given (by the policy).
        model_verdict, label, score, threshold: the model's own answer.
        proposal: the model's result JSON (probabilities, defects, caption): what the
            review queue pre-fills.
        image: the encoded image as received (None in listings).
        mask_png: the model's defect mask as a 1-bit PNG at the image's size, or None.
        source: the review store it was listed from (set when the app reads several).
    """

    sha256: str
    created_at: float
    station: str
    name: str | None
    bundle_id: str
    reason: str
    policy: str
    verdict: str | None
    model_verdict: str | None
    label: str
    score: float
    threshold: float
    proposal: dict[str, Any] = field(default_factory=dict)
    image: bytes | None = field(default=None, repr=False)
    mask_png: bytes | None = field(default=None, repr=False)
    id: int | None = None
    source: str | None = None

    @property
    def margin(self) -> float:
        """Distance of the score from the threshold, relative to it (smaller = less sure)."""
        scale = abs(self.threshold) or 1.0
        return abs(self.score - self.threshold) / scale

    def caption(self) -> str | None:
        return self.proposal.get("caption")

    def mask(self) -> np.ndarray | None:
        """The model's defect mask (H x W bool), or None when it proposed none."""
        return decode_mask(self.mask_png)

    def to_json(self) -> dict[str, Any]:
        """The listing shape of ``GET /v1/review`` (no image bytes)."""
        return {
            "id": self.id,
            "sha256": self.sha256,
            "created_at": datetime.fromtimestamp(self.created_at, tz=timezone.utc).isoformat(),
            "station": self.station,
            "name": self.name,
            "bundle_id": self.bundle_id,
            "reason": self.reason,
            "policy": self.policy,
            "verdict": self.verdict,
            "model_verdict": self.model_verdict,
            "label": self.label,
            "score": self.score,
            "threshold": self.threshold,
            "has_mask": self.mask_png is not None,
            "proposal": self.proposal,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReviewItem:
        """The inverse of :meth:`to_json` (image and mask fetched separately)."""
        created = datetime.fromisoformat(data["created_at"]).timestamp()
        keys = ("sha256", "station", "name", "bundle_id", "reason", "policy", "verdict",
                "model_verdict", "label", "score", "threshold", "proposal", "id")  # fmt: skip
        return cls(created_at=created, source=data.get("source"), **{k: data[k] for k in keys})


def encode_mask(mask: np.ndarray | None) -> bytes | None:
    """A boolean mask as a 1-bit PNG (a few KB even at 5 MP); None for an empty mask."""
    if mask is None or not np.any(mask):
        return None
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(mask, dtype=bool)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def decode_mask(png: bytes | None) -> np.ndarray | None:
    """The inverse of :func:`encode_mask`: H x W bool, or None for no mask."""
    if not png:
        return None
    return np.asarray(Image.open(io.BytesIO(png)).convert("L")) > 0


def dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))
