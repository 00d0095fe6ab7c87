"""The uncertainty band: which parts a line should not decide alone. Torch-free.

A bundle may carry an optional ``review_band`` key in its manifest::

    "review_band": {"score_margin": 0.1, "min_probability": 0.6}

A part is *uncertain* when its score lies within ``score_margin`` (a fraction of the
image threshold) on either side of the threshold, or when the class head's top
probability for a defective (or type-only) part is below ``min_probability``. The
margin is a fraction, not score units, so moving the threshold with
``inspect threshold --image`` moves the band with it.

The key is optional and read with a default (:func:`review_band_of`), so bundles
written before it existed, and manifests of any format version, keep loading; the
daemon marks parts for review only when a bundle has a band. :func:`set_review_band`
rewrites the manifest and its hash like ``set_thresholds`` does (the model files stay,
the bundle's id changes with its settings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defectkit.errors import BundleError, ConfigError
from defectkit.exporters.bundle import read_manifest, write_manifest

#: The manifest key; absent means "no band": every part is decided by the threshold.
REVIEW_BAND_KEY = "review_band"
DEFECT = "defect"


@dataclass(frozen=True)
class ReviewBand:
    """Where a bundle is unsure.

    Attributes:
        score_margin: half-width of the band around the image threshold, as a fraction
            of the threshold's size (0.1: scores within +-10 % of it). 0 turns it off.
        min_probability: a defective or type-only part whose top class probability is
            below this is uncertain about its class. 0 turns it off.
    """

    score_margin: float = 0.0
    min_probability: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.score_margin) and 0.0 <= self.score_margin < 1.0):
            raise ConfigError(
                f"review band score margin must be in [0, 1) (a fraction of the threshold); "
                f"got {self.score_margin}"
            )
        if not (math.isfinite(self.min_probability) and 0.0 <= self.min_probability <= 1.0):
            raise ConfigError(
                f"review band min probability must be in [0, 1]; got {self.min_probability}"
            )

    @property
    def active(self) -> bool:
        return self.score_margin > 0 or self.min_probability > 0

    def score_range(self, threshold: float) -> tuple[float, float]:
        """[low, high) of the scores inside the band for ``threshold``."""
        half = abs(float(threshold)) * self.score_margin
        return float(threshold) - half, float(threshold) + half

    def reason(
        self,
        *,
        score: float,
        threshold: float,
        verdict: str | None,
        probabilities: dict[str, float],
    ) -> str | None:
        """Why a part with these outputs is uncertain, or None when the bundle is sure.

        The score test needs a verdict (type-only bundles have none); the probability
        test applies to parts the bundle calls defective or sorts by type, since for a
        good verdict the class is not what is being decided.
        """
        if verdict is not None and self.score_margin > 0:
            low, high = self.score_range(threshold)
            if low <= score < high:
                return (
                    f"score {score:.4g} within {self.score_margin:.0%} of the threshold "
                    f"{threshold:.4g}"
                )
        if self.min_probability > 0 and probabilities and verdict in (DEFECT, None):
            top_class, top = max(probabilities.items(), key=lambda kv: kv[1])
            if top < self.min_probability:
                return (
                    f"class {top_class} at probability {top:.2f}, below "
                    f"{self.min_probability:.2f}"
                )
        return None

    def to_dict(self) -> dict[str, float]:
        return {"score_margin": self.score_margin, "min_probability": self.min_probability}

    @classmethod
    def from_dict(cls, data: Any) -> ReviewBand:
        if not isinstance(data, dict):
            raise ConfigError(f"review band must be an object, got {type(data).__name__}")
        unknown = set(data) - {"score_margin", "min_probability"}
        if unknown:
            raise ConfigError(f"review band has unknown keys {sorted(unknown)}")
        try:
            return cls(
                float(data.get("score_margin", 0.0)), float(data.get("min_probability", 0.0))
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"review band is unreadable ({exc})") from None


def review_band_of(manifest: dict[str, Any]) -> ReviewBand | None:
    """The band a manifest carries, or None (no key, or a band that is off).

    Raises:
        BundleError: the key is there but unreadable (a hand edit the hash missed).
    """
    data = manifest.get(REVIEW_BAND_KEY)
    if data is None:
        return None
    try:
        band = ReviewBand.from_dict(data)
    except ConfigError as exc:
        raise BundleError(f"manifest {REVIEW_BAND_KEY}: {exc}; set it with --band") from None
    return band if band.active else None


def parse_band(text: str) -> ReviewBand:
    """``--band`` on the command line: ``MARGIN`` or ``MARGIN,MIN_PROBABILITY``.

    ``0.1`` is +-10 % of the threshold; ``0.1,0.6`` adds "top class below 0.6";
    ``0`` removes the band.
    """
    parts = [p.strip() for p in str(text).split(",")]
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise ConfigError(f"--band {text!r}: write MARGIN or MARGIN,MIN_PROBABILITY, e.g. 0.1,0.6")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ConfigError(f"--band {text!r}: not numbers; write e.g. 0.1 or 0.1,0.6") from None
    return ReviewBand(values[0], values[1] if len(values) == 2 else 0.0)


def set_review_band(folder: str | Path, band: ReviewBand) -> ReviewBand:
    """Write ``band`` into a bundle's manifest (removing the key when it is off) and
    re-stamp the manifest's hash. An earlier signature no longer matches: sign again.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if band.active:
        manifest[REVIEW_BAND_KEY] = band.to_dict()
    else:
        manifest.pop(REVIEW_BAND_KEY, None)
    write_manifest(folder, manifest)
    return band


def describe_band(band: ReviewBand | None) -> str:
    """One line for the CLI."""
    if band is None:
        return "review band: none (every part is decided by the threshold)"
    parts = []
    if band.score_margin > 0:
        parts.append(f"scores within {band.score_margin:.0%} of the image threshold")
    if band.min_probability > 0:
        parts.append(f"defect class probability below {band.min_probability:.2f}")
    return "review band: " + " or ".join(parts)
