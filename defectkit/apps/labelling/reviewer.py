"""The review of one project's unlabelled images, inspected in a background thread.

Why in the background: after a restart, or after a fit, every unlabelled image goes
through the model once. Done inside a page event it blocked the Label tab for 15 s
and kept a fit's progress bar at 90 %; here the page returns at once, says how far
the review is (:class:`ReviewProgress`) and labelling goes on meanwhile.

The model runs once per image and fit; results are kept as raw outputs (small) and
decided at the project's current thresholds once per threshold (:meth:`Reviewer.items`),
so a click that only shows a result costs no decision at all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from defectkit.apps.labelling.review import Reviewed, rethreshold, slim
from defectkit.errors import DefectkitError

log = logging.getLogger(__name__)
#: Images per model call: big enough to batch, small enough that progress moves.
BATCH = 4


@dataclass(frozen=True)
class ReviewProgress:
    """How far the review of the unlabelled images is, under the current fit.

    Attributes:
        total: unlabelled images in the project (0 before a fit).
        done: those inspected under the current fit.
        running: a background job is inspecting the rest.
        seconds: wall time of the running job so far, or of the last one.
        error: why the last job stopped, in one line (None when it did not fail).
    """

    total: int = 0
    done: int = 0
    running: bool = False
    seconds: float = 0.0
    error: str | None = None

    @property
    def finished(self) -> bool:
        return not self.running and self.done >= self.total


@dataclass
class _Job:
    fit_id: str
    started: float
    ended: float | None = None
    error: str | None = None

    @property
    def seconds(self) -> float:
        return (self.ended or time.perf_counter()) - self.started


class Reviewer:
    """Inspects a project's unlabelled images under its current fit, in the background.

    Thread-safe; one per project (:class:`~.workspace.Workspace` keeps them), shared by
    every browser tab.

    Args:
        project: the :class:`~.project.Project`.
        start_thread: how a job is run (tests pass one that runs it inline).
    """

    def __init__(
        self, project, *, start_thread: Callable[[Callable[[], None]], None] | None = None
    ):
        self.project = project
        self._start_thread = start_thread or _daemon_thread
        self._lock = threading.Lock()
        self._fit_id: str | None = None
        self._raw: dict[
            str, Reviewed
        ] = {}  # image id -> result at the thresholds it was inspected at
        self._decided: dict[str, Reviewed] = {}  # image id -> result at ``self._key``
        self._key: tuple | None = None
        self._job: _Job | None = None

    # ------------------------------------------------------------------ the job
    def start(self, *, retry: bool = True) -> ReviewProgress:
        """Start inspecting the unlabelled images not yet inspected under the current
        fit; returns at once. Nothing to do (or a job already running): no new job.

        Args:
            retry: start again after a job of this fit failed. A page's poll passes
                False, so a damaged model is reported once, not retried every second.
        """
        record = self.project.fit_record
        if record is None:
            return self.progress()
        with self._lock:
            self._follow(record.id)
            mine = self._job is not None and self._job.fit_id == record.id
            # A job of an older fit stops at its next batch; it does not hold this one up.
            running = mine and self._job.ended is None
            failed = mine and self._job.error is not None
            todo = [r for r in self.project.unlabelled() if r.id not in self._raw]
            if running or not todo or (failed and not retry):
                return self._progress_locked()
            job = self._job = _Job(record.id, time.perf_counter())
        self._start_thread(lambda: self._run(job, todo))
        return self.progress()

    def _follow(self, fit_id: str) -> None:
        """A new fit makes every kept result stale (caller holds the lock)."""
        if fit_id != self._fit_id:
            self._fit_id, self._raw, self._decided, self._key = fit_id, {}, {}, None

    def _run(self, job: _Job, todo) -> None:
        project = self.project
        try:
            inspector = project.load_inspector()
            for start in range(0, len(todo), BATCH):
                with self._lock:
                    if self._fit_id != job.fit_id:
                        return  # a new fit started its own review
                batch, images = [], []
                for record in todo[start : start + BATCH]:
                    try:
                        images.append(project.load_image(record.id))
                        batch.append(record)
                    except DefectkitError:
                        continue  # removed meanwhile
                if not batch:
                    continue
                thresholds = project.thresholds()
                results = inspector.inspect(images, [r.name for r in batch])
                items = [slim(r.id, r.name, res) for r, res in zip(batch, results, strict=True)]
                with self._lock:
                    if self._fit_id != job.fit_id:
                        return
                    if self._key is None:
                        self._key = _key(thresholds)
                    for item in items:
                        self._raw[item.id] = item
                        # decided at the current thresholds unless the slider moved meanwhile
                        if (
                            _key(thresholds) == self._key
                            and item.result.threshold == thresholds.image
                        ):
                            self._decided[item.id] = item
        except DefectkitError as exc:
            job.error = str(exc)
        except Exception as exc:  # the page shows a line; the traceback goes to the log
            log.exception("labelling app: reviewing the unlabelled images failed")
            job.error = (
                f"reviewing stopped ({type(exc).__name__}: {exc}); details are in the server log"
            )
        finally:
            job.ended = time.perf_counter()

    def wait(self, timeout: float = 600.0) -> ReviewProgress:
        """Block until the running job ends (tests, benchmarks); returns the progress."""
        deadline = time.monotonic() + timeout
        while self.progress().running and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.progress()

    # ------------------------------------------------------------------ queries
    def progress(self) -> ReviewProgress:
        with self._lock:
            return self._progress_locked()

    def _progress_locked(self) -> ReviewProgress:
        if self.project.fit_record is None:
            return ReviewProgress()
        ids = [r.id for r in self.project.unlabelled()]
        job = self._job if self._job is not None and self._job.fit_id == self._fit_id else None
        return ReviewProgress(
            total=len(ids),
            done=sum(i in self._raw for i in ids),
            running=job is not None and job.ended is None,
            seconds=round(job.seconds, 1) if job else 0.0,
            error=job.error if job else None,
        )

    def items(self) -> list[Reviewed]:
        """The unlabelled images inspected so far, decided at the project's thresholds.

        Each image is decided once per threshold: a click that only shows results costs
        nothing, a moved threshold decides each image again (reading it for the caption).
        """
        project = self.project
        record = project.fit_record
        if record is None:
            return []
        thresholds = project.thresholds()
        records = project.unlabelled()
        with self._lock:
            self._follow(record.id)
            if _key(thresholds) != self._key:
                self._key, self._decided = _key(thresholds), {}
            todo = [
                self._raw[r.id] for r in records if r.id in self._raw and r.id not in self._decided
            ]
        if todo:
            inspector = project.load_inspector()
            classes, context = tuple(record.classes), inspector.caption_context
            fresh = {}
            for item in todo:
                try:
                    image = project.load_image(item.id)
                except DefectkitError:
                    continue  # removed meanwhile
                result = rethreshold(item.result, classes, thresholds, context, image=image)
                fresh[item.id] = slim(item.id, item.name, result)
            with self._lock:
                if self._key == _key(thresholds) and self._fit_id == record.id:
                    self._decided.update(fresh)
        with self._lock:
            return [self._decided[r.id] for r in records if r.id in self._decided]

    def item(self, image_id: str) -> Reviewed | None:
        """One image's result at the current thresholds (None: not inspected yet)."""
        return next((i for i in self.items() if i.id == image_id), None)

    def forget(self, image_id: str) -> None:
        """Drop an image's results (its bytes or its label changed)."""
        with self._lock:
            self._raw.pop(image_id, None)
            self._decided.pop(image_id, None)


def _key(thresholds) -> tuple:
    return tuple(sorted(thresholds.to_dict().items()))


def _daemon_thread(run: Callable[[], None]) -> None:
    threading.Thread(target=run, name="labelling-review", daemon=True).start()
