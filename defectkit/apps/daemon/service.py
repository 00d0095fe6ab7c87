"""Wiring: build the parts from a :class:`ServeConfig`, run uvicorn, stop gracefully.

Start-up order is chosen so that every refusal happens before anything is bound or
moved: validate flags -> lock the hot folder -> verify (and check the signature of) and
load the bundle -> open the store (refusing a new empty one beside a non-empty
``done/``) -> bind the port -> start workers -> recover ``processing/`` -> scan.

Signals are ours, not uvicorn's: SIGTERM/SIGINT stop the scanner and close the queue
at once (new uploads get 503), uvicorn lets in-flight requests finish, the workers
drain the queue, and the process exits 0. SIGHUP reloads the bundle (systemd's
``ExecReload``). uvicorn's own signal capture would re-raise SIGTERM after its
shutdown and turn a clean stop into a kill by signal.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from defectkit.apps.daemon import logs
from defectkit.apps.daemon.bundles import BundleHolder, Loader, load_runtime_bundle
from defectkit.apps.daemon.config import ServeConfig, read_token, token_file_is_private
from defectkit.apps.daemon.errors import ServeError, StoreError
from defectkit.apps.daemon.follow import ChannelFollower
from defectkit.apps.daemon.hotfolder import FolderLayout, HotFolder, SkipReporter, StabilityTracker
from defectkit.apps.daemon.jobs import JobQueue
from defectkit.apps.daemon.logs import log_event
from defectkit.apps.daemon.metrics import DaemonMetrics
from defectkit.apps.daemon.overlay import OverlayWriter
from defectkit.apps.daemon.pixels import PixelBudget
from defectkit.apps.daemon.review import ReviewDesk
from defectkit.apps.daemon.scanner import FolderScanner
from defectkit.apps.daemon.store import ResultStore, open_store
from defectkit.apps.daemon.storehealth import refuse_empty_store, refuse_missing_store
from defectkit.apps.daemon.uploads import UploadBudget
from defectkit.apps.daemon.worker import Pipeline, WorkerPool
from defectkit.apps.reviewqueue.store import BoundedStore, ReviewLimits, open_review_store
from defectkit.errors import BundleError
from defectkit.exporters.signing import load_trusted_key

STORE_RETRY_S = 5.0
#: /healthz writes to the store at most this often (a probe is one small commit).
PROBE_INTERVAL_S = 1.0


class ReloadPathError(ValueError):
    """A reload path that is not a path (a NUL byte, undecodable): HTTP 400."""


class Service:
    """Everything but the HTTP server; usable in-process by tests (see :meth:`start`)."""

    def __init__(self, config: ServeConfig, *, loader: Loader = load_runtime_bundle):
        config.validate()
        self.config = config
        self.token = read_token(config.token_file) if config.token_file else None
        trusted = [load_trusted_key(path) for path in config.trust]
        self.stopping = False
        # Upload bytes being received or waiting for a verdict (event loop only): bounded
        # in bytes, not connections, so a client sending a byte a second holds nothing.
        self.uploads = UploadBudget(config.max_uploads * config.max_upload_bytes)
        self.started_at = time.time()
        self._folder_lock: Any = None
        self.store: ResultStore | None = None
        self.review_store: BoundedStore | None = None
        self._probed: tuple[float, str | None] = (-1e9, None)  # (when, problem)
        try:
            self.layout = FolderLayout.under(config.watch) if config.watch else None
            if self.layout is not None:
                self.layout.create()
                self._folder_lock = _lock_folder(self.layout.state)
            self.bundles = BundleHolder(
                config.bundle, loader=loader, device=config.device, streams=config.workers,
                trusted=trusted,
            )  # fmt: skip
            self.store = self._open_store()
            self.review_store = open_review_store(
                config.review_database(),
                ReviewLimits(config.review_keep, int(config.review_max_mb * 2**20)),
                station=config.station_name,
            )
        except BaseException:
            self.close()
            raise
        self.queue = JobQueue(config.queue_size)
        self.pixels = PixelBudget(config.pixel_budget)
        self.metrics = DaemonMetrics(
            queue_depth=lambda: len(self.queue),
            queue_capacity=config.queue_size,
            bundle_id=lambda: self.bundles.id,
            pixels_in_flight=lambda: self.pixels.in_use,
            pixel_budget=self.pixels.capacity,
            store_up=lambda: float(self.stopping or self.store_problem() is None),
            review_queued=lambda: self.review.queued(),
        )
        self.review = ReviewDesk(
            policy=config.review_policy, store=self.review_store, metrics=self.metrics,
            station=config.station_name,
        )
        self.store.on_error = lambda operation: self.metrics.store_errors.inc(operation=operation)
        self._report_review_store()
        self.hotfolder = (
            HotFolder(
                self.layout, tracker=StabilityTracker(settle_s=config.settle_time),
                skips=SkipReporter(after_s=max(config.settle_time, config.poll_interval)),
            )
            if self.layout else None
        )  # fmt: skip
        self.scanner = (
            FolderScanner(
                self.hotfolder, self.queue, poll_interval=config.poll_interval,
                on_skip=lambda kind: self.metrics.skipped.inc(kind=kind),
            )
            if self.hotfolder else None
        )  # fmt: skip
        self.pipeline = Pipeline(
            bundles=self.bundles, store=self.store, metrics=self.metrics, queue=self.queue,
            station=config.station_name, max_bytes=config.max_upload_bytes, hotfolder=self.hotfolder,
            overlays=OverlayWriter(config.overlays) if config.overlays else None,
            on_store_error=self._pause_scanner, max_pixels=config.max_image_pixels, pixels=self.pixels,
            review=self.review,
        )  # fmt: skip
        self.workers = WorkerPool(
            self.queue, self.pipeline, workers=config.workers, batch_size=config.batch_size
        )
        self.follower = (
            ChannelFollower(
                config.bundle, serving=lambda: self.bundles.path, reload=self.reload,
                interval=config.follow_interval,
            )
            if config.follow_interval > 0 else None
        )  # fmt: skip

    def _open_store(self) -> ResultStore:
        """Open ``--db``; refuse a missing or empty one beside a non-empty ``done/``.

        After ``rm results.db`` a restart would otherwise begin an empty store while
        done/ holds every inspected file: the results would be gone without a word.
        """
        database = self.config.database()
        check = self.layout is not None and not self.config.new_store
        if check:
            refuse_missing_store(database, self.layout.done)
        store = open_store(database)
        if check:
            try:
                refuse_empty_store(_redact(database), store.count(), self.layout.done)
            except BaseException:
                store.close()
                raise
        return store

    def start(self) -> None:
        """Start the workers, then the scanner (which first recovers ``processing/``)."""
        self.workers.start()
        if self.scanner is not None:
            self.scanner.start()
        if self.follower is not None:
            self.follower.start()

    def begin_shutdown(self) -> None:
        """Take no new work: uploads get 503, the scanner claims nothing more."""
        if not self.stopping:
            self.stopping = True
            log_event("stopping")
        if self.scanner is not None:
            self.scanner.request_stop()
        if self.follower is not None:
            self.follower.request_stop()
        self.queue.close()

    def stop(self) -> bool:
        """Finish in-flight work (up to ``shutdown_timeout``) and release everything.

        Returns True when every queued job finished; False leaves the unfinished files
        in ``processing/`` for the next start-up to recover.
        """
        self.begin_shutdown()
        if self.scanner is not None:
            self.scanner.stop()
        drained = self.workers.join(self.config.shutdown_timeout)
        if not drained:
            log_event("stop_timeout", level=logging.WARNING, left=len(self.queue))
        self.close()
        return drained

    def close(self) -> None:
        if getattr(self, "follower", None) is not None:
            self.follower.stop()
        if self.store is not None:
            self.store.close()
        if self.review_store is not None:
            self.review_store.close()
            self.review_store = None
        if self._folder_lock is not None:
            self._folder_lock.close()
            self._folder_lock = None

    def reload(self, path: str | None = None) -> dict[str, Any]:
        """Load a bundle and swap it in: ``path`` if given, else ``--bundle`` as given
        (its symlink resolved again), never a path an earlier reload named.

        Raises:
            ReloadPathError: ``path`` is not a usable path (NUL byte...).
            PermissionError: ``path`` is outside the bundle root.
            BundleError: the bundle was refused; the old one keeps serving.
        """
        target = self._reload_target(path) if path is not None else None
        try:
            done = self.bundles.reload(target)
        except BundleError as exc:
            self.metrics.reloads.inc(result="refused")
            log_event(
                "reload_refused", level=logging.ERROR, error=str(exc), serving=self.bundles.id
            )
            raise
        self.metrics.reloads.inc(result="ok")
        answer = {
            "bundle_id": done.bundle_id, "previous": done.previous, "path": str(done.path),
            "resolved": str(done.resolved), "signed_by": done.signed_by,
        }  # fmt: skip
        log_event("reloaded", **answer)
        return answer

    def _reload_target(self, path: str) -> Path:
        if "\x00" in path or not path.strip():
            raise ReloadPathError("path must be a non-empty folder name without NUL bytes")
        root = self.config.bundle_root()
        candidate = Path(path)
        try:
            target = (candidate if candidate.is_absolute() else root / candidate).resolve()
        except (OSError, ValueError) as exc:
            raise ReloadPathError(f"{path!r}: not a usable path ({exc})") from None
        if not target.is_relative_to(root):
            raise PermissionError(f"{path}: bundles may only be loaded from under {root}")
        return target

    def store_problem(self) -> str | None:
        """Why the store cannot be trusted now, or None; from a real write, at most
        once per :data:`PROBE_INTERVAL_S` (health checks may come every second)."""
        when, problem = self._probed
        now = time.monotonic()
        if now - when >= PROBE_INTERVAL_S:
            try:
                self.store.probe(f"health_probe:{self.config.station_name}", _now_iso())
                problem = None
            except StoreError as exc:
                problem = str(exc)
            self._probed = (now, problem)
        return problem

    def health(self) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {
            "status": "ok",
            "bundle_id": self.bundles.id,
            "queue_depth": len(self.queue),
            "queue_capacity": self.queue.capacity,
            "workers_alive": self.workers.alive(),
            "uptime_s": round(time.time() - self.started_at, 1),
        }
        store = None if self.stopping else self.store_problem()  # stopping: store closing
        body["store"] = store or "ok"
        body["pixels_in_flight"] = self.pixels.in_use
        problem = None
        if self.stopping:
            problem = "stopping"
        elif self.workers.alive() < len(self.workers.threads):
            problem = "degraded: a worker thread died"
        elif store is not None:
            problem = f"degraded: {store}"
        if problem:
            body["status"] = problem
            return 503, body
        return 200, body

    def _report_review_store(self) -> None:
        """A shared review store that is down at start-up does not stop the line: say
        so once, count it, and let the store retry (:mod:`~defectkit.apps.reviewqueue.pgstore`)."""
        problem = getattr(self.review_store, "problem", None)
        if problem:
            self.metrics.errors.inc(kind="review_store")
            log_event("review_store_unavailable", level=logging.WARNING,
                      store=self.review_store.name, error=problem)  # fmt: skip

    def _pause_scanner(self) -> None:
        if self.scanner is not None:
            self.scanner.pause(STORE_RETRY_S)


def _lock_folder(state: Path) -> Any:
    """Hold ``state/daemon.lock``: two daemons on one hot folder would recover each other's files."""
    handle = open(state / "daemon.lock", "a+")  # noqa: SIM115 - held for the daemon's life
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks; documented as one daemon per folder
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ServeError(
            f"{state.parent}: another inspect serve already watches this folder; stop it first"
        ) from None
    return handle


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, reuse_port=False)
    except OSError as exc:
        raise ServeError(
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port"
        ) from None
    # Accepted connections inherit it. Without it Nagle's algorithm held each answer's
    # body until the client acknowledged its headers, which clients delay by 40 ms:
    # +43 ms on every answer at 30 images/s (benchmarks/daemon_load.py).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def run(config: ServeConfig, *, loader: Loader = load_runtime_bundle) -> int:
    """Run the daemon until SIGTERM/SIGINT; return the exit code (0 after a clean stop)."""
    import uvicorn  # imported here so `inspect --help` stays fast

    logs.configure(config.log_level)
    config.validate()  # before anything reads the files it names (one line, exit 2)
    if config.token_file is not None and not token_file_is_private(config.token_file):
        log_event("token_file_readable", level=logging.WARNING, path=str(config.token_file),
                  hint="chmod 600 it")  # fmt: skip
    service = Service(config, loader=loader)
    try:
        sock = _bind(config.host, config.port)
    except ServeError:
        service.close()
        raise
    from defectkit.apps.daemon.api import create_app
    from defectkit.apps.daemon.timeouts import header_timeout_protocol

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(service),
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=config.shutdown_timeout,
            # Last resort against connection floods (plain 503); uploads are bounded
            # earlier, with a JSON 503, by Service.uploads (see api.py).
            limit_concurrency=2 * config.max_uploads + 64,
            http=header_timeout_protocol(
                config.header_timeout,
                on_timeout=lambda: service.metrics.timeouts.inc(phase="header"),
            ),
        )
    )
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    previous = _install_signals(service, server)
    service.start()
    host, port = sock.getsockname()[:2]
    log_event(
        "listening", host=host, port=port, bundle_id=service.bundles.id, db=_redact(config.database()),
        watch=str(config.watch) if config.watch else None, workers=config.workers, auth=service.token is not None,
        pixel_budget_mp=config.pixel_budget_mp, memory_estimate_gb=round(config.memory_estimate() / 2**30, 2),
    )  # fmt: skip
    try:
        server.run(sockets=[sock])
    finally:
        drained = service.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log_event("stopped", drained=drained)
    return 0


def _install_signals(service: Service, server: Any) -> dict[int, Any]:
    def on_stop(signum: int, frame: Any) -> None:
        if server.should_exit and signum == signal.SIGINT:
            server.force_exit = True  # second Ctrl+C: do not wait
        service.begin_shutdown()
        server.should_exit = True

    def on_hup(signum: int, frame: Any) -> None:
        def reload() -> None:
            with contextlib.suppress(BundleError, PermissionError):
                service.reload()

        threading.Thread(target=reload, name="sighup-reload", daemon=True).start()

    previous = {}
    for sig, handler in ((signal.SIGTERM, on_stop), (signal.SIGINT, on_stop)):
        previous[sig] = signal.signal(sig, handler)
    if hasattr(signal, "SIGHUP"):
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hup)
    return previous


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _redact(db: str) -> str:
    """A database URL without its password, for logs."""
    if "://" not in db or "@" not in db:
        return db
    scheme, rest = db.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
