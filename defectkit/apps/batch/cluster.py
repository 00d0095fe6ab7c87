"""The Dask cluster a run uses: a LocalCluster on this machine, or an existing one.

A LocalCluster has ``workers`` single-threaded worker *processes*: the runtimes release
the GIL while they infer, but decoding, preprocessing and deciding are Python and numpy
work that threads would serialise. Its scheduler, workers and dashboard listen on
127.0.0.1 only. An existing cluster is reached by its scheduler address; its workers
must have defectkit with the ``serve`` extra and see the bundle and the files at the
same paths (or read them through fsspec URLs).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from defectkit.errors import ConfigError, DefectkitError

#: How long to wait for an existing scheduler to answer and for its first worker.
CONNECT_TIMEOUT_S = 30.0


class ClusterError(DefectkitError):
    """The Dask cluster cannot be started or reached, or has no usable workers."""


@dataclass(frozen=True)
class ClusterInfo:
    """What a run tells the user and what the tasks need about the cluster.

    Attributes:
        dashboard: the dashboard's URL, or None when the scheduler serves none.
        threads: worker threads in all (tasks that can run at once).
        streams: per worker host, the threads of all its workers: how many inference
            calls share that machine's cores.
    """

    description: str
    dashboard: str | None
    threads: int
    streams: dict[str, int]


def default_workers() -> int:
    """One worker process per core: each runs its inference on its share of the cores."""
    return max(1, os.cpu_count() or 1)


@contextmanager
def open_client(
    scheduler: str | None = None,
    *,
    workers: int | None = None,
    dashboard: str | None = "127.0.0.1:8787",
) -> Iterator[Any]:
    """A connected ``distributed.Client``; a LocalCluster it started is closed afterwards.

    Args:
        scheduler: ``tcp://host:8786`` of an existing cluster; None starts a LocalCluster.
        workers: LocalCluster worker processes (default: one per core). With
            ``scheduler`` it is the number of workers to wait for (default 1).
        dashboard: where a LocalCluster serves its dashboard (None: none; a taken port
            moves to a free one).

    Raises:
        ClusterError: ``dask``/``distributed`` missing, the scheduler unreachable, no
            worker within :data:`CONNECT_TIMEOUT_S`.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError(
            "inspect batch needs Dask: pip install 'defectkit[batch]' (dask, distributed)"
        ) from None
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if scheduler is None:
        import dask

        # Dask's nannies set MALLOC_TRIM_THRESHOLD_ in their workers, which pins glibc's
        # mmap threshold: every per-batch array (maps at image size) is then fresh pages,
        # costing CPU on every image (measured in benchmarks/results/archive_batch.md).
        # A worker's arrays live for one batch, so the default heap reuses them.
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = LocalCluster(
                n_workers=workers or default_workers(), threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address=dashboard, silence_logs=logging.ERROR,
            )  # fmt: skip
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
    with client:
        try:
            client.wait_for_workers(workers or 1, timeout=CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise ClusterError(
                f"the Dask scheduler at {scheduler} has no {workers or 1} worker(s) after "
                f"{CONNECT_TIMEOUT_S:g} s; start some with `dask worker {scheduler}`"
            ) from None
        yield client


def describe(client: Any) -> ClusterInfo:
    """Workers, threads and dashboard of the cluster behind ``client``."""
    info = client.scheduler_info()
    streams: dict[str, int] = {}
    for address, worker in info.get("workers", {}).items():
        host = address.split("://")[-1].rsplit(":", 1)[0]
        streams[host] = streams.get(host, 0) + int(worker.get("nthreads", 1))
    threads = sum(streams.values())
    dashboard = client.dashboard_link if "dashboard" in info.get("services", {}) else None
    kind = "LocalCluster" if type(client.cluster).__name__ == "LocalCluster" else "cluster"
    text = f"{kind} at {client.scheduler.address}: {len(info.get('workers', {}))} workers, {threads} threads"
    return ClusterInfo(text, dashboard, threads, streams)
