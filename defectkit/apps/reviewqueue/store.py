"""The bounded review store: a SQLite file of escalated parts, images included.

(Several lines may instead share one PostgreSQL database: :mod:`.pgstore`, the same
contract per line; :func:`open_review_store` picks either.)

Its own file (default ``review.db`` beside the results database), not a table in the
results store: images are large and transient, the results rows are small and
permanent, and a line sharing one PostgreSQL results store keeps its review images
local. Bounded by a count and a byte total: when a new part would exceed either, the
oldest parts are evicted, and every eviction is counted (``evicted``, kept in the file
so a restart does not forget it) - a queue nobody works through loses the oldest
parts, never the line's newest ones, and says how many.

The same part (SHA-256) is kept once: a file retried after a store outage does not
queue twice.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from defectkit.apps.reviewqueue.items import ReviewItem, dumps
from defectkit.errors import DefectkitError

_DDL = (
    """CREATE TABLE IF NOT EXISTS review_items (
        id INTEGER PRIMARY KEY AUTOINCREMENT, sha256 TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL, station TEXT NOT NULL, name TEXT, bundle_id TEXT NOT NULL,
        reason TEXT NOT NULL, policy TEXT NOT NULL, verdict TEXT, model_verdict TEXT,
        label TEXT NOT NULL, score REAL NOT NULL, threshold REAL NOT NULL,
        proposal TEXT NOT NULL, image BLOB NOT NULL, image_bytes INTEGER NOT NULL,
        mask_png BLOB)""",
    "CREATE TABLE IF NOT EXISTS review_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
LIST_COLUMNS = (
    "id, sha256, created_at, station, name, bundle_id, reason, policy, verdict, "
    "model_verdict, label, score, threshold, proposal"
)


#: The columns :meth:`ReviewStore.add` writes, in the order of :func:`item_values`.
INSERT_COLUMNS = (
    "sha256", "created_at", "station", "name", "bundle_id", "reason", "policy", "verdict",
    "model_verdict", "label", "score", "threshold", "proposal", "image", "image_bytes",
    "mask_png",
)  # fmt: skip


class ReviewStoreError(DefectkitError):
    """The review store cannot be opened or written (path, disk, not a review store)."""


@dataclass(frozen=True)
class ReviewLimits:
    """How much the store keeps: ``max_items`` parts and ``max_bytes`` of images."""

    max_items: int = 1000
    max_bytes: int = 2 * 2**30

    def __post_init__(self) -> None:
        if self.max_items < 1 or self.max_bytes < 1:
            raise ReviewStoreError(
                f"review store limits must be positive; got {self.max_items} parts, "
                f"{self.max_bytes} bytes"
            )

    def exceeded(self, count: int, total: int) -> bool:
        return count > self.max_items or total > self.max_bytes

    def oldest_beyond(self, count: int, total: int, rows: Iterable[tuple[int, int]]) -> list[int]:
        """Ids to evict, from ``rows`` (id, image bytes) oldest first, so that ``count``
        parts of ``total`` bytes fit again; the newest part stays even alone over the
        byte limit (one huge image is still worth a look)."""
        doomed: list[int] = []
        for row_id, size in rows:
            if not self.exceeded(count, total) or count == 1:
                break
            doomed.append(row_id)
            count, total = count - 1, total - size
        return doomed


@dataclass(frozen=True)
class Added:
    """What :meth:`ReviewStore.add` did: whether the part was new, and how many old
    parts it evicted."""

    added: bool
    evicted: int


class BoundedStore(Protocol):
    """What the daemon and its ``/v1/review`` need of a review store; the SQLite
    :class:`ReviewStore` and :class:`~.pgstore.PostgresReviewStore` both answer it."""

    name: str

    def add(self, item: ReviewItem) -> Added: ...
    def list(self, *, limit: int = 100, before_id: int | None = None) -> list[ReviewItem]: ...
    def get(self, item_id: int) -> ReviewItem | None: ...
    def fetch(self, item: ReviewItem) -> ReviewItem | None: ...
    def count(self) -> int: ...
    def evicted(self) -> int: ...
    def close(self) -> None: ...


def is_postgres_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def open_review_store(
    target: str | Path, limits: ReviewLimits | None = None, *, station: str
) -> BoundedStore:
    """The daemon's review store: a SQLite file, or a PostgreSQL database shared by
    several lines (each keeps, bounds and counts its own ``station``'s parts)."""
    if is_postgres_url(str(target)):
        from defectkit.apps.reviewqueue.pgstore import PostgresReviewStore

        return PostgresReviewStore(str(target), limits, station=station)
    return ReviewStore(target, limits)


class ReviewStore:
    """Thread-safe; one connection, one lock (writes are one small transaction each)."""

    def __init__(self, path: str | Path, limits: ReviewLimits | None = None, *, readonly=False):
        self.path = Path(path)
        self.name = str(self.path)
        self.limits = limits or ReviewLimits()
        self._lock = threading.Lock()
        try:
            if readonly:
                if not self.path.is_file():
                    raise ReviewStoreError(f"{self.path}: no such review store")
                uri = f"file:{self.path.resolve()}?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
                self._conn.execute("SELECT COUNT(*) FROM review_items").fetchone()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(
                    self.path, timeout=30, isolation_level=None, check_same_thread=False
                )
                self._conn.execute("PRAGMA journal_mode=WAL")
                for statement in _DDL:
                    self._conn.execute(statement)
        except (sqlite3.Error, OSError) as exc:
            raise ReviewStoreError(
                f"review store {self.path}: cannot open it ({exc}); pass another path"
            ) from None

    # -- writing ---------------------------------------------------------------------

    def add(self, item: ReviewItem) -> Added:
        """Keep ``item`` (its image must be set), then evict the oldest parts beyond
        the limits. A part already kept (same SHA-256) is left as it is."""
        values = item_values(item)
        placeholders = ", ".join("?" * len(INSERT_COLUMNS))
        with self._transaction() as conn:
            cur = conn.execute(
                f"INSERT INTO review_items ({', '.join(INSERT_COLUMNS)}) VALUES ({placeholders}) "
                "ON CONFLICT (sha256) DO NOTHING",
                values,
            )
            added = cur.rowcount == 1
            evicted = self._evict(conn) if added else 0
        return Added(added, evicted)

    def _evict(self, conn: sqlite3.Connection) -> int:
        """Delete the oldest parts until both limits hold; count them."""
        count, total = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(image_bytes), 0) FROM review_items"
        ).fetchone()
        doomed: list[int] = []
        if self.limits.exceeded(count, total):
            rows = conn.execute("SELECT id, image_bytes FROM review_items ORDER BY id").fetchall()
            doomed = self.limits.oldest_beyond(count, total, rows)
        if doomed:
            conn.executemany("DELETE FROM review_items WHERE id = ?", [(i,) for i in doomed])
            conn.execute(
                "INSERT INTO review_meta (key, value) VALUES ('evicted', ?) ON CONFLICT (key) "
                "DO UPDATE SET value = CAST(CAST(value AS INTEGER) + ? AS TEXT)",
                (str(len(doomed)), len(doomed)),
            )
        return len(doomed)

    # -- reading ---------------------------------------------------------------------

    def list(self, *, limit: int = 100, before_id: int | None = None) -> list[ReviewItem]:
        """Parts newest first, without their images."""
        sql = f"SELECT {LIST_COLUMNS}, mask_png IS NOT NULL FROM review_items"
        args: list = []
        if before_id is not None:
            sql += " WHERE id < ?"
            args.append(before_id)
        sql += f" ORDER BY id DESC LIMIT {int(limit)}"
        with self._read() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [listed_item(row) for row in rows]

    def get(self, item_id: int) -> ReviewItem | None:
        """One part with its image and mask."""
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {LIST_COLUMNS}, image, mask_png FROM review_items WHERE id = ?",
                (item_id,),
            ).fetchone()
        return whole_item(row)

    def fetch(self, item: ReviewItem) -> ReviewItem | None:
        """``item`` from :meth:`list` with its image and mask (None once evicted)."""
        return self.get(item.id)

    def count(self) -> int:
        with self._read() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM review_items").fetchone()[0])

    def evicted(self) -> int:
        """Parts evicted since the store was created."""
        with self._read() as conn:
            row = conn.execute("SELECT value FROM review_meta WHERE key = 'evicted'").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- internals -------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise ReviewStoreError(f"review store {self.path}: {exc}") from None

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise ReviewStoreError(f"review store {self.path}: {exc}") from None


def item_from_row(row: tuple, *, mask: bytes | None) -> ReviewItem:
    """A stored row (the columns of ``LIST_COLUMNS``) as an item; ``proposal`` is JSON
    text (SQLite) or already decoded (PostgreSQL's JSONB)."""
    (row_id, sha, created, station, name, bundle_id, reason, policy, verdict,
     model_verdict, label, score, threshold, proposal) = row  # fmt: skip
    details = json.loads(proposal) if isinstance(proposal, str) else proposal
    return ReviewItem(
        sha256=sha, created_at=created, station=station, name=name, bundle_id=bundle_id,
        reason=reason, policy=policy, verdict=verdict, model_verdict=model_verdict,
        label=label, score=score, threshold=threshold, proposal=details,
        mask_png=bytes(mask) if mask is not None else None, id=row_id,
    )  # fmt: skip


def listed_item(row: tuple) -> ReviewItem:
    """A row of ``SELECT LIST_COLUMNS, mask_png IS NOT NULL`` (a listing: no image; an
    empty mask stands for "has one")."""
    return item_from_row(row[:-1], mask=b"" if row[-1] else None)


def whole_item(row: tuple | None) -> ReviewItem | None:
    """A row of ``SELECT LIST_COLUMNS, image, mask_png`` with its image; None for none."""
    if row is None:
        return None
    item = item_from_row(row[:-2], mask=row[-1])
    item.image = bytes(row[-2])
    return item


def item_values(item: ReviewItem) -> tuple:
    """``item`` as the values of :data:`INSERT_COLUMNS` (its image must be set)."""
    if item.image is None:
        raise ValueError("a review item needs its image")
    return (
        item.sha256, item.created_at, item.station, item.name, item.bundle_id, item.reason,
        item.policy, item.verdict, item.model_verdict, item.label, float(item.score),
        float(item.threshold), dumps(item.proposal), item.image, len(item.image),
        item.mask_png,
    )  # fmt: skip
