"""Where the lab reads a line's review queue: the SQLite file, or the daemon over HTTP.

Both answer the same two calls (:class:`ReviewSource`), so the app's review tab does
not care which it was given: ``/path/to/review.db`` (a copy, a share, or the file on
the same PC) or ``http://line3:8080`` with the daemon's bearer token.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from defectkit.apps.reviewqueue.items import ReviewItem
from defectkit.apps.reviewqueue.store import ReviewStore, ReviewStoreError

#: Seconds an HTTP call to a daemon may take (the daemon answers from its own store).
HTTP_TIMEOUT_S = 10.0


class ReviewSource(Protocol):
    """A line's review queue, read-only."""

    name: str

    def list(self, *, limit: int = 100) -> list[ReviewItem]: ...

    def fetch(self, item: ReviewItem) -> ReviewItem | None:
        """``item`` (from :meth:`list`) with its image and mask; None once evicted."""
        ...


class DaemonReviewSource:
    """``GET /v1/review`` of a running daemon (``url`` like ``http://line3:8080``)."""

    def __init__(self, url: str, token: str | None = None):
        self.url, self.token = url.rstrip("/"), (token or "").strip() or None
        self.name = self.url

    def list(self, *, limit: int = 100) -> list[ReviewItem]:
        data = json.loads(self._get(f"/v1/review?limit={int(limit)}"))
        return [ReviewItem.from_json(item) for item in data["items"]]

    def fetch(self, item: ReviewItem) -> ReviewItem | None:
        image = self._get(f"/v1/review/{item.id}/image", missing_ok=True)
        if image is None:
            return None
        mask = self._get(f"/v1/review/{item.id}/mask", missing_ok=True)
        return replace(item, image=image, mask_png=mask)

    def _get(self, path: str, *, missing_ok: bool = False) -> bytes | None:
        request = urllib.request.Request(self.url + path)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and missing_ok:
                return None
            detail = _error_text(exc)
            hint = "; check the token" if exc.code == 401 else ""
            raise ReviewStoreError(f"{self.url}{path}: HTTP {exc.code} {detail}{hint}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ReviewStoreError(
                f"{self.url}: cannot reach the daemon ({reason}); check the URL and that "
                "`inspect serve` runs"
            ) from None


def open_source(where: str, token: str | None = None) -> ReviewSource:
    """A daemon URL (``http://``/``https://``) or a review store's SQLite file.

    Raises:
        ReviewStoreError: a missing file, a file that is not a review store, or an
            empty location; a PostgreSQL URL (results only, no review images) too.
    """
    where = (where or "").strip()
    if not where:
        raise ReviewStoreError(
            "give a review store: a daemon URL (http://host:port) or its review.db file"
        )
    if where.startswith(("http://", "https://")):
        return DaemonReviewSource(where, token)
    if where.startswith(("postgresql://", "postgres://")):
        raise ReviewStoreError(
            "review images are kept in each daemon's review.db, not in PostgreSQL; give the "
            "daemon's URL or its review.db file"
        )
    return ReviewStore(Path(where), readonly=True)


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        return json.loads(exc.read()).get("error", "")
    except (ValueError, OSError, AttributeError):
        return ""
