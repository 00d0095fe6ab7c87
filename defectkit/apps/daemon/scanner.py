"""The hot-folder thread: recover ``processing/`` at start, then claim stable files.

It reserves a queue slot *before* claiming a file, so files wait in the inbox (where an
operator can see and remove them) rather than in ``processing/`` or in memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from defectkit.apps.daemon.hotfolder import SKIP_HINTS, HotFolder
from defectkit.apps.daemon.jobs import FOLDER, Job, JobQueue
from defectkit.apps.daemon.logs import log_event


class FolderScanner:
    """Runs in its own thread until :meth:`stop`."""

    def __init__(
        self, hotfolder: HotFolder, queue: JobQueue, *, poll_interval: float,
        on_skip: Callable[[str], None] = lambda kind: None,
    ):  # fmt: skip
        self.hotfolder, self.queue, self.poll_interval = hotfolder, queue, poll_interval
        self.on_skip = on_skip
        self._stop = threading.Event()
        self._paused_until = 0.0
        self.thread = threading.Thread(target=self._run, name="hotfolder-scanner", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def request_stop(self) -> None:
        """Claim nothing more (returns at once; :meth:`stop` also waits for the thread)."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def pause(self, seconds: float) -> None:
        """Claim nothing for a while (the store is down: files are better off in the inbox)."""
        self._paused_until = time.monotonic() + seconds

    def _run(self) -> None:
        try:
            recovered = self._recover()
            if recovered:
                log_event("recovered", count=recovered)
            while not self._stop.is_set():
                if time.monotonic() >= self._paused_until:
                    self._scan_once()
                self._stop.wait(self.poll_interval)
        except Exception as exc:  # noqa: BLE001 - logged; the HTTP side keeps serving
            log_event("scanner_failed", level=logging.ERROR, error=repr(exc))

    def _recover(self) -> int:
        """Queue the files a crashed run left in ``processing/`` (de-duplicated by hash)."""
        count = 0
        for path in self.hotfolder.leftovers():
            if not self._reserve():
                break
            self.queue.put_reserved(Job(source=FOLDER, name=path.name, path=path))
            count += 1
        return count

    def _scan_once(self) -> None:
        try:
            names = self.hotfolder.poll()
        except OSError as exc:  # inbox unmounted or deleted: say so, keep trying
            log_event("scan_failed", level=logging.ERROR, error=str(exc))
            return
        for name, kind in self.hotfolder.take_skipped():
            log_event("skipped", level=logging.WARNING, name=name, kind=kind, hint=SKIP_HINTS[kind])
            self.on_skip(kind)
        for name in names:
            if self._stop.is_set() or not self.queue.reserve_folder_slot(
                timeout=self.poll_interval
            ):
                return
            path = self._claim(name)
            if path is None:
                self.queue.cancel_reservation()
                continue
            self.queue.put_reserved(Job(source=FOLDER, name=name, path=path))

    def _claim(self, name: str) -> Path | None:
        try:
            return self.hotfolder.claim(name)
        except OSError as exc:
            log_event("claim_failed", level=logging.ERROR, name=name, error=str(exc))
            return None

    def _reserve(self) -> bool:
        while not self._stop.is_set():
            if self.queue.reserve_folder_slot(timeout=self.poll_interval):
                return True
        return False
