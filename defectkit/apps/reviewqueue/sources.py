"""Where the lab reads the lines' review queues: a SQLite file, PostgreSQL, or a daemon.

All answer the same two calls (:class:`ReviewSource`), so the app's review tab does
not care which it was given: ``/path/to/review.db`` (a copy, a share, or the file on
the same PC), ``postgresql://host/db`` (every line writing there) or
``http://line3:8080`` with the daemon's bearer token. :class:`MultiSource` reads
several at once and merges them, least certain first, each item naming its source.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from defectkit.apps.reviewqueue.items import ReviewItem
from defectkit.apps.reviewqueue.store import ReviewStore, ReviewStoreError, is_postgres_url

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
    """A daemon URL (``http://``/``https://``), a PostgreSQL URL, or a review store's
    SQLite file.

    Raises:
        ReviewStoreError: a missing file, a file that is not a review store, an
            unreachable PostgreSQL or one no daemon wrote to, or an empty location.
    """
    where = (where or "").strip()
    if not where:
        raise ReviewStoreError(
            "give a review store: a daemon URL (http://host:port), a PostgreSQL URL "
            "(postgresql://host/db) or a review.db file"
        )
    if where.startswith(("http://", "https://")):
        return DaemonReviewSource(where, token)
    if is_postgres_url(where):
        from defectkit.apps.reviewqueue.pgstore import PostgresReviewStore

        return PostgresReviewStore(where, readonly=True)
    return ReviewStore(Path(where), readonly=True)


class MultiSource:
    """Several lines' review stores read as one queue.

    A source that cannot be read is named in :attr:`problems` and the others are still
    listed: one line's daemon being down must not hide the rest of the queue.
    """

    def __init__(self, sources: list[ReviewSource], unopened: list[str] | None = None):
        if not sources:
            raise ReviewStoreError("; ".join(unopened or ["give at least one review store"]))
        self.sources = {source.name: source for source in sources}
        self.name = ", ".join(self.sources)
        self.unopened = list(unopened or [])  # stores named but not opened: why
        self.problems = list(self.unopened)

    def list(self, *, limit: int = 100) -> list[ReviewItem]:
        """Every source's newest ``limit`` parts, least certain first, each naming its
        source (``item.source``)."""
        self.problems = list(self.unopened)
        items: list[ReviewItem] = []
        for name, source in self.sources.items():
            try:
                items += [replace(item, source=name) for item in source.list(limit=limit)]
            except ReviewStoreError as exc:
                self.problems.append(str(exc))
        if len(self.problems) == len(self.sources) + len(self.unopened):
            raise ReviewStoreError("; ".join(self.problems))
        return sorted(items, key=lambda item: (item.margin, -item.created_at))

    def fetch(self, item: ReviewItem) -> ReviewItem | None:
        source = self.sources.get(item.source or "")
        if source is None:
            raise ReviewStoreError(
                f"{item.source or 'this part'}: not one of the review stores given; load the "
                "queue again"
            )
        found = source.fetch(item)
        return None if found is None else replace(found, source=item.source)


def open_sources(text: str, token: str | None = None) -> MultiSource:
    """The review stores named in ``text``, one per line: a review.db path, a
    PostgreSQL URL, or a daemon URL optionally followed by its own token (``token``
    serves the daemon URLs that name none). Blank lines and ``#`` comments are skipped.

    A store that cannot be opened is left out and named in ``problems``.

    Raises:
        ReviewStoreError: nothing named, a token after something that is not a daemon
            URL, or no store could be opened (every reason, one line).
    """
    sources: list[ReviewSource] = []
    unopened: list[str] = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where, _, own = line.partition(" ")
        daemon = where.startswith(("http://", "https://"))
        if own.strip() and not daemon:
            raise ReviewStoreError(
                f"{where}: only a daemon URL takes a token; give one store per line"
            )
        try:
            sources.append(open_source(where, own.strip() or (token if daemon else None)))
        except ReviewStoreError as exc:
            unopened.append(str(exc))
    if not sources and not unopened:
        open_source("")  # the message that says what to give
    return MultiSource(sources, unopened)


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        return json.loads(exc.read()).get("error", "")
    except (ValueError, OSError, AttributeError):
        return ""
