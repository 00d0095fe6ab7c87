"""Jobs and the bounded queue between the inputs (HTTP, hot folder) and the workers.

Back-pressure is the point: a line that produces images faster than the bundle can
inspect them must see it at once (HTTP 503 + Retry-After; files simply wait in the
inbox), instead of the daemon buffering images until it runs out of memory. The bound
also bounds memory: at most ``capacity`` encoded images wait, plus one batch per worker.

The hot folder may hold at most half the slots (its "share"), counted until its job is
*finished*, not just dequeued: a burst of files can never starve the HTTP API, and at
most that many files are ever in ``processing/``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from defectkit.apps.daemon.errors import QueueClosed, QueueFull
from defectkit.core.files import sha256_bytes

HTTP = "http"
FOLDER = "folder"


@dataclass(eq=False)
class Job:
    """One image to inspect.

    HTTP jobs carry the uploaded bytes; hot-folder jobs carry the claimed path and are
    read by the worker (so the scanner thread never does I/O-heavy work).
    """

    source: str
    name: str | None
    data: bytes | None = None
    path: Path | None = None
    enqueued: float = field(default_factory=time.monotonic)
    future: Future = field(default_factory=Future)
    digest: str | None = None
    signature: tuple[int, int] | None = None  # a claimed file's (size, mtime_ns) when read

    @property
    def sha256(self) -> str:
        if self.digest is None:
            if self.data is None:
                raise ValueError("job data not loaded yet")
            self.digest = sha256_bytes(self.data)
        return self.digest


class JobQueue:
    """A FIFO of jobs with a capacity, a hot-folder share and a close for shutdown."""

    def __init__(self, capacity: int, *, folder_share: float = 0.5):
        self.capacity = capacity
        self.folder_limit = max(1, int(capacity * folder_share))
        self._items: deque[Job] = deque()
        self._folder_in_flight = 0
        self._reserved = 0  # slots reserved by the scanner but not yet put
        self._closed = False
        self._cond = threading.Condition()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, job: Job) -> None:
        """Enqueue an HTTP job now, or raise :class:`QueueFull` / :class:`QueueClosed`."""
        with self._cond:
            if self._closed:
                raise QueueClosed()
            if len(self._items) >= self.capacity:
                raise QueueFull()
            self._items.append(job)
            self._cond.notify()

    def reserve_folder_slot(self, timeout: float) -> bool:
        """Wait until a hot-folder job may be claimed; False on timeout or when closed.

        The scanner reserves *before* claiming a file, so a file is moved into
        ``processing/`` only when it can be queued at once.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._closed and (
                self._folder_in_flight >= self.folder_limit or len(self._items) >= self.capacity
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            if self._closed:
                return False
            self._folder_in_flight += 1
            self._reserved += 1
            return True

    def put_reserved(self, job: Job) -> None:
        """Enqueue a hot-folder job into a slot taken with :meth:`reserve_folder_slot`.

        Accepted even after :meth:`close`: the file is already claimed, and the workers
        drain the queue before the daemon exits.
        """
        with self._cond:
            self._reserved -= 1
            self._items.append(job)
            self._cond.notify_all()

    def cancel_reservation(self) -> None:
        """The claim failed (the file vanished): give the reserved slot back."""
        with self._cond:
            self._reserved -= 1
            self._folder_in_flight -= 1
            self._cond.notify_all()

    def release_folder_slot(self) -> None:
        """A hot-folder job finished: free its slot."""
        with self._cond:
            self._folder_in_flight -= 1
            self._cond.notify_all()

    def take(self, max_items: int, timeout: float) -> list[Job] | None:
        """Up to ``max_items`` jobs (waiting at most ``timeout`` for the first).

        Returns [] on timeout and None once closed and drained (the worker exits).
        Only jobs already queued join a batch: we never hold one back to fill a batch.
        """
        with self._cond:
            if not self._items:
                if self._drained():
                    return None
                self._cond.wait(timeout)
                if not self._items:
                    return None if self._drained() else []
            batch = [self._items.popleft() for _ in range(min(max_items, len(self._items)))]
            self._cond.notify_all()
            return batch

    def _drained(self) -> bool:
        return self._closed and not self._items and self._reserved == 0

    def close(self) -> None:
        """Refuse new HTTP jobs; workers finish what is queued, then stop."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
