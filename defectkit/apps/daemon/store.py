"""One row per inspection, in SQLite (WAL) by default or a shared PostgreSQL database.

Both back-ends run the same SQL through one :class:`ResultStore`; a small
:class:`Dialect` carries what differs (placeholders, DDL, how to begin a transaction).

Why the choices:
- ``(sha256, bundle_id)`` is UNIQUE: the same file seen twice by one bundle (a crash
  between commit and move, a camera that writes a file again, a resumed archive run)
  can never become two rows, while a re-inspection with a new bundle adds its own rows
  beside the old ones (``inspect compare``). Every row names its bundle (a NULL would
  make the pair unenforceable). Rows that were *not* a successful inspection
  (``rejected``/``error``) may be overwritten by a later attempt, so moving a
  quarantined file back into the hot folder retries it, still as one row.
- Schema version 1 (``sha256`` unique alone) is migrated in place on open, in the
  same transaction as the DDL, so two processes opening it at once migrate it once.
- SQLite runs in WAL mode with ``synchronous=FULL``: HTTP readers never block the
  writer, and a committed row survives a power cut. The hot folder moves a file only
  after that commit, so the worst a power cut can do is leave a file to be re-seen
  (and de-duplicated), never a moved file without a row.
- PostgreSQL connections are re-opened once on a dropped connection (server restart
  during months of uptime); a second failure is a :class:`StoreError` and the hot-folder
  file goes back to the inbox to be retried.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from defectkit.apps.daemon.errors import StoreError
from defectkit.apps.daemon.storehealth import FileIdentity

SCHEMA_VERSION = 2
COLUMNS = (
    "sha256", "created_at", "source", "name", "station", "status",
    "verdict", "label", "score", "bundle_id", "error", "result",
)  # fmt: skip
STATUSES = ("ok", "rejected", "error")
#: What makes a row unique: one row per content per bundle.
UNIQUE_KEY = ("sha256", "bundle_id")


@dataclass(frozen=True)
class Record:
    """One inspection to store. ``result`` is the verdict JSON (probabilities, defects...)."""

    sha256: str
    created_at: float  # unix seconds
    source: str  # "http" | "folder" | "batch"
    name: str | None
    station: str
    status: str  # "ok" | "rejected" | "error"
    verdict: str | None = None
    label: str | None = None
    score: float | None = None
    bundle_id: str | None = None  # required by the store; None only in v1 rows
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResultQuery:
    """Filters of ``GET /v1/results``; ``before_id`` pages backwards (newest first)."""

    since: float | None = None
    until: float | None = None
    verdict: str | None = None
    label: str | None = None
    status: str | None = None
    source: str | None = None
    station: str | None = None
    before_id: int | None = None
    limit: int = 100


@dataclass(frozen=True)
class Dialect:
    """What differs between SQLite and PostgreSQL; everything else is shared SQL."""

    name: str
    connect: Callable[[], Any]
    ddl: tuple[str, ...]
    param: str  # placeholder
    json_param: str  # placeholder for the result JSON column
    errors: tuple[type[BaseException], ...]  # driver errors turned into StoreError
    transaction: Callable[[Any], Any]  # context manager: one committed transaction
    upgrade_v1: Callable[[Any], None]  # schema 1 -> 2, inside the open transaction
    reconnect_on: tuple[type[BaseException], ...] = ()
    identity: FileIdentity | None = None  # SQLite: the file must stay the one opened
    after_probe: tuple[str, ...] = ()  # statements that make a health probe touch the disk


def open_store(target: str) -> ResultStore:
    """A store for a SQLite file path or a ``postgresql://`` URL."""
    if target.startswith(("postgresql://", "postgres://")):
        return ResultStore(_postgres_dialect(target))
    try:
        return ResultStore(_sqlite_dialect(Path(target)))
    except StoreError as exc:  # name the file: "unable to open database file" does not
        if target in str(exc):
            raise
        raise StoreError(f"--db {target}: {exc}") from None


class ResultStore:
    """Thread-safe access: one writer connection and one reader connection, each locked.

    Two connections so that a slow paginated read never waits behind the workers'
    commits (SQLite WAL and PostgreSQL MVCC both let them run side by side).
    """

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._locks = {"write": threading.Lock(), "read": threading.Lock()}
        self._conns: dict[str, Any] = {}
        self.on_error: Callable[[str], None] = lambda operation: None  # counts, for metrics
        try:
            self._conns["write"] = dialect.connect()
            self._conns["read"] = dialect.connect()
            with dialect.transaction(self._conns["write"]) as conn:
                for statement in dialect.ddl:
                    conn.execute(statement)
                self._check_schema(conn)
        except dialect.errors as exc:
            self.close()
            raise StoreError(f"results store ({dialect.name}): cannot open it: {exc}") from None
        if dialect.identity is not None:
            dialect.identity.capture()

    # -- writing ---------------------------------------------------------------------

    def upsert(self, record: Record) -> tuple[dict[str, Any], bool]:
        """Store ``record`` unless a successful row for its (SHA-256, bundle) exists.

        Returns:
            (the row now stored, True when this call wrote it). False means a row with
            status ``ok`` was already there and is returned unchanged (a duplicate).
        """
        p = self.dialect.param
        sql, values = self._upsert_sql(record)

        def run(conn: Any) -> tuple[dict[str, Any], bool]:
            with self.dialect.transaction(conn):
                written = conn.execute(sql, values).rowcount == 1
                row = _fetch_one(
                    conn,
                    f"SELECT * FROM inspections WHERE sha256 = {p} AND bundle_id = {p}",
                    [record.sha256, record.bundle_id],
                )
            return row, written

        return self._run("write", run)

    def upsert_many(self, records: Sequence[Record]) -> list[bool]:
        """:meth:`upsert` for many records in one transaction (one commit, one fsync);
        returns, per record, whether it was written (False: an ``ok`` row was there)."""
        statements = [self._upsert_sql(r) for r in records]

        def run(conn: Any) -> list[bool]:
            with self.dialect.transaction(conn):
                return [conn.execute(sql, values).rowcount == 1 for sql, values in statements]

        return self._run("write", run) if statements else []

    def _upsert_sql(self, record: Record) -> tuple[str, list[Any]]:
        if not record.bundle_id:
            raise ValueError(f"record {record.sha256[:12]} names no bundle_id; every row needs one")
        p = self.dialect.param
        values = list(astuple(record))
        values[-1] = json.dumps(record.result, default=_json_default, allow_nan=False)
        placeholders = ", ".join([p] * (len(COLUMNS) - 1) + [self.dialect.json_param])
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in UNIQUE_KEY)
        sql = (
            f"INSERT INTO inspections ({', '.join(COLUMNS)}) VALUES ({placeholders}) "
            f"ON CONFLICT ({', '.join(UNIQUE_KEY)}) DO UPDATE SET {updates} "
            "WHERE inspections.status <> 'ok'"
        )
        return sql, values

    # -- reading ---------------------------------------------------------------------

    def get(self, row_id: int) -> dict[str, Any] | None:
        p = self.dialect.param
        return self._run(
            "read", lambda c: _fetch_one(c, f"SELECT * FROM inspections WHERE id = {p}", [row_id])
        )

    def get_by_sha(self, sha256: str, bundle_id: str) -> dict[str, Any] | None:
        """The row of this content under this bundle (rows are unique by the pair)."""
        p = self.dialect.param
        sql = f"SELECT * FROM inspections WHERE sha256 = {p} AND bundle_id = {p}"
        return self._run("read", lambda c: _fetch_one(c, sql, [sha256, bundle_id]))

    def select(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query on the reader connection (placeholders:
        ``self.dialect.param``); for callers with their own questions (``inspect batch``
        resuming, ``inspect compare``)."""
        return self._run("read", lambda c: _fetch_all(c, sql, list(args)))

    def query(self, q: ResultQuery) -> list[dict[str, Any]]:
        """Rows matching ``q``, newest (highest id) first, at most ``q.limit``."""
        p = self.dialect.param
        where, args = [], []
        for column, op, value in (
            ("created_at", ">=", q.since), ("created_at", "<", q.until),
            ("verdict", "=", q.verdict), ("label", "=", q.label), ("status", "=", q.status),
            ("source", "=", q.source), ("station", "=", q.station), ("id", "<", q.before_id),
        ):  # fmt: skip
            if value is not None:
                where.append(f"{column} {op} {p}")
                args.append(value)
        sql = "SELECT * FROM inspections"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY id DESC LIMIT {int(q.limit)}"
        return self._run("read", lambda c: _fetch_all(c, sql, args))

    def count(self) -> int:
        return self._run(
            "read", lambda c: c.execute("SELECT COUNT(*) FROM inspections").fetchone()[0]
        )

    def ping(self) -> None:
        """Raise :class:`StoreError` when the database does not answer."""
        self._run("read", lambda c: c.execute("SELECT 1").fetchone())

    def probe(self, key: str, value: str) -> None:
        """Commit one small write (``inspections_meta[key] = value``), or raise
        :class:`StoreError`: what health reports, since a garbage-filled, read-only or
        deleted database may still answer reads."""
        p = self.dialect.param
        sql = (
            f"INSERT INTO inspections_meta (key, value) VALUES ({p}, {p}) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )

        def run(conn: Any) -> None:
            with self.dialect.transaction(conn):
                conn.execute(sql, [key, value])
            for statement in self.dialect.after_probe:
                conn.execute(statement).fetchall()

        self._run("write", run)

    def close(self) -> None:
        for conn in self._conns.values():
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection must not raise
                pass
        self._conns.clear()
        if self.dialect.identity is not None:
            self.dialect.identity.release()  # after the connections: see FileIdentity

    # -- internals -------------------------------------------------------------------

    def _run(self, role: str, fn: Callable[[Any], Any]) -> Any:
        try:
            return self._run_once(role, fn)
        except StoreError:
            self.on_error(role)
            raise

    def _run_once(self, role: str, fn: Callable[[Any], Any]) -> Any:
        with self._locks[role]:
            if role == "write" and self.dialect.identity is not None:
                self.dialect.identity.check()  # never write into a deleted or replaced file
            for attempt in (1, 2):
                try:
                    return fn(self._conns[role])
                except self.dialect.reconnect_on as exc:
                    if attempt == 2:
                        raise StoreError(f"results store ({self.dialect.name}): {exc}") from None
                    self._reconnect(role)
                except self.dialect.errors as exc:
                    raise StoreError(f"results store ({self.dialect.name}): {exc}") from None
                except KeyError:
                    raise StoreError("results store is closed") from None
        raise AssertionError("unreachable")

    def _reconnect(self, role: str) -> None:
        try:
            self._conns[role].close()
        except Exception:  # noqa: BLE001
            pass
        try:
            self._conns[role] = self.dialect.connect()
        except self.dialect.errors as exc:
            raise StoreError(
                f"results store ({self.dialect.name}): reconnect failed: {exc}"
            ) from None

    def _check_schema(self, conn: Any) -> None:
        p = self.dialect.param
        row = conn.execute(
            f"SELECT value FROM inspections_meta WHERE key = {p}", ["schema_version"]
        ).fetchone()
        if row is None:
            conn.execute(
                f"INSERT INTO inspections_meta (key, value) VALUES ({p}, {p})",
                ["schema_version", str(SCHEMA_VERSION)],
            )
        elif int(row[0]) == 1:
            self.dialect.upgrade_v1(conn)
            conn.execute(
                f"UPDATE inspections_meta SET value = {p} WHERE key = {p}",
                [str(SCHEMA_VERSION), "schema_version"],
            )
        elif int(row[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"the results database has schema version {row[0]}, newer than this "
                f"defectkit ({SCHEMA_VERSION}); upgrade defectkit or use another --db"
            )


def row_to_json(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as the API returns it: columns plus the verdict JSON's fields."""
    result = row.get("result") or {}
    if isinstance(result, str):
        result = json.loads(result)
    out = {k: row[k] for k in ("id", "sha256", "source", "name", "station", "status",
                               "verdict", "label", "score", "bundle_id", "error")}  # fmt: skip
    out["created_at"] = datetime.fromtimestamp(row["created_at"], tz=timezone.utc).isoformat()
    out.update({k: v for k, v in result.items() if k not in out})
    return out


def _fetch_one(conn: Any, sql: str, args: list[Any]) -> dict[str, Any] | None:
    cur = conn.execute(sql, args)
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))


def _fetch_all(conn: Any, sql: str, args: list[Any]) -> list[dict[str, Any]]:
    cur = conn.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays that slipped into a result become plain JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a result")


# -- SQLite ---------------------------------------------------------------------------

_SQLITE_TABLE = """CREATE TABLE IF NOT EXISTS {name} (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sha256 TEXT NOT NULL, created_at REAL NOT NULL, source TEXT NOT NULL,
        name TEXT, station TEXT, status TEXT NOT NULL, verdict TEXT, label TEXT,
        score REAL, bundle_id TEXT, error TEXT, result TEXT NOT NULL,
        CONSTRAINT inspections_sha_bundle UNIQUE (sha256, bundle_id))"""
# One home for the indexes both back-ends create (and SQLite re-creates after a rebuild).
# (bundle_id, name): an archive run asks "which of these files has this bundle done?".
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS inspections_created ON inspections (created_at)",
    "CREATE INDEX IF NOT EXISTS inspections_verdict ON inspections (verdict, id)",
    "CREATE INDEX IF NOT EXISTS inspections_label ON inspections (label, id)",
    "CREATE INDEX IF NOT EXISTS inspections_bundle_name ON inspections (bundle_id, name)",
)
_META = "CREATE TABLE IF NOT EXISTS inspections_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
_SQLITE_DDL = (_SQLITE_TABLE.format(name="inspections"), *_INDEXES, _META)


def _sqlite_upgrade_v1(conn: sqlite3.Connection) -> None:
    """Schema 1 -> 2: SQLite cannot drop a column's UNIQUE, so rebuild the table with
    the same ids (and the same AUTOINCREMENT high-water mark: ids are never reused)."""
    seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'inspections'").fetchone()
    conn.execute(_SQLITE_TABLE.format(name="inspections_v2"))
    conn.execute(f"INSERT INTO inspections_v2 ({', '.join(('id', *COLUMNS))}) "
                 f"SELECT {', '.join(('id', *COLUMNS))} FROM inspections")  # fmt: skip
    conn.execute("DROP TABLE inspections")  # and its indexes; re-created below
    conn.execute("ALTER TABLE inspections_v2 RENAME TO inspections")
    if seq is not None:
        conn.execute(
            "UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'inspections'", [seq[0]]
        )
    for statement in _INDEXES:
        conn.execute(statement)


def _sqlite_dialect(path: Path) -> Dialect:
    def connect() -> sqlite3.Connection:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"--db {path}: cannot create its folder {path.parent} ({exc.strerror})"
            ) from None
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a writer takes the
        # lock up front instead of failing half-way with "database is locked".
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise sqlite3.OperationalError(
                f"{path}: WAL mode unavailable (network file system?); put --db on a local disk"
            )
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    return Dialect(
        name="sqlite",
        connect=connect,
        ddl=_SQLITE_DDL,
        param="?",
        json_param="?",
        errors=(sqlite3.Error,),
        transaction=_sqlite_transaction,
        upgrade_v1=_sqlite_upgrade_v1,
        identity=FileIdentity(path),
        # A commit lands in the WAL; only a checkpoint writes the database file itself,
        # and fails ("disk I/O error") when that file was made read-only or immutable.
        after_probe=("PRAGMA wal_checkpoint(PASSIVE)",),
    )


@contextmanager
def _sqlite_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# -- PostgreSQL -----------------------------------------------------------------------

_PG_DDL = (
    # Several daemons may start at once against one database: serialise the DDL.
    "SELECT pg_advisory_xact_lock(727274)",
    """CREATE TABLE IF NOT EXISTS inspections (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        sha256 TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
        source TEXT NOT NULL, name TEXT, station TEXT, status TEXT NOT NULL, verdict TEXT,
        label TEXT, score DOUBLE PRECISION, bundle_id TEXT, error TEXT, result JSONB NOT NULL,
        CONSTRAINT inspections_sha_bundle UNIQUE (sha256, bundle_id))""",
    *_INDEXES,
    _META,
)


def _postgres_upgrade_v1(conn: Any) -> None:
    """Schema 1 -> 2 in place: drop the UNIQUE on ``sha256`` alone (whatever the server
    named it), add the one on (sha256, bundle_id). Rows and ids stay as they are."""
    single = conn.execute(
        "SELECT c.conname FROM pg_constraint c JOIN pg_attribute a "
        "ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) "
        "WHERE c.conrelid = 'inspections'::regclass AND c.contype = 'u' "
        "AND array_length(c.conkey, 1) = 1 AND a.attname = 'sha256'"
    ).fetchall()
    for (name,) in single:
        conn.execute(f'ALTER TABLE inspections DROP CONSTRAINT "{name}"')
    conn.execute(
        "ALTER TABLE inspections ADD CONSTRAINT inspections_sha_bundle UNIQUE (sha256, bundle_id)"
    )


def _postgres_dialect(url: str) -> Dialect:
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            "--db is a PostgreSQL URL but psycopg is not installed; "
            "pip install 'psycopg[binary]' (or defectkit[serve])"
        ) from None

    def connect() -> Any:
        # autocommit + explicit conn.transaction(): reads never hold a transaction open.
        return psycopg.connect(url, autocommit=True, connect_timeout=10)

    return Dialect(
        name="postgresql",
        connect=connect,
        ddl=_PG_DDL,
        param="%s",
        json_param="%s::jsonb",
        errors=(psycopg.Error,),
        reconnect_on=(psycopg.OperationalError, psycopg.InterfaceError),
        transaction=_postgres_transaction,
        upgrade_v1=_postgres_upgrade_v1,
    )


@contextmanager
def _postgres_transaction(conn: Any) -> Iterator[Any]:
    with conn.transaction():
        yield conn
