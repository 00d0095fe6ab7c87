"""Errors of the daemon. User-caused ones derive from :class:`DefectkitError` (exit 2)."""

from defectkit.errors import DefectkitError


class ServeError(DefectkitError):
    """The daemon cannot start: port in use, folder locked by another daemon, bad token file."""


class StoreError(DefectkitError):
    """The results database cannot be opened or written (disk full, server down, newer schema)."""


class QueueFull(Exception):
    """The inspection queue is at capacity; the caller should retry later (HTTP 503)."""


class QueueClosed(Exception):
    """The daemon is shutting down and takes no new work."""
