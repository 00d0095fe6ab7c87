"""Two opinions about one escalated part: the line bundle's and a heavier model's.

An :class:`Opinion` is what one model said (verdict, score, class and its probability,
caption, defect mask); :class:`SecondOpinion` pairs the line's opinion (read from the
review item the daemon stored) with the heavy model's and says where they disagree.
Plain data, no model code: the labelling app and ``inspect review second-opinion``
show the same pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from defectkit.apps.reviewqueue.items import ReviewItem, encode_mask


@dataclass(frozen=True)
class Opinion:
    """One model's answer about a part.

    Attributes:
        verdict: good / defect, or None for a type-only model (it sorts, never judges).
        label: the class it named (good, a defect class, or anomaly).
        score: the anomaly score (NaN for a type-only model).
        probability: the named class's probability, or None when the model gave none.
        mask_png: the defect mask as a 1-bit PNG at the image's size, or None.
    """

    model: str
    verdict: str | None
    label: str
    score: float
    threshold: float
    probability: float | None
    caption: str | None
    mask_png: bytes | None = field(default=None, repr=False)

    @classmethod
    def of_line(cls, item: ReviewItem) -> Opinion:
        """The line bundle's opinion, as the daemon stored it with the part."""
        probabilities = item.proposal.get("probabilities") or {}
        return cls(
            model=item.bundle_id, verdict=item.model_verdict, label=item.label,
            score=float(item.score), threshold=float(item.threshold),
            probability=_probability(probabilities, item.label), caption=item.caption(),
            mask_png=item.mask_png,
        )  # fmt: skip

    @classmethod
    def of_result(cls, model: str, result: Any) -> Opinion:
        """An :class:`~defectkit.core.results.InspectionResult` (either model's)."""
        return cls(
            model=model, verdict=result.verdict, label=str(result.label),
            score=float(result.score), threshold=float(result.threshold),
            probability=_probability(result.probabilities, str(result.label)),
            caption=result.caption, mask_png=encode_mask(getattr(result, "mask", None)),
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "verdict": self.verdict,
            "label": self.label,
            "score": None if math.isnan(self.score) else round(self.score, 6),
            "threshold": round(self.threshold, 6),
            "probability": None if self.probability is None else round(self.probability, 4),
            "caption": self.caption,
            "has_mask": self.mask_png is not None,
        }

    def describe(self) -> str:
        """One line: "defect, class scratch (p 0.62), score 0.51 / threshold 0.5"."""
        verdict = self.verdict or "no verdict (type-only)"
        prob = "" if self.probability is None else f" (p {self.probability:.2f})"
        score = "" if math.isnan(self.score) else f", score {self.score:.4g} / {self.threshold:.4g}"
        return f"{verdict}, class {self.label}{prob}{score}"


@dataclass(frozen=True)
class SecondOpinion:
    """The line's and the heavy model's opinion of one queued part."""

    item: ReviewItem
    line: Opinion
    heavy: Opinion
    cached: bool = False

    @property
    def disagreement(self) -> str | None:
        """What the two disagree on ("verdict defect vs good", "class scratch vs spot"), or
        None. Verdicts are compared only where both models give one."""
        parts = []
        if self.line.verdict and self.heavy.verdict and self.line.verdict != self.heavy.verdict:
            parts.append(f"verdict {self.line.verdict} vs {self.heavy.verdict}")
        if self.line.label != self.heavy.label:
            parts.append(f"class {self.line.label} vs {self.heavy.label}")
        return "; ".join(parts) or None

    @property
    def disagrees(self) -> bool:
        return self.disagreement is not None

    def to_json(self) -> dict[str, Any]:
        item = self.item
        return {
            "id": item.id,
            "sha256": item.sha256,
            "name": item.name,
            "station": item.station,
            "reason": item.reason,
            "disagreement": self.disagreement,
            "line": self.line.to_json(),
            "heavy": self.heavy.to_json(),
            "cached": self.cached,
        }


def disagreements_first(pairs: list[SecondOpinion]) -> list[SecondOpinion]:
    """Disagreements first, then the line's least certain parts (as the queue orders them)."""
    return sorted(pairs, key=lambda p: (not p.disagrees, p.item.margin, -p.item.created_at))


def _probability(probabilities: dict[str, float], label: str) -> float | None:
    if label in probabilities:
        return float(probabilities[label])
    return None
