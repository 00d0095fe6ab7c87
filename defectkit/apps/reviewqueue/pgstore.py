"""The review store in PostgreSQL: several lines' escalated parts in one database.

The same contract as the SQLite :class:`~.store.ReviewStore` (:class:`~.store.BoundedStore`),
per line: every row names its ``station`` (``inspect serve --station``), and a daemon
keeps, bounds and counts only its own station's parts - one line's burst never evicts
another line's parts, and each line's ``evicted`` survives restarts in
``review_evictions``. The same part is kept once per station. A reader without a
station (the lab's app, ``inspect review``) sees every line's parts, each naming its
station.

Why the choices:
- The daemon's writes are best effort (a review store outage must not stop the line):
  a failed connection is retried at most every :data:`RETRY_S` seconds, and until then
  :meth:`add` fails at once instead of waiting on a server that is down; statements
  time out after :data:`STATEMENT_TIMEOUT_MS`. The caller counts the failure.
- One transaction per part, holding a per-station advisory lock, so two daemons
  misconfigured with one station still evict consistently.
- ``proposal`` is JSONB, so the lab can query proposals in SQL; images are BYTEA.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from defectkit.apps.reviewqueue.items import ReviewItem
from defectkit.apps.reviewqueue.store import (
    INSERT_COLUMNS,
    LIST_COLUMNS,
    Added,
    ReviewLimits,
    ReviewStoreError,
    item_values,
    listed_item,
    whole_item,
)

#: Seconds between reconnection attempts after the server did not answer.
RETRY_S = 30.0
#: Seconds a connection attempt may take (a worker waits this long at most per retry).
CONNECT_TIMEOUT_S = 5
#: Longest statement; a hung server fails the write instead of holding a worker.
STATEMENT_TIMEOUT_MS = 10_000

_DDL = (
    # Several daemons may start at once against one database: serialise the DDL.
    "SELECT pg_advisory_xact_lock(727275)",
    """CREATE TABLE IF NOT EXISTS review_items (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        sha256 TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, station TEXT NOT NULL,
        name TEXT, bundle_id TEXT NOT NULL, reason TEXT NOT NULL, policy TEXT NOT NULL,
        verdict TEXT, model_verdict TEXT, label TEXT NOT NULL, score DOUBLE PRECISION NOT NULL,
        threshold DOUBLE PRECISION NOT NULL, proposal JSONB NOT NULL, image BYTEA NOT NULL,
        image_bytes BIGINT NOT NULL, mask_png BYTEA,
        CONSTRAINT review_items_station_sha UNIQUE (station, sha256))""",
    "CREATE INDEX IF NOT EXISTS review_items_station_id ON review_items (station, id)",
    """CREATE TABLE IF NOT EXISTS review_evictions (
        station TEXT PRIMARY KEY, evicted BIGINT NOT NULL)""",
)


def redact(url: str) -> str:
    """``url`` without its password, for messages and the app's source names."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class PostgresReviewStore:
    """One connection, one lock; writes are one small transaction each.

    Args:
        url: ``postgresql://user[:password]@host[:port]/database``.
        station: the line this daemon writes as; None to read every line's parts
            (then :meth:`add` is refused).
        readonly: a reader (the app): connect now, create nothing, and fail with a
            one-line :class:`ReviewStoreError` when the server or the table is missing.
    """

    def __init__(
        self, url: str, limits: ReviewLimits | None = None, *, station: str | None = None,
        readonly: bool = False,
    ):  # fmt: skip
        self.url, self.name = url, redact(url)
        self.limits = limits or ReviewLimits()
        self.station, self.readonly = station, readonly
        self.problem: str | None = None  # why the last connection attempt failed
        self._psycopg = _import_psycopg()
        self._lock = threading.Lock()
        self._conn: Any = None
        self._retry_at = 0.0
        with self._lock:
            try:
                self._connection()
            except ReviewStoreError:
                if readonly:
                    raise  # the daemon starts anyway and retries: the line must not wait

    # -- writing ---------------------------------------------------------------------

    def add(self, item: ReviewItem) -> Added:
        """Keep ``item`` under this store's station, then evict that station's oldest
        parts beyond the limits. A part the station already keeps is left as it is."""
        if self.station is None or self.readonly:
            raise ReviewStoreError(f"review store {self.name}: opened for reading only")
        values = list(item_values(item))
        values[INSERT_COLUMNS.index("station")] = self.station
        placeholders = ", ".join(
            "%s::jsonb" if column == "proposal" else "%s" for column in INSERT_COLUMNS
        )
        sql = (
            f"INSERT INTO review_items ({', '.join(INSERT_COLUMNS)}) VALUES ({placeholders}) "
            "ON CONFLICT (station, sha256) DO NOTHING"
        )

        def run(conn: Any) -> Added:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [self.station])
                added = conn.execute(sql, values).rowcount == 1
                evicted = self._evict(conn) if added else 0
            return Added(added, evicted)

        return self._run(run)

    def _evict(self, conn: Any) -> int:
        """Delete this station's oldest parts until both limits hold; count them."""
        count, total = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(image_bytes), 0) FROM review_items WHERE station = %s",
            [self.station],
        ).fetchone()
        if not self.limits.exceeded(count, total):
            return 0
        rows = conn.execute(
            "SELECT id, image_bytes FROM review_items WHERE station = %s ORDER BY id",
            [self.station],
        ).fetchall()
        doomed = self.limits.oldest_beyond(count, total, rows)
        if doomed:
            conn.execute("DELETE FROM review_items WHERE id = ANY(%s)", [doomed])
            conn.execute(
                "INSERT INTO review_evictions (station, evicted) VALUES (%s, %s) "
                "ON CONFLICT (station) DO UPDATE "
                "SET evicted = review_evictions.evicted + excluded.evicted",
                [self.station, len(doomed)],
            )
        return len(doomed)

    # -- reading ---------------------------------------------------------------------

    def list(self, *, limit: int = 100, before_id: int | None = None) -> list[ReviewItem]:
        """Parts newest first, without their images (this station's, or every line's)."""
        where, args = self._scope()
        if before_id is not None:
            where.append("id < %s")
            args.append(before_id)
        sql = f"SELECT {LIST_COLUMNS}, mask_png IS NOT NULL FROM review_items"
        sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC"
        sql += f" LIMIT {int(limit)}"
        rows = self._run(lambda conn: conn.execute(sql, args).fetchall())
        return [listed_item(row) for row in rows]

    def get(self, item_id: int) -> ReviewItem | None:
        """One part with its image and mask."""
        where, args = self._scope()
        sql = f"SELECT {LIST_COLUMNS}, image, mask_png FROM review_items WHERE " + " AND ".join(
            [*where, "id = %s"]
        )
        row = self._run(lambda conn: conn.execute(sql, [*args, item_id]).fetchone())
        return whole_item(row)

    def fetch(self, item: ReviewItem) -> ReviewItem | None:
        """``item`` from :meth:`list` with its image and mask (None once evicted)."""
        return self.get(item.id)

    def count(self) -> int:
        where, args = self._scope()
        sql = "SELECT COUNT(*) FROM review_items"
        sql += (" WHERE " + where[0]) if where else ""
        return int(self._run(lambda conn: conn.execute(sql, args).fetchone()[0]))

    def evicted(self) -> int:
        """Parts evicted since this station (or, for a reader, any line) began."""
        where, args = self._scope()
        sql = "SELECT COALESCE(SUM(evicted), 0) FROM review_evictions"
        sql += (" WHERE " + where[0]) if where else ""
        return int(self._run(lambda conn: conn.execute(sql, args).fetchone()[0]))

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- internals -------------------------------------------------------------------

    def _scope(self) -> tuple[list[str], list[Any]]:
        return (["station = %s"], [self.station]) if self.station is not None else ([], [])

    def _run(self, fn: Callable[[Any], Any]) -> Any:
        """``fn(connection)``, reconnecting once when the connection was dropped (a server
        restart during months of uptime; not after a statement timeout, which would only
        wait again); every driver error a :class:`ReviewStoreError`."""
        psycopg = self._psycopg
        with self._lock:
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    return fn(conn)
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    self._drop()
                    if attempt == 2 or isinstance(exc, psycopg.errors.QueryCanceled):
                        raise ReviewStoreError(f"review store {self.name}: {_line(exc)}") from None
                except psycopg.Error as exc:
                    raise ReviewStoreError(f"review store {self.name}: {_line(exc)}") from None
        raise AssertionError("unreachable")

    def _connection(self) -> Any:
        """The open connection, or a new one (at most every :data:`RETRY_S` after a failure)."""
        if self._conn is not None:
            return self._conn
        if time.monotonic() < self._retry_at:
            raise ReviewStoreError(f"review store {self.name}: {self.problem} (retrying)")
        psycopg = self._psycopg
        try:
            conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            )  # fmt: skip
        except psycopg.Error as exc:
            self.problem = f"cannot connect ({_line(exc)}); check the URL and that the server runs"
            self._retry_at = time.monotonic() + RETRY_S
            raise ReviewStoreError(f"review store {self.name}: {self.problem}") from None
        try:
            self._prepare(conn)
        except psycopg.Error as exc:
            conn.close()
            self.problem = _line(exc)
            self._retry_at = time.monotonic() + RETRY_S
            raise ReviewStoreError(f"review store {self.name}: {self.problem}") from None
        except ReviewStoreError:
            conn.close()
            raise
        self._conn, self.problem = conn, None
        return conn

    def _prepare(self, conn: Any) -> None:
        """A writer creates the tables; a reader checks that a daemon made them."""
        if not self.readonly:
            with conn.transaction():
                for statement in _DDL:
                    conn.execute(statement)
            return
        found = conn.execute("SELECT to_regclass('review_items') IS NOT NULL").fetchone()[0]
        if not found:
            raise ReviewStoreError(
                f"review store {self.name}: no review parts in this database yet (a daemon "
                "creates them: inspect serve --review-store URL); check the database name"
            )

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection must not raise
                pass
            self._conn = None


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ReviewStoreError(
            "the review store is a PostgreSQL URL but psycopg is not installed; "
            "pip install 'psycopg[binary]' (or defectkit[serve])"
        ) from None
    return psycopg


def _line(exc: BaseException) -> str:
    """The driver's message on one line (psycopg's span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__
