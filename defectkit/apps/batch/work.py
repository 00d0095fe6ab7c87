"""The Dask task: inspect one chunk of an archive on a worker, with the torch-free runtime.

A worker process loads the bundle once (the runtime verifies every file's SHA-256) and
checks that its id is the one the run started with, so a worker holding another copy
of the bundle fails loudly instead of writing rows under the wrong name. Files are
read, hashed, decoded and inspected in groups of the Predictor's batch size, so a chunk
of 5-megapixel images never holds more than one group decoded at once.

Every location ends as exactly one :class:`FileOutcome`; a file that cannot be read or
decoded is an outcome with its reason, never an exception, so one bad file neither
fails the chunk nor makes Dask retry it. The task writes nothing: the driver commits
the outcomes (:mod:`.job`), so a task that is retried after its worker died cannot
leave half a chunk behind.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from defectkit.apps.batch.sources import read_location
from defectkit.core.files import sha256_bytes
from defectkit.core.images import read_image
from defectkit.core.predictor import BATCH_SIZE
from defectkit.errors import BundleError, ConfigError, ImageError

#: The default bundle loader: the torch-free runtime. Tests name the daemon's double.
RUNTIME_LOADER = "defectkit.exporters.runtime:load_bundle"
#: ``sha256`` of a row for a file that could not be read: the hash of its *location*,
#: prefixed so it can never be mistaken for (or joined with) a content hash.
UNREAD_PREFIX = "path:"
#: Largest file read by default; bigger ones get a row saying so.
MAX_FILE_MB = 256.0


@dataclass(frozen=True)
class ChunkJob:
    """One task's work: a few locations and how to load the bundle for them.

    Attributes:
        bundle: the bundle folder, at the same path on every worker.
        bundle_id: the id the driver loaded; a worker's copy must have it.
        streams: inference streams per worker host (workers x threads on that machine),
            so the runtime gives each concurrent caller its share of the cores; hosts
            not listed use the worker's own thread count.
    """

    bundle: str
    bundle_id: str
    locations: tuple[str, ...]
    device: str = "CPU"
    streams: dict[str, int] = field(default_factory=dict)
    max_bytes: int = int(MAX_FILE_MB * 2**20)
    loader: str = RUNTIME_LOADER


@dataclass(frozen=True)
class FileOutcome:
    """What became of one file: a verdict (``ok``) or a reason (``rejected``/``error``)."""

    location: str
    sha256: str
    status: str  # "ok" | "rejected" | "error"
    verdict: str | None = None
    label: str | None = None
    score: float | None = None
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChunkTimings:
    """Seconds this task spent per stage (``load``: 0 when the bundle was cached)."""

    load: float = 0.0
    read: float = 0.0
    decode: float = 0.0
    inspect: float = 0.0


@dataclass(frozen=True)
class ChunkResult:
    outcomes: tuple[FileOutcome, ...]
    worker: str  # "host:pid"
    timings: ChunkTimings


@dataclass(frozen=True)
class WorkerInfo:
    """A worker after :func:`prepare_worker`: what it loaded and what it imported."""

    worker: str
    bundle_id: str
    load_seconds: float
    engine: str
    torch_imported: bool


def inspect_chunk(job: ChunkJob) -> ChunkResult:
    """Inspect ``job.locations``: one outcome per location, in order."""
    t0 = time.perf_counter()
    bundle, loaded = _worker_bundle(job)
    times = dict.fromkeys(("read", "decode", "inspect"), 0.0)
    times["load"] = time.perf_counter() - t0 if loaded else 0.0
    outcomes: list[FileOutcome] = []
    for start in range(0, len(job.locations), BATCH_SIZE):
        group = job.locations[start : start + BATCH_SIZE]
        ready: list[tuple[str, str, Any]] = []  # location, sha256, image
        for location in group:
            outcome = _decode(location, job.max_bytes, ready, times)
            if outcome is not None:
                outcomes.append(outcome)
        t0 = time.perf_counter()
        results = _inspect_isolating_failures(
            bundle, [im for _, _, im in ready], [loc for loc, _, _ in ready]
        )
        times["inspect"] += time.perf_counter() - t0
        outcomes += [
            _outcome(loc, sha, res) for (loc, sha, _), res in zip(ready, results, strict=True)
        ]
    order = {loc: i for i, loc in enumerate(job.locations)}
    outcomes.sort(key=lambda o: order[o.location])
    return ChunkResult(tuple(outcomes), _worker_name(), ChunkTimings(**times))


def prepare_worker(job: ChunkJob) -> WorkerInfo:
    """Load and verify the bundle on this worker before any file (``client.run``)."""
    t0 = time.perf_counter()
    bundle, _ = _worker_bundle(job)
    engine = getattr(getattr(bundle, "engine", None), "name", type(bundle).__name__)
    return WorkerInfo(
        _worker_name(), bundle.id, time.perf_counter() - t0, engine, "torch" in sys.modules
    )


# -- one file ------------------------------------------------------------------------------


def _decode(
    location: str, max_bytes: int, ready: list, times: dict[str, float]
) -> FileOutcome | None:
    """Read and decode one file into ``ready``; or its rejected outcome."""
    t0 = time.perf_counter()
    try:
        file = read_location(location, max_bytes)
    except Exception as exc:  # noqa: BLE001 - OSError locally, anything from a cloud back-end
        times["read"] += time.perf_counter() - t0
        key = UNREAD_PREFIX + sha256_bytes(location.encode())
        return FileOutcome(location, key, "rejected", error=f"cannot read the file ({exc})")
    times["read"] += time.perf_counter() - t0
    if file.data is None:
        return FileOutcome(
            location, file.sha256, "rejected",
            error=f"{file.size:,} bytes is more than the {max_bytes / 2**20:g} MiB limit (--max-file-mb)",
        )  # fmt: skip
    t0 = time.perf_counter()
    try:
        image = read_image(file.data)
    except ImageError as exc:
        return FileOutcome(
            location, file.sha256, "rejected", error=str(exc).replace("<bytes>: ", "")
        )
    finally:
        times["decode"] += time.perf_counter() - t0
    ready.append((location, file.sha256, image))
    return None


def _outcome(location: str, sha256: str, result: Any) -> FileOutcome:
    if isinstance(result, BaseException):
        error = f"inference failed: {type(result).__name__}: {result}"
        return FileOutcome(location, sha256, "error", error=error)
    score = float(result.score)
    if not math.isfinite(score):
        error = f"inference failed: the bundle returned a non-finite score ({score})"
        return FileOutcome(location, sha256, "error", error=error)
    body = _json_safe(result.to_dict())
    body.pop("path", None)  # the row's name holds the location
    return FileOutcome(
        location, sha256, "ok", verdict=result.verdict, label=result.label, score=score, result=body
    )


def _inspect_isolating_failures(bundle: Any, images: list, names: list[str]) -> list[Any]:
    """``bundle.inspect`` on the group; if the group fails, each image alone, so the
    exception lands on the image that caused it and the others keep their verdicts."""
    if not images:
        return []
    try:
        results = list(bundle.inspect(images, names))
        if len(results) == len(images):
            return results
        failure: BaseException = RuntimeError(f"{len(results)} results for {len(images)} images")
    except Exception as exc:  # noqa: BLE001 - a runtime error is a per-image outcome here
        failure = exc
    if len(images) == 1:
        return [failure]
    return [
        _inspect_isolating_failures(bundle, [im], [n])[0]
        for im, n in zip(images, names, strict=True)
    ]


def _json_safe(body: dict[str, Any]) -> dict[str, Any]:
    """The result JSON with NaN and infinities as null (the store refuses them) and numpy
    values as plain numbers."""
    text = json.dumps(body, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))
    return json.loads(text, parse_constant=lambda _constant: None)


# -- the bundle, once per worker process -------------------------------------------------

_lock = threading.Lock()
_cached: tuple[tuple, Any] | None = None  # (key, bundle): the last bundle only


def _worker_bundle(job: ChunkJob) -> tuple[Any, bool]:
    """This process's bundle for ``job`` and whether this call loaded it.

    One bundle per process, replaced when a run with another bundle arrives (workers of
    an existing cluster outlive runs); the lock makes concurrent tasks wait for one load.
    """
    global _cached
    streams = _streams(job.streams)
    key = (job.bundle, job.bundle_id, job.device, streams, job.loader)
    with _lock:
        if _cached is not None and _cached[0] == key:
            return _cached[1], False
        _cached = None  # free the previous bundle before loading the next
        bundle = resolve_loader(job.loader)(job.bundle, device=job.device, streams=streams)
        if bundle.id != job.bundle_id:
            raise BundleError(
                f"{job.bundle} on worker {_worker_name()} is bundle {bundle.id}, not "
                f"{job.bundle_id} as on the machine that started the run; copy the same "
                "bundle folder to every worker"
            )
        _cached = (key, bundle)
        return bundle, True


def _streams(per_host: dict[str, int]) -> int:
    """Concurrent inference calls on this machine: the driver's count for this host, else
    this worker's thread count, else 1 (outside a Dask worker)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return 1
    host = worker.address.split("://")[-1].rsplit(":", 1)[0]
    return max(1, int(per_host.get(host) or worker.state.nthreads))


def resolve_loader(entry: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function (imported here, on the worker)."""
    module, _, name = entry.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"cannot load the bundle loader {entry!r} on this worker ({exc})"
        ) from None


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
