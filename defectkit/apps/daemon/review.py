"""Uncertain parts: mark them ``review``, answer by the site's policy, keep their images.

A bundle with a ``review_band`` in its manifest
(:mod:`defectkit.exporters.review_band`) says where it is unsure. For a part in the
band the daemon still answers at once - a line cannot wait for a person - with the
verdict the site chose (``--review-policy``):

- ``hold``: verdict ``hold``; the part goes to a holding bin until someone looks;
- ``reject``: verdict ``defect``; scrap or rework it, as for a sure defect;
- ``accept``: verdict ``good``; ship it and look at it later.

The model's own verdict and label stay in the answer (``review.model_verdict``); the
image, the model's proposal and its mask go to the bounded review store
(:mod:`defectkit.apps.reviewqueue.store`, or PostgreSQL shared by several lines:
:mod:`defectkit.apps.reviewqueue.pgstore`) for the lab's review queue. Keeping an image
is best effort: a full review store must not stop the line, so a failure is counted
and logged, and the part is still answered and recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from defectkit.apps.daemon.logs import log_event
from defectkit.apps.daemon.metrics import DaemonMetrics
from defectkit.apps.reviewqueue.items import ReviewItem, encode_mask
from defectkit.apps.reviewqueue.store import BoundedStore, ReviewStoreError
from defectkit.errors import BundleError
from defectkit.exporters.review_band import ReviewBand, review_band_of

POLICIES = ("hold", "reject", "accept")
#: The verdict each policy answers for an uncertain part.
POLICY_VERDICT = {"hold": "hold", "reject": "defect", "accept": "good"}


@dataclass(frozen=True)
class ReviewMark:
    """Why a part is uncertain and what the line was told."""

    reason: str
    policy: str
    verdict: str | None  # what the line gets
    model_verdict: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "reason": self.reason, "policy": self.policy, "model_verdict": self.model_verdict,
        }  # fmt: skip


def mark(band: ReviewBand | None, policy: str, result: Any) -> ReviewMark | None:
    """The mark for one result (an ``InspectionResult``), or None when the bundle is sure.

    A type-only bundle (no verdict) keeps no verdict under ``reject``/``accept``;
    ``hold`` still tells the line to hold the part.
    """
    if band is None:
        return None
    reason = band.reason(
        score=float(result.score), threshold=float(result.threshold), verdict=result.verdict,
        probabilities=dict(result.probabilities),
    )  # fmt: skip
    if reason is None:
        return None
    verdict = POLICY_VERDICT[policy]
    if result.verdict is None and policy != "hold":
        verdict = None
    return ReviewMark(reason, policy, verdict, result.verdict)


class ReviewDesk:
    """The daemon's side of the review queue: band per bundle, policy, store, metrics."""

    def __init__(
        self, *, policy: str, store: BoundedStore | None, metrics: DaemonMetrics, station: str
    ):
        if policy not in POLICIES:
            raise ValueError(f"unknown review policy {policy!r}")
        self.policy, self.store, self.metrics, self.station = policy, store, metrics, station
        self._bands: dict[str, ReviewBand | None] = {}

    def band(self, bundle: Any) -> ReviewBand | None:
        """The bundle's band, read once per bundle id (a reload brings its own)."""
        if bundle.id not in self._bands:
            try:
                self._bands[bundle.id] = review_band_of(bundle.manifest)
            except BundleError as exc:
                log_event("review_band_unreadable", level=logging.ERROR, bundle_id=bundle.id,
                          error=str(exc))  # fmt: skip
                self._bands[bundle.id] = None
        return self._bands[bundle.id]

    def mark(self, bundle: Any, result: Any) -> ReviewMark | None:
        found = mark(self.band(bundle), self.policy, result)
        if found is not None:
            self.metrics.reviews.inc(policy=found.policy)
        return found

    def keep(
        self, found: ReviewMark, *, sha256: str, name: str | None, data: bytes, result: Any,
        body: dict[str, Any], bundle_id: str, now: float,
    ) -> None:  # fmt: skip
        """Put the part's image and the model's proposal in the review store."""
        if self.store is None:
            return
        item = ReviewItem(
            sha256=sha256, created_at=now, station=self.station, name=name, bundle_id=bundle_id,
            reason=found.reason, policy=found.policy, verdict=found.verdict,
            model_verdict=found.model_verdict, label=result.label, score=float(result.score),
            threshold=float(result.threshold), proposal=_proposal(body), image=data,
            mask_png=encode_mask(getattr(result, "mask", None)),
        )  # fmt: skip
        try:
            added = self.store.add(item)
        except (ReviewStoreError, OSError, ValueError) as exc:
            self.metrics.errors.inc(kind="review_store")
            log_event("review_store_failed", level=logging.WARNING, name=name, error=str(exc))
            return
        if added.evicted:
            self.metrics.review_evicted.inc(added.evicted)
            log_event("review_evicted", level=logging.INFO, evicted=added.evicted)

    def queued(self) -> float:
        """Parts in the review store now (for the gauge); NaN when it cannot say."""
        if self.store is None:
            return 0.0
        try:
            return float(self.store.count())
        except ReviewStoreError:
            return float("nan")


def _proposal(body: dict[str, Any]) -> dict[str, Any]:
    """The parts of the answer a reviewer needs pre-filled (no timings, no overlay path)."""
    keys = ("label", "probabilities", "defects", "caption", "score", "threshold", "verdict")
    return {k: body[k] for k in keys if k in body}
