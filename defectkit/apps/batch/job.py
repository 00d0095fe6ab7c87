"""The driver of ``inspect batch``: list, skip what is done, submit chunks, commit rows.

Exactly once, and why it survives ``kill -9``:

- The store is the only record of progress. A row is unique by (content hash, bundle
  id), and the driver commits a chunk's rows in one transaction as its task finishes;
  nothing else is written, so a killed driver leaves whole chunks or nothing.
- A restarted run lists the same files and asks the store, chunk by chunk, which
  locations already have a row for this bundle (an indexed query; the listing is never
  held in memory). Those are skipped without being read. A file moved or copied under
  another name is read again but stored once: its content hash is already there.
- A worker killed mid-task loses only that task's results, which were never written;
  Dask runs the task again on another worker. A chunk whose workers keep dying (a file
  that crashes the decoder, exhausts memory) comes back as ``KilledWorker`` and is split
  in halves until the one file is found and recorded as an error, so no file is
  retried forever and the others still get their verdicts.
- Unreadable and undecodable files are rows with the reason (``rejected``), so a
  resumed run skips them too; ``--retry-failed`` reads them once more.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from defectkit.apps.batch.cluster import ClusterError, ClusterInfo, describe
from defectkit.apps.batch.progress import Progress, Tally
from defectkit.apps.batch.sources import Source, chunked
from defectkit.apps.batch.work import (
    MAX_FILE_MB,
    RUNTIME_LOADER,
    UNREAD_PREFIX,
    ChunkJob,
    ChunkResult,
    ChunkTimings,
    FileOutcome,
    WorkerInfo,
    inspect_chunk,
    prepare_worker,
    resolve_loader,
)
from defectkit.apps.daemon.store import Record, ResultStore
from defectkit.core.files import sha256_bytes
from defectkit.errors import ConfigError, DefectkitError

#: ``source`` of the rows an archive run writes (the daemon writes "folder" and "http").
SOURCE = "batch"
#: Files per task: ~1 s of inference per task keeps the scheduler's few milliseconds
#: per task negligible while a killed worker loses little.
CHUNK_SIZE = 32


@dataclass(frozen=True)
class BatchConfig:
    """One run; each field is one ``inspect batch`` flag."""

    bundle: Path
    sources: tuple[str, ...]
    store: str
    scheduler: str | None = None
    workers: int | None = None
    station: str = field(default_factory=socket.gethostname)
    chunk_size: int = CHUNK_SIZE
    retry_failed: bool = False
    device: str = "CPU"
    max_file_mb: float = MAX_FILE_MB
    loader: str = RUNTIME_LOADER  # tests and benchmarks name a test double

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ConfigError(f"--chunk-size must be at least 1, got {self.chunk_size}")
        if not self.max_file_mb > 0:
            raise ConfigError(f"--max-file-mb must be positive, got {self.max_file_mb}")


@dataclass
class BatchSummary:
    """What a run did: the counts, the time and the per-stage costs workers reported."""

    bundle_id: str
    total: int
    tally: Tally
    seconds: float  # the whole run, from listing to the last commit
    prepare_seconds: float = 0.0  # of which: loading the bundle on every worker
    tasks: int = 0
    split_chunks: int = 0  # chunks split after KilledWorker
    worker_seconds: dict[str, float] = field(default_factory=dict)  # stage -> sum over tasks
    store_seconds: float = 0.0  # driver time committing rows

    @property
    def files_per_second(self) -> float:
        """Files read and stored per second once the workers were ready (skipped files
        are not counted: a resumed run's rate is that of the work it did)."""
        worked = self.tally.done - self.tally.skipped
        seconds = self.seconds - self.prepare_seconds
        return worked / seconds if seconds > 0 else 0.0


def bundle_identity(config: BatchConfig) -> str:
    """Load the bundle here once: a tampered or unreadable bundle fails before any
    cluster starts, and its id is what every worker's copy must match."""
    bundle = resolve_loader(config.loader)(config.bundle, device=config.device)
    return str(bundle.id)


def run_batch(
    config: BatchConfig,
    client: Any,
    store: ResultStore,
    *,
    bundle_id: str | None = None,
    progress: Callable[[int], Progress] | None = None,
    on_cluster: Callable[[ClusterInfo, list[WorkerInfo]], None] | None = None,
) -> BatchSummary:
    """Inspect every file of ``config.sources`` not yet in ``store`` for this bundle.

    Args:
        client: a connected ``distributed.Client`` (:func:`.cluster.open_client`).
        store: the results store (:func:`defectkit.apps.daemon.store.open_store`).
        bundle_id: the bundle's id when the caller already loaded it.
        progress: ``progress(total) -> Progress``; None reports nothing.
        on_cluster: told the cluster and the workers once they have the bundle.

    Raises:
        DatasetError: a SOURCE that lists nothing. BundleError: a bundle that does not
        load, here or on a worker. StoreError: the store failed (committed rows stay;
        run again to resume). ClusterError: workers that cannot run defectkit.
    """
    t_start = time.perf_counter()
    bundle_id = bundle_id or bundle_identity(config)
    source = Source(config.sources)
    total = source.count()
    cluster = describe(client)
    template = ChunkJob(
        bundle=str(Path(config.bundle).resolve()), bundle_id=bundle_id, locations=(),
        device=config.device, streams=cluster.streams,
        max_bytes=int(config.max_file_mb * 2**20), loader=config.loader,
    )  # fmt: skip
    t_prepare = time.perf_counter()
    workers = _prepare_workers(client, template)
    if on_cluster is not None:
        on_cluster(cluster, workers)
    summary = BatchSummary(bundle_id, total, Tally(), 0.0, time.perf_counter() - t_prepare)
    run = _Run(config, client, store, template, summary, progress(total) if progress else None)
    try:
        for chunk in chunked(iter(source), config.chunk_size):
            todo = _not_done(store, bundle_id, chunk, config.retry_failed)
            run.count(Tally(skipped=len(chunk) - len(todo)))
            if todo:
                run.submit(todo)
            run.collect(keep=max(2, 2 * cluster.threads))
        run.collect(keep=0)
    finally:
        run.cancel_pending()
        if run.progress is not None:
            run.progress.close()
    run.summary.seconds = time.perf_counter() - t_start
    return run.summary


class _Run:
    """The futures in flight and what finished: submit, collect, commit."""

    def __init__(self, config: BatchConfig, client: Any, store: ResultStore, template: ChunkJob,
                 summary: BatchSummary, progress: Progress | None):  # fmt: skip
        self.config, self.client, self.store = config, client, store
        self.template, self.summary, self.progress = template, summary, progress
        self.pending: dict[Any, ChunkJob] = {}

    def submit(self, locations: list[str]) -> None:
        job = replace(self.template, locations=tuple(locations))
        # pure=False: a resubmitted chunk must run again, not reuse a lost result's key.
        future = self.client.submit(inspect_chunk, job, pure=False, retries=0)
        self.pending[future] = job
        self.summary.tasks += 1

    def collect(self, *, keep: int) -> None:
        """Commit finished tasks until at most ``keep`` are in flight."""
        from distributed import wait

        while len(self.pending) > keep:
            finished = wait(list(self.pending), return_when="FIRST_COMPLETED").done
            for future in finished:
                self._finish(future, self.pending.pop(future))

    def _finish(self, future: Any, job: ChunkJob) -> None:
        from distributed import KilledWorker

        if future.status == "finished":
            self._commit(future.result(), job)
            return
        if future.status != "error":  # cancelled: the scheduler restarted or lost the task
            raise ClusterError(
                f"the Dask scheduler dropped a task ({future.status}); committed rows are "
                "kept: run the same command again to resume"
            )
        exc = future.exception()
        if isinstance(exc, KilledWorker):
            self._killed(job)
        elif isinstance(exc, DefectkitError):
            raise exc
        elif isinstance(exc, ImportError):
            raise ClusterError(
                f"a Dask worker cannot import what inspect batch needs ({exc}); install "
                "defectkit with the serve extra on every worker"
            ) from None
        else:
            raise RuntimeError(
                f"a task failed on {job.locations[0]} and {len(job.locations) - 1} more files: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _killed(self, job: ChunkJob) -> None:
        """The task's workers kept dying: halve the chunk to corner the file that kills
        them; a single such file gets an error row."""
        if len(job.locations) > 1:
            half = len(job.locations) // 2
            self.summary.split_chunks += 1
            self.submit(list(job.locations[:half]))
            self.submit(list(job.locations[half:]))
            return
        location = job.locations[0]
        error = ("the worker inspecting this file died every time it was tried "
                 "(out of memory? a crash in a decoder?)")  # fmt: skip
        key = UNREAD_PREFIX + sha256_bytes(location.encode())
        outcome = FileOutcome(location, key, "error", error=error)
        self._commit(ChunkResult((outcome,), "-", ChunkTimings()), job)

    def _commit(self, result: ChunkResult, job: ChunkJob) -> None:
        now = time.time()
        records = [
            _record(o, self.template.bundle_id, self.config.station, now) for o in result.outcomes
        ]
        t0 = time.perf_counter()
        written = self.store.upsert_many(records)
        self.summary.store_seconds += time.perf_counter() - t0
        tally = Tally()
        for outcome, new in zip(result.outcomes, written, strict=True):
            if not new:
                tally.duplicates += 1
            elif outcome.status == "ok":
                tally.inspected += 1
            elif outcome.status == "rejected":
                tally.rejected += 1
            else:
                tally.errors += 1
        for stage, seconds in vars(result.timings).items():
            self.summary.worker_seconds[stage] = (
                self.summary.worker_seconds.get(stage, 0.0) + seconds
            )
        self.count(tally)

    def count(self, tally: Tally) -> None:
        self.summary.tally.add(tally)
        if self.progress is not None:
            self.progress.update(self.summary.tally)

    def cancel_pending(self) -> None:
        if self.pending:
            self.client.cancel(list(self.pending))
            self.pending.clear()


def _prepare_workers(client: Any, template: ChunkJob) -> list[WorkerInfo]:
    """Load the bundle on every worker now: a worker with another bundle, a missing
    runtime or no defectkit at all fails the run before any file is read."""
    try:
        return list(client.run(prepare_worker, template).values())
    except DefectkitError:
        raise
    except ImportError as exc:
        raise ClusterError(
            f"a Dask worker cannot import defectkit's runtime ({exc}); install "
            "'defectkit[serve]' on every worker, with the same version as here"
        ) from None


def _not_done(
    store: ResultStore, bundle_id: str, chunk: list[str], retry_failed: bool
) -> list[str]:
    """The locations of ``chunk`` with no row of this run's bundle (with ``retry_failed``:
    no successful row)."""
    p = store.dialect.param
    sql = (
        f"SELECT name FROM inspections WHERE bundle_id = {p} AND source = {p} "
        f"AND name IN ({', '.join([p] * len(chunk))})"
    )
    if retry_failed:
        sql += " AND status = 'ok'"
    done = {row["name"] for row in store.select(sql, [bundle_id, SOURCE, *chunk])}
    return [location for location in chunk if location not in done]


def _record(outcome: FileOutcome, bundle_id: str, station: str, now: float) -> Record:
    return Record(
        sha256=outcome.sha256, created_at=now, source=SOURCE, name=outcome.location,
        station=station, status=outcome.status, verdict=outcome.verdict, label=outcome.label,
        score=outcome.score, bundle_id=bundle_id, error=outcome.error, result=outcome.result,
    )  # fmt: skip


def run(
    config: BatchConfig, *, stream: IO[str] = sys.stderr, bar: bool | None = None,
    dashboard: str | None = "127.0.0.1:8787",
) -> BatchSummary:  # fmt: skip
    """A whole run: check the bundle and the sources here, open the store and the
    cluster, report progress on ``stream``, close everything. What the CLI calls."""
    from defectkit.apps.batch.cluster import open_client
    from defectkit.apps.daemon.store import open_store

    bundle_id = bundle_identity(config)
    Source(config.sources)  # a missing folder or bad glob fails before a cluster starts

    def announce(cluster: ClusterInfo, workers: list[WorkerInfo]) -> None:
        print(f"inspect batch: bundle {bundle_id} on {len(workers)} workers, {cluster.description}",
              file=stream, flush=True)  # fmt: skip
        if cluster.dashboard:
            plots = config.scheduler or importlib.util.find_spec(
                "bokeh"
            )  # a remote one may have it
            hint = "" if plots else " (install bokeh for its plots)"
            print(
                f"inspect batch: Dask dashboard {cluster.dashboard}{hint}", file=stream, flush=True
            )

    store = open_store(config.store)
    try:
        with open_client(config.scheduler, workers=config.workers, dashboard=dashboard) as client:
            return run_batch(
                config, client, store, bundle_id=bundle_id, on_cluster=announce,
                progress=lambda total: Progress(total, stream=stream, bar=bar),
            )  # fmt: skip
    finally:
        store.close()
