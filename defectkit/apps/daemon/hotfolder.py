"""The hot folder: take a file only once it is completely written, and never lose it.

Layout under ``--watch DIR``::

    DIR/               cameras drop images here (the inbox)
    DIR/processing/    claimed files being inspected (at most the in-flight ones)
    DIR/done/          inspected files, after their row was committed
    DIR/rejected/      files that are not usable images, each with NAME.reason.txt
    DIR/.defectkit/    the daemon's state: results.db (default --db) and a lock file

A file's life: stable in the inbox -> renamed into ``processing/`` (the claim) ->
inspected -> row committed -> renamed into ``done/`` or ``rejected/``. Renames within
one file system are atomic, so at every instant the file is in exactly one folder; a
crash leaves it in the inbox (untouched) or in ``processing/`` (re-inspected at start,
de-duplicated by content hash if its row was already committed).

"Completely written" cannot be observed directly (a camera may write slowly, pause, or
write ``name.part`` then rename), so we use what every such writer shows: temporary
names are skipped, and a file is taken only when its size, mtime and inode have stayed
the same for the settle time (``--settle-time``) and across two polls. A file whose
last write is already older than the settle time when it appears (renamed or moved in
after being written) is taken at the next poll. A writer that pauses longer than the
settle time mid-file must write to a temporary name and rename (atomic, and best).
Should a file still change after it was read, it goes back to the inbox unrecorded.

Entries that are never taken (folders, FIFOs, sockets, hidden and temporary names) are
left in place and reported once each, after they stayed a settle time, so a stray
folder or ``..png`` is seen in the log and the metrics instead of waiting forever.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from defectkit.apps.daemon.config import STATE_DIR

#: Suffixes that writers use while a file is still being written (lower case).
TEMP_SUFFIXES = (
    ".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".filepart",
    ".swp", ".lock", ".!ut", "~",
)  # fmt: skip
REASON_SUFFIX = ".reason.txt"
SUBFOLDERS = ("processing", "done", "rejected")
#: What the log says about each kind of entry that is left alone.
SKIP_HINTS = {
    "hidden": "names starting with '.' or '~' are treated as temporary; rename the file",
    "temporary": "a temporary name; the file is taken once renamed to its final name",
    "directory": "folders are not searched; put images in the hot folder itself",
    "fifo": "not a regular file",
    "socket": "not a regular file",
    "device": "not a regular file",
}


def is_temporary_name(name: str) -> bool:
    """True for names a writer uses before the final rename (or hidden files)."""
    lower = name.lower()
    return name.startswith((".", "~")) or lower.endswith(TEMP_SUFFIXES)


@dataclass(frozen=True)
class FolderLayout:
    """Paths of the hot folder's subfolders (see the module docstring)."""

    inbox: Path
    processing: Path
    done: Path
    rejected: Path
    state: Path

    @classmethod
    def under(cls, watch: Path) -> FolderLayout:
        watch = Path(watch)
        return cls(
            watch, watch / "processing", watch / "done", watch / "rejected", watch / STATE_DIR
        )

    def create(self) -> None:
        for folder in (self.processing, self.done, self.rejected, self.state):
            folder.mkdir(parents=True, exist_ok=True)


Signature = tuple[int, int, int]  # (size, mtime_ns, inode)


class StabilityTracker:
    """Remembers each inbox entry's signature and since when it has not changed.

    A name is stable when its signature equals the previous poll's and it has been
    quiet for ``settle_s``: observed unchanged that long, or last written (mtime, by
    ``wall_clock``) that long ago. Empty files must also stay empty for
    ``empty_grace_s``: cameras often create the file first and write it a moment
    later. Names that disappeared are forgotten, so memory is bounded by the inbox's
    size, not by the daemon's lifetime.
    """

    def __init__(
        self, *, settle_s: float = 0.0, empty_grace_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
    ):  # fmt: skip
        self.settle_s, self.empty_grace_s = settle_s, empty_grace_s
        self.clock, self.wall_clock = clock, wall_clock
        self._seen: dict[str, tuple[Signature, float]] = {}

    def update(self, current: dict[str, Signature]) -> list[str]:
        now, wall = self.clock(), self.wall_clock()
        stable = []
        seen: dict[str, tuple[Signature, float]] = {}
        for name, sig in current.items():
            previous = self._seen.get(name)
            since = previous[1] if previous is not None and previous[0] == sig else now
            seen[name] = (sig, since)
            if previous is None or previous[0] != sig:
                continue
            quiet = now - since
            # An mtime in the future (a share's clock ahead of ours) counts as just written.
            if max(quiet, wall - sig[1] / 1e9) < self.settle_s:
                continue
            if sig[0] == 0 and quiet < self.empty_grace_s:
                continue
            stable.append(name)
        self._seen = seen
        return stable


class SkipReporter:
    """Entries left in the inbox, each reported once after staying ``after_s``.

    Transient ones (a ``.part`` renamed a moment later) are never reported; a name
    that leaves and comes back is reported again. Bounded by the inbox's size.
    """

    def __init__(self, *, after_s: float, clock: Callable[[], float] = time.monotonic):
        self.after_s, self.clock = after_s, clock
        self._seen: dict[str, tuple[str, float, bool]] = {}  # name -> kind, since, reported
        self._due: list[tuple[str, str]] = []

    def update(self, current: dict[str, str]) -> None:
        now = self.clock()
        seen = {}
        for name, kind in current.items():
            old_kind, since, reported = self._seen.get(name, (kind, now, False))
            if old_kind != kind:
                since, reported = now, False
            if not reported and now - since >= self.after_s:
                self._due.append((name, kind))
                reported = True
            seen[name] = (kind, since, reported)
        self._seen = seen

    def take(self) -> list[tuple[str, str]]:
        """(name, kind) of the entries to report now; each is returned once."""
        due, self._due = self._due, []
        return due


class HotFolder:
    """Scans the inbox, claims stable files and files finished ones away.

    Only the scanner thread claims; workers finish. Finishing takes a lock because two
    workers may finish files of the same name at once and ``rename`` would overwrite.
    """

    def __init__(
        self, layout: FolderLayout, *, tracker: StabilityTracker | None = None,
        skips: SkipReporter | None = None,
    ):  # fmt: skip
        self.layout = layout
        self.tracker = tracker or StabilityTracker()
        self.skips = skips or SkipReporter(after_s=self.tracker.settle_s)
        self._own = {p.name for p in (layout.processing, layout.done, layout.rejected, layout.state)}
        self._finish_lock = threading.Lock()

    def poll(self) -> list[str]:
        """Names in the inbox that are ready to claim, oldest first.

        Entries that will never be claimed are noted for :meth:`take_skipped`.
        """
        entries: dict[str, Signature] = {}
        mtimes: dict[str, int] = {}
        odd: dict[str, str] = {}
        with os.scandir(self.layout.inbox) as it:
            for entry in it:
                if entry.name in self._own:
                    continue
                try:
                    kind = _skip_kind(entry)
                    if kind is not None:
                        odd[entry.name] = kind
                        continue
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                entries[entry.name] = (st.st_size, st.st_mtime_ns, st.st_ino)
                mtimes[entry.name] = st.st_mtime_ns
        self.skips.update(odd)
        return sorted(self.tracker.update(entries), key=lambda n: (mtimes[n], n))

    def take_skipped(self) -> list[tuple[str, str]]:
        """(name, kind) of inbox entries newly found to be left alone (see :data:`SKIP_HINTS`)."""
        return self.skips.take()

    def changed_since(self, path: Path, signature: tuple[int, int]) -> bool:
        """True when ``path`` no longer has the (size, mtime_ns) it had when it was read:
        its writer was still at work, so what was read is not the file."""
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return False  # gone: the worker's own handling of a vanished file applies
        return (st.st_size, st.st_mtime_ns) != signature

    def claim(self, name: str) -> Path | None:
        """Move ``inbox/name`` into ``processing/``; None when it vanished meanwhile."""
        target = _free_name(self.layout.processing, name)
        try:
            os.rename(self.layout.inbox / name, target)
        except FileNotFoundError:
            return None
        return target

    def leftovers(self) -> list[Path]:
        """Files a previous run left in ``processing/`` (it crashed or was killed)."""
        with os.scandir(self.layout.processing) as it:
            return sorted(
                Path(e.path) for e in it if e.is_symlink() or e.is_file(follow_symlinks=False)
            )

    def finish(
        self, path: Path, *, rejected: bool, sha256: str | None, reason: str | None = None
    ) -> Path:
        """Move a processed file to ``done/`` or ``rejected/`` (with its reason file).

        The reason file is written first: a crash in between leaves the image in
        ``processing/``, to be finished again at start-up, never an unexplained reject.
        """
        folder = self.layout.rejected if rejected else self.layout.done
        with self._finish_lock:
            target = _free_name(folder, path.name, sha256)
            if rejected:
                text = f"{reason or 'rejected'}\nsha256: {sha256 or '-'}\nat: {_now_iso()}\n"
                (folder / (target.name + REASON_SUFFIX)).write_text(text, encoding="utf-8")
            os.rename(path, target)
        return target

    def release(self, path: Path) -> Path | None:
        """Give a claimed file back to the inbox (the store is down; retry later)."""
        with self._finish_lock:
            target = _free_name(self.layout.inbox, path.name)
            try:
                os.rename(path, target)
            except FileNotFoundError:
                return None
        return target


def _skip_kind(entry: os.DirEntry) -> str | None:
    """Why an inbox entry is never claimed, or None for a candidate file.

    Symlinks are candidates: they are claimed (and then rejected, unread) rather than
    followed, since a link could point anywhere on the machine.
    """
    if is_temporary_name(entry.name):
        return "hidden" if entry.name.startswith((".", "~")) else "temporary"
    if entry.is_symlink() or entry.is_file(follow_symlinks=False):
        return None
    if entry.is_dir(follow_symlinks=False):
        return "directory"
    mode = entry.stat(follow_symlinks=False).st_mode
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device"


def _free_name(folder: Path, name: str, sha256: str | None = None) -> Path:
    """``folder/name``, or a variant that does not exist yet (``stem-<sha8>[-n].ext``).

    Cameras reuse names (a counter that wraps, a restart at img_0001), and an earlier
    file of the same name must never be overwritten.
    """
    target = folder / name
    if not os.path.lexists(target):
        return target
    stem, dot, suffix = name.rpartition(".")
    if not stem:
        stem, dot, suffix = name, "", ""
    tag = (sha256 or "dup")[:8]
    for n in range(0, 1_000_000):
        candidate = f"{stem}-{tag}{'' if n == 0 else f'-{n}'}{dot}{suffix}"
        if not os.path.lexists(folder / candidate):
            return folder / candidate
    raise OSError(f"no free name for {name} in {folder}")


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
