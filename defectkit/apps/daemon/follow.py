"""Follow a channel: reload when ``--bundle`` (a symlink like ``bundles/current``) moves.

``inspect bundles promote`` and ``rollback`` switch the registry's ``current`` link
atomically; a daemon started with ``--bundle REGISTRY/current --follow-interval 5``
notices within that time and reloads, with the same verification as any reload (a
refused bundle leaves the old one serving). A refused target is tried again only
after the link moves again, so a bad release does not reload in a loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from defectkit.apps.daemon.logs import log_event
from defectkit.errors import BundleError


class ChannelFollower:
    """A thread that calls ``reload()`` when ``link`` resolves to another folder than
    ``serving()`` returns."""

    def __init__(
        self, link: Path, *, serving: Callable[[], Path], reload: Callable[[], object],
        interval: float,
    ):  # fmt: skip
        self.link, self.serving, self.reload, self.interval = Path(link), serving, reload, interval
        self._stop = threading.Event()
        self._refused: Path | None = None
        self._thread = threading.Thread(target=self._loop, name="bundle-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=5)

    def check(self) -> bool:
        """One look; True when a reload happened."""
        try:
            target = self.link.resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # a link being switched, or a broken one
            log_event("follow_unresolved", level=logging.DEBUG, link=str(self.link), error=str(exc))
            return False
        if target == self.serving() or target == self._refused:
            return False
        try:
            self.reload()
        except (BundleError, PermissionError):
            self._refused = target  # reported by the reload itself; retried when the link moves
            return False
        self._refused = None
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()
