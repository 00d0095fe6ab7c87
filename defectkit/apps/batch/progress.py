"""Progress of a run: a bar with files/s and ETA on a terminal, a line now and then in a log.

Files skipped on resume advance the bar without counting towards the rate, so the ETA
after a restart is the time the remaining files will take, not a fraction of a second.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

#: Seconds between progress lines when stderr is not a terminal (a log file, a CI job).
LOG_INTERVAL_S = 30.0


@dataclass
class Tally:
    """Files of one run by what became of them."""

    skipped: int = 0  # already in the store for this bundle (resumed)
    inspected: int = 0  # new rows with a verdict
    duplicates: int = 0  # same content as a file already stored for this bundle
    rejected: int = 0  # unreadable, not an image, too large: a row with the reason
    errors: int = 0  # inference failed, or the file kept killing workers: a row with the reason

    @property
    def done(self) -> int:
        return self.skipped + self.inspected + self.duplicates + self.rejected + self.errors

    def add(self, other: Tally) -> None:
        for name in ("skipped", "inspected", "duplicates", "rejected", "errors"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Progress:
    """Reports a :class:`Tally` against ``total`` files.

    Args:
        total: files listed for the run.
        stream: where to write (stderr).
        bar: a tqdm bar (None: decided by whether ``stream`` is a terminal).
    """

    total: int
    stream: IO[str] = field(default_factory=lambda: sys.stderr)
    bar: bool | None = None
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._tqdm = None
        if self.bar if self.bar is not None else _isatty(self.stream):
            try:
                from tqdm.auto import tqdm
            except ImportError:  # the bar is a nicety; the log lines still come
                pass
            else:
                self._tqdm = tqdm(total=self.total, unit="file", desc="inspect batch", file=self.stream,
                                  dynamic_ncols=True, smoothing=0.05)  # fmt: skip
        self._start = self._last_line = self.clock()
        self._shown = 0  # files worked on (not skipped) the bar has counted

    def update(self, tally: Tally) -> None:
        """Show ``tally`` (the run's counts so far)."""
        worked = tally.done - tally.skipped
        if self._tqdm is not None:
            # Skipped files leave the bar's total instead of entering its count, so its
            # rate and ETA are those of the files that are really inspected.
            self._tqdm.total = max(self.total - tally.skipped, worked)
            self._tqdm.set_postfix_str(_postfix(tally), refresh=False)
            self._tqdm.update(worked - self._shown)
        elif self.clock() - self._last_line >= LOG_INTERVAL_S:
            self._last_line = self.clock()
            print(self.line(tally), file=self.stream, flush=True)
        self._shown = worked

    def line(self, tally: Tally) -> str:
        """``done/total (x %), files/s, ETA`` and the counts, as one line."""
        elapsed = max(self.clock() - self._start, 1e-9)
        worked = tally.done - tally.skipped
        rate = worked / elapsed
        left = max(self.total - tally.done, 0)
        eta = _duration(left / rate) if rate > 0 else "?"
        share = 100.0 * tally.done / self.total if self.total else 100.0
        return (f"inspect batch: {tally.done:,}/{self.total:,} files ({share:.1f} %), "
                f"{rate:.1f} files/s, ETA {eta}; {_postfix(tally)}")  # fmt: skip

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()


def _postfix(tally: Tally) -> str:
    return (f"{tally.inspected:,} inspected, {tally.skipped:,} already done, "
            f"{tally.duplicates:,} duplicates, {tally.rejected:,} rejected, {tally.errors:,} errors")  # fmt: skip


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
