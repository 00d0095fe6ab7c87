"""Workers: read, de-duplicate, size up, decode, inspect, commit the row, then finish.

The order is the "nothing lost" rule: a hot-folder file leaves ``processing/`` only
after its row is committed, and every job ends in exactly one of: a committed row
(ok / rejected / error, then moved), a duplicate of a committed row (moved), or - when
the store itself is down - the file handed back to the inbox to be retried.
HTTP jobs end with an :class:`Outcome` (status + JSON) on their future; bad uploads are
answered, not stored (a client can retry them; a bad file in the folder needs a record).

Memory follows pixels: each image's size is read from its header first, images over
``--max-image-mp`` are refused undecoded, and decoding, inference and the overlay run
only while the worker holds the images' pixels from the shared :class:`PixelBudget`.
"""

from __future__ import annotations

import logging
import math
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from defectkit.apps.daemon.bundles import BundleHolder
from defectkit.apps.daemon.errors import StoreError
from defectkit.apps.daemon.hotfolder import HotFolder
from defectkit.apps.daemon.jobs import FOLDER, Job, JobQueue
from defectkit.apps.daemon.logs import log_event
from defectkit.apps.daemon.metrics import DaemonMetrics
from defectkit.apps.daemon.overlay import OverlayWriter
from defectkit.apps.daemon.pixels import PixelBudget, chunks_within
from defectkit.apps.daemon.review import ReviewDesk
from defectkit.apps.daemon.store import Record, ResultStore, row_to_json
from defectkit.core.files import sha256_stream
from defectkit.core.images import MAX_PIXELS, image_size, read_image
from defectkit.errors import ImageError


@dataclass
class Outcome:
    """What an HTTP caller gets: a status code and a JSON body."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class Rejected(Exception):
    """An input that is not usable: ``reason`` is for people, ``kind`` for metrics."""

    def __init__(self, reason: str, kind: str, status: int = 422):
        super().__init__(reason)
        self.reason, self.kind, self.status = reason, kind, status


class Pipeline:
    """Runs batches of jobs; never raises (every job's future is always settled)."""

    def __init__(
        self,
        *,
        bundles: BundleHolder,
        store: ResultStore,
        metrics: DaemonMetrics,
        queue: JobQueue,
        station: str,
        max_bytes: int,
        hotfolder: HotFolder | None = None,
        overlays: OverlayWriter | None = None,
        on_store_error: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        max_pixels: int = MAX_PIXELS,
        pixels: PixelBudget | None = None,
        review: ReviewDesk | None = None,
    ):
        self.bundles, self.store, self.metrics, self.queue = bundles, store, metrics, queue
        self.station, self.max_bytes = station, max_bytes
        self.hotfolder, self.overlays = hotfolder, overlays
        self.on_store_error, self.clock = on_store_error, clock
        self.max_pixels = max_pixels
        self.pixels = pixels or PixelBudget(max_pixels)
        self.review = review

    def run_batch(self, jobs: list[Job]) -> None:
        bundle = self.bundles.current  # one bundle for the whole batch, even during a reload
        try:
            sized: list[tuple[Job, int]] = []
            for job in jobs:
                self._guard(job, self._prepare, job, sized, bundle.id)
            for run in chunks_within(sized, self.pixels.capacity):
                with self.pixels.hold(sum(pixels for _, pixels in run)):
                    self._inspect(bundle, [job for job, _ in run])
        finally:
            for job in jobs:  # exactly once per job, whatever happened above
                if job.source == FOLDER:
                    self.queue.release_folder_slot()
                if not job.future.done():
                    job.future.set_result(
                        Outcome(500, {"error": "internal error: the job was not finished"})
                    )

    # -- stages ----------------------------------------------------------------------

    def _inspect(self, bundle: Any, jobs: list[Job]) -> None:
        """Decode, inspect and commit jobs whose pixels the worker holds."""
        ready: list[tuple[Job, np.ndarray, float]] = []
        for job in jobs:
            self._guard(job, self._decode, job, ready)
        if not ready:
            return
        t0 = time.perf_counter()
        results = _inspect_isolated(
            bundle, [im for _, im, _ in ready], [j.name for j, _, _ in ready]
        )
        per_image = (time.perf_counter() - t0) / len(ready)
        for (job, image, decode_s), result in zip(ready, results, strict=True):
            self.metrics.inference.observe(per_image)
            self._guard(job, self._commit, job, image, result, bundle, decode_s, per_image)

    def _prepare(self, job: Job, sized: list, bundle_id: str) -> None:
        """Load bytes, settle duplicates (this content seen by this bundle), refuse what
        is too large in bytes or pixels; the rest wait for their pixels to be decoded."""
        if job.data is None:
            try:
                job.data, job.signature = _read_claimed(job.path, self.max_bytes)
            except _TooLarge as exc:
                job.digest = exc.sha256
                raise
        if len(job.data) > self.max_bytes:
            raise Rejected(
                f"{len(job.data):,} bytes is more than the --max-upload-mb limit", "too_large", 413
            )
        existing = self.store.get_by_sha(job.sha256, bundle_id)
        if existing is not None and existing["status"] == "ok":
            self._settle_row(job, existing, duplicate=True)
            return
        try:
            width, height = image_size(job.data)
        except ImageError as exc:
            raise Rejected(str(exc), "bad_image") from None
        if width * height > self.max_pixels:
            raise Rejected(
                f"{width}x{height} pixels ({width * height / 1e6:.1f} MP) is more than the "
                f"--max-image-mp limit of {self.max_pixels / 1e6:g} MP; refused before decoding",
                "too_many_pixels", 413,
            )  # fmt: skip
        sized.append((job, width * height))

    def _decode(self, job: Job, ready: list) -> None:
        t0 = time.perf_counter()
        try:
            image = read_image(job.data, max_pixels=self.max_pixels)
        except ImageError as exc:
            raise Rejected(str(exc).replace("<bytes>: ", ""), "bad_image") from None
        ready.append((job, image, time.perf_counter() - t0))

    def _commit(
        self,
        job: Job,
        image: np.ndarray,
        result: Any,
        bundle: Any,
        decode_s: float,
        infer_s: float,
    ):
        bundle_id = bundle.id
        if isinstance(result, BaseException):
            raise _InferenceFailed(f"inference failed: {type(result).__name__}: {result}")
        # A type-only bundle (defect sorting) has no score by design; any other must.
        type_only = result.verdict is None
        if not type_only and not math.isfinite(float(result.score)):
            raise _InferenceFailed(
                f"inference failed: the bundle returned a non-finite score ({result.score})"
            )
        now = self.clock()
        body = _clean(result.to_dict())
        body.pop("path", None)
        if self.overlays is not None:
            body["overlay"] = self._write_overlay(job, image, result, now)
        total_s = time.monotonic() - job.enqueued
        body["daemon_ms"] = {
            "queue": round((total_s - decode_s - infer_s) * 1e3, 3),
            "decode": round(decode_s * 1e3, 3),
            "inference": round(infer_s * 1e3, 3),
            "total": round(total_s * 1e3, 3),
        }
        verdict = result.verdict
        review = self.review.mark(bundle, result) if self.review is not None else None
        if review is not None:  # the line gets the site's policy; the model's answer stays
            verdict = body["verdict"] = review.verdict
            body["review"] = review.to_json()
        record = Record(
            sha256=job.sha256, created_at=now, source=job.source, name=job.name, station=self.station,
            status="ok", verdict=verdict, label=result.label,
            score=None if type_only else float(result.score),
            bundle_id=bundle_id, result=body,
        )  # fmt: skip
        self._check_unchanged(job)
        if review is not None:  # before the row: a retried file finds its part already kept
            self.review.keep(
                review, sha256=job.sha256, name=job.name, data=job.data, result=result,
                body=body, bundle_id=bundle_id, now=now,
            )  # fmt: skip
        row, written = self.store.upsert(record)
        if written:
            self.metrics.inspections.inc(
                source=job.source, verdict=verdict or "none", label=result.label
            )
            self.metrics.latency.observe(total_s, source=job.source)
        self._settle_row(job, row, duplicate=not written)

    def _write_overlay(self, job: Job, image: np.ndarray, result: Any, now: float) -> str | None:
        """The overlay's path under --overlays; None if it could not be written.

        An overlay is a picture *of* the verdict: a full disk or a bad map must not turn
        a good inspection into a rejected part.
        """
        try:
            path = self.overlays.write(image, result, sha256=job.sha256, when=now)
        except (OSError, ValueError) as exc:
            self.metrics.errors.inc(kind="overlay")
            log_event("overlay_failed", level=logging.WARNING, name=job.name, error=str(exc))
            return None
        return str(path.relative_to(self.overlays.folder))

    # -- endings ---------------------------------------------------------------------

    def _guard(self, job: Job, step: Callable[..., None], *args: Any) -> None:
        """Run one job's step; turn every failure into that job's ending."""
        try:
            step(*args)
        except Rejected as exc:
            self._settle_failure(job, "rejected", exc.reason, exc.status, rejected_kind=exc.kind)
        except _InferenceFailed as exc:
            self.metrics.errors.inc(kind="inference")
            self._settle_failure(job, "error", str(exc), 500)
        except StoreError as exc:
            self._store_failed(job, exc)
        except _StillWriting:
            self._give_back(job)
        except FileNotFoundError:
            log_event("vanished", level=logging.WARNING, name=job.name, path=str(job.path))
            if not job.future.done():
                job.future.set_result(Outcome(410, {"error": "the input vanished"}))
        except Exception as exc:  # noqa: BLE001 - one bad job must not stop a worker
            log_event("internal_error", level=logging.ERROR, name=job.name, error=repr(exc))
            self.metrics.errors.inc(kind="internal")
            try:
                self._settle_failure(
                    job, "error", f"internal error: {type(exc).__name__}: {exc}", 500
                )
            except Exception as again:  # noqa: BLE001
                try:
                    self._store_failed(job, again)
                except Exception as last:  # noqa: BLE001 - the file stays in processing/
                    log_event("stuck", level=logging.ERROR, name=job.name, error=repr(last))

    def _settle_row(self, job: Job, row: dict[str, Any], *, duplicate: bool) -> None:
        """The row is committed: answer the caller / move the file."""
        if duplicate:
            self.metrics.duplicates.inc(source=job.source)
        body = row_to_json(row) | {"duplicate": duplicate}
        log_event(  # debug: the database is the record; info stays readable at 100 images/s
            "duplicate" if duplicate else "inspected",
            level=logging.DEBUG, id=row["id"], source=job.source, name=job.name,
            status=row["status"], verdict=row["verdict"], label=row["label"], score=row["score"],
        )  # fmt: skip
        if job.source == FOLDER:
            self._finish_file(job, rejected=row["status"] != "ok", reason=row["error"])
        status = 200 if row["status"] == "ok" else (422 if row["status"] == "rejected" else 500)
        if status != 200:
            body = {"error": row["error"], **body}
        job.future.set_result(Outcome(status, body))

    def _settle_failure(
        self, job: Job, status: str, reason: str, http_status: int, rejected_kind: str = ""
    ):
        """A rejected or failed input: a row + quarantine for files, a 4xx/5xx for uploads."""
        if rejected_kind:
            self.metrics.rejected.inc(source=job.source, reason=rejected_kind)
        if job.source != FOLDER:
            log_event(
                "rejected", level=logging.WARNING, source=job.source, name=job.name, reason=reason
            )
            job.future.set_result(Outcome(http_status, {"error": reason}))
            return
        sha = job.digest or (job.sha256 if job.data is not None else None)
        try:
            self._check_unchanged(job)
        except _StillWriting:
            self._give_back(job)
            return
        if sha is not None:  # unreadable links and oddities get a reason file but no row
            record = Record(
                sha256=sha, created_at=self.clock(), source=job.source, name=job.name,
                station=self.station, status=status, error=reason,
                bundle_id=self.bundles.id,  # rows are unique per (content, bundle)
            )  # fmt: skip
            row, written = self.store.upsert(record)
            if not written:  # a successful row appeared meanwhile: it wins
                self._settle_row(job, row, duplicate=True)
                return
        log_event(
            "rejected", level=logging.WARNING, source=job.source, name=job.name, reason=reason
        )
        self._finish_file(job, rejected=True, reason=reason, sha=sha)
        job.future.set_result(Outcome(http_status, {"error": reason}))

    def _check_unchanged(self, job: Job) -> None:
        """Raise :class:`_StillWriting` when a claimed file changed after it was read.

        A writer that paused longer than the settle time and then went on would
        otherwise leave a row for half the file while the whole file sits in done/ or
        rejected/ (and a retry would add a second row for the same part).
        """
        if (
            job.source == FOLDER and job.signature is not None and self.hotfolder is not None
            and self.hotfolder.changed_since(job.path, job.signature)
        ):  # fmt: skip
            raise _StillWriting()

    def _give_back(self, job: Job) -> None:
        """The file was still being written: back to the inbox, no row; taken again once settled."""
        self.metrics.skipped.inc(kind="still_writing")
        log_event(
            "still_writing", level=logging.WARNING, name=job.name,
            hint="the file changed after it was read; raise --settle-time or write then rename",
        )  # fmt: skip
        self.hotfolder.release(job.path)
        job.future.set_result(Outcome(409, {"error": "the file changed while it was read"}))

    def _store_failed(self, job: Job, exc: BaseException) -> None:
        self.metrics.errors.inc(kind="store")
        log_event("store_error", level=logging.ERROR, name=job.name, error=str(exc))
        self.on_store_error()
        if job.source == FOLDER and self.hotfolder is not None and job.path is not None:
            self.hotfolder.release(job.path)  # back to the inbox: retried when the store is back
        if not job.future.done():
            job.future.set_result(Outcome(503, {"error": "the results store is unavailable; retry later"},
                                          {"Retry-After": "5"}))  # fmt: skip

    def _finish_file(
        self, job: Job, *, rejected: bool, reason: str | None, sha: str | None = None
    ) -> None:
        if self.hotfolder is None or job.path is None:
            return
        final = self.hotfolder.finish(
            job.path, rejected=rejected, sha256=sha or job.digest, reason=reason
        )
        log_event("moved", level=logging.DEBUG, name=job.name, to=str(final))


class _InferenceFailed(Exception):
    pass


class _StillWriting(Exception):
    pass


def _inspect_isolated(bundle: Any, images: list[np.ndarray], names: list[str | None]) -> list[Any]:
    """``bundle.inspect`` on the batch; if it fails, image by image to find the culprit."""
    try:
        results = bundle.inspect(images, paths=names)
        if len(results) != len(images):
            raise RuntimeError(
                f"the bundle returned {len(results)} results for {len(images)} images"
            )
        return list(results)
    except Exception as exc:  # noqa: BLE001 - runtime errors are per-image outcomes here
        if len(images) == 1:
            return [exc]
        return [
            _inspect_isolated(bundle, [im], [n])[0] for im, n in zip(images, names, strict=True)
        ]


def _read_claimed(path: Path | None, max_bytes: int) -> tuple[bytes, tuple[int, int]]:
    """A claimed file's bytes and its (size, mtime_ns) when read, without following
    links or blocking on FIFOs."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if os.path.islink(path):
            raise Rejected(
                "symbolic links are not followed; copy the image into the folder", "not_a_file"
            ) from None
        raise Rejected(f"cannot open the file ({exc.strerror})", "unreadable") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise Rejected("not a regular file", "not_a_file")
        if st.st_size > max_bytes:
            raise _TooLarge(st.st_size, sha256_stream(f))
        # What was read, stamped with the mtime from before reading: a write during or
        # after the read changes the size or the mtime, and changed_since sees it.
        return f.read(), (st.st_size, st.st_mtime_ns)


class _TooLarge(Rejected):
    """A hot-folder file over the limit: hashed (streaming) so it still gets its one row."""

    def __init__(self, size: int, sha256: str):
        super().__init__(f"{size:,} bytes is more than the --max-upload-mb limit", "too_large", 413)
        self.sha256 = sha256


def _clean(value: Any) -> Any:
    """Non-finite floats -> None and numpy scalars -> Python, so every result is valid JSON."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class WorkerPool:
    """``workers`` threads taking batches until the queue is closed and drained."""

    def __init__(self, queue: JobQueue, pipeline: Pipeline, *, workers: int, batch_size: int):
        self.queue, self.pipeline, self.batch_size = queue, pipeline, batch_size
        self.threads = [
            threading.Thread(target=self._loop, name=f"inspect-worker-{i}", daemon=True)
            for i in range(workers)
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def alive(self) -> int:
        return sum(t.is_alive() for t in self.threads)

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for t in self.threads:
            if t.ident is not None:  # started
                t.join(max(0.0, deadline - time.monotonic()))
        return self.alive() == 0

    def _loop(self) -> None:
        while True:
            batch = self.queue.take(self.batch_size, timeout=0.5)
            if batch is None:
                return
            if batch:
                self.pipeline.run_batch(batch)
