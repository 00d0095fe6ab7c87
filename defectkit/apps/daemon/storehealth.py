"""Whether the results store can be trusted: the file is still the one opened, it
still takes writes, and a new empty store is not silently started beside old results.

SQLite keeps writing to an open file after ``rm results.db*``: every row then lands in
a deleted inode and is gone at the next restart, while ``/healthz`` said 200. So the
store checks the file's identity (device and inode) before each write, and health
runs a real write (:meth:`~defectkit.apps.daemon.store.ResultStore.probe`) instead of
``SELECT 1``, which a garbage-filled or read-only database still answers.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from defectkit.apps.daemon.errors import ServeError, StoreError

#: The first bytes of every SQLite database file.
SQLITE_MAGIC = b"SQLite format 3\x00"


class FileIdentity:
    """The (device, inode) of a SQLite file and its WAL, captured once they are open,
    and the database's header: what ``check`` compares before every write.

    The header is read through one descriptor kept open while the store is (see
    :class:`_Descriptors`): closing any descriptor of the database file drops every
    POSIX lock this process holds on it, SQLite's included. An outside reader's
    ``close()`` then finds itself alone, checkpoints and deletes the WAL this process
    still writes into, and every later commit lands in that deleted file: invisible to
    other readers and lost on a crash. So a WAL that changes under an open store is an
    error (the check below), and nothing here closes the database file while it is open.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._expected: dict[Path, tuple[int, int]] = {}
        self._fd: int | None = None

    def capture(self) -> None:
        for path in (self.path, self.wal):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue  # no WAL yet (nothing written): only the database is checked
            self._expected[path] = (st.st_dev, st.st_ino)
        if self._fd is None and self.path in self._expected:
            self._fd = _DESCRIPTORS.acquire(self.path, self._expected[self.path])

    def release(self) -> None:
        """Give back the header descriptor; only after the store's connections closed."""
        if self._fd is not None:
            _DESCRIPTORS.release(self._expected[self.path])
            self._fd = None

    @property
    def wal(self) -> Path:
        return self.path.with_name(self.path.name + "-wal")

    def check(self) -> None:
        """Raise :class:`StoreError` when a captured file was deleted or replaced."""
        for path, expected in self._expected.items():
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise StoreError(_gone(path, "was deleted")) from None
            except OSError as exc:
                raise StoreError(
                    f"{path}: cannot check the database file ({exc.strerror})"
                ) from None
            if (st.st_dev, st.st_ino) != expected:
                raise StoreError(_gone(path, "was replaced by another file"))
        self._check_header()

    def _check_header(self) -> None:
        # WAL mode commits into the -wal file, so a database overwritten in place still
        # takes writes until the next checkpoint mixes them with the garbage.
        if self._fd is None:
            return
        try:
            head = os.pread(self._fd, len(SQLITE_MAGIC), 0)
        except OSError as exc:
            raise StoreError(
                f"{self.path}: cannot read the database file ({exc.strerror})"
            ) from None
        if head and head != SQLITE_MAGIC:
            raise StoreError(
                f"{self.path} is no longer a SQLite database (overwritten?); writes stopped. "
                "Restore it from a backup and restart"
            )


@dataclass
class _Shared:
    fd: int
    users: int


class _Descriptors:
    """One read-only descriptor per database file in this process, shared by every
    store open on it and closed with the last one: the way SQLite's own unix VFS keeps
    a file's locks while a second connection to it closes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple[int, int], _Shared] = {}

    def acquire(self, path: Path, key: tuple[int, int]) -> int:
        with self._lock:
            shared = self._open.get(key)
            if shared is None:
                fd = os.open(path, os.O_RDONLY)
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != key:
                    os.close(fd)  # another file: closing it leaves the store's locks alone
                    raise StoreError(_gone(path, "was replaced by another file"))
                shared = self._open[key] = _Shared(fd, 0)
            shared.users += 1
            return shared.fd

    def release(self, key: tuple[int, int]) -> None:
        with self._lock:
            shared = self._open[key]
            shared.users -= 1
            if shared.users == 0:
                del self._open[key]
                os.close(shared.fd)


_DESCRIPTORS = _Descriptors()


def _gone(path: Path, what: str) -> str:
    return (
        f"{path} {what} while the daemon ran; writes stopped so no result is lost in it. "
        "Restore the file and restart, or restart with --new-store to begin an empty one"
    )


def sqlite_path(database: str) -> Path | None:
    """The file of a SQLite ``--db``; None for a PostgreSQL URL."""
    return None if "://" in database else Path(database)


def has_entries(folder: Path) -> bool:
    try:
        with os.scandir(folder) as it:
            return any(True for _ in it)
    except FileNotFoundError:
        return False


def refuse_missing_store(database: str, done: Path) -> None:
    """Before opening: a SQLite file that does not exist beside a non-empty ``done/``.

    Checked before the file is created, so a refused start leaves nothing behind.
    """
    path = sqlite_path(database)
    if path is not None and not path.exists() and has_entries(done):
        raise ServeError(_fresh(f"the results store {path} does not exist", done))


def refuse_empty_store(database: str, rows: int, done: Path) -> None:
    """After opening: a store without a single row beside a non-empty ``done/``."""
    if rows == 0 and has_entries(done):
        raise ServeError(_fresh(f"the results store {database} is empty", done))


def _fresh(what: str, done: Path) -> str:
    return (
        f"{what} but {done} holds inspected files: was the store deleted or --db changed? "
        "Restore it, or pass --new-store to start an empty one beside them"
    )
