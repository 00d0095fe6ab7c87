"""The daemon's one configuration object: every ``inspect serve`` flag is one field.

Validation lives here, before anything is loaded or bound, so a bad command line fails
in a second with one line instead of after a bundle has been verified.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
from dataclasses import dataclass, fields
from pathlib import Path

from defectkit.apps.daemon.errors import ServeError
from defectkit.errors import ConfigError

#: Subfolder of the watch folder that holds the daemon's own state (database, lock).
STATE_DIR = ".defectkit"
DEFAULT_DB = "defectkit-serve.db"
MIN_TOKEN_CHARS = 16


#: Two inference threads, or one on a single-core machine.
DEFAULT_WORKERS = min(2, os.cpu_count() or 1)

# Memory sizing (docs/operations.md, "Memory"; measured in benchmarks/results/daemon_load.md).
#: Peak bytes per decoded pixel from decoding to the committed row: the decoded image,
#: the maps at the image's size and the regions (8-bit RGB and 32-bit TIFFs alike).
BYTES_PER_PIXEL = 40
#: The process with an OpenVINO bundle loaded, before any image.
BASE_BYTES = 300 * 2**20
#: One overlay being drawn (at most 4 MP, see overlay.MAX_OVERLAY_PIXELS).
OVERLAY_BYTES = 350 * 2**20


@dataclass(frozen=True)
class ServeConfig:
    """Options of ``inspect serve``; field names are the flags with ``-`` -> ``_``.

    Attributes:
        bundle: exported bundle folder to serve.
        watch: hot folder; ``None`` serves HTTP only.
        host: address to bind; anything but loopback needs ``token_file``.
        port: TCP port; 0 picks a free one (the ``listening`` log line names it).
        db: SQLite file path or ``postgresql://`` URL; default under the watch folder's
            state dir, else ``./defectkit-serve.db``.
        overlays: folder for heatmap overlay PNGs; ``None`` writes none.
        token_file: file holding the bearer token every endpoint but /healthz requires.
        workers: inference threads. With more than one, the runtime is tuned for
            throughput (each worker gets its share of the cores): on 2 cores the
            OpenVINO engine ran 63 images/s from 2 threads in throughput mode against
            42 from one thread with all cores, at ~25 ms instead of ~15 ms per image.
        batch_size: most images handed to one ``bundle.inspect`` call.
        queue_size: jobs waiting for a worker before HTTP answers 503.
        max_upload_mb: largest accepted upload or hot-folder file (413 / rejected).
        max_image_mp: most pixels (millions, width x height from the file's header) of
            one image; more is refused with 413 before decoding.
        pixel_budget_mp: most pixels (millions) being decoded, inspected and drawn at
            once across all workers; memory above the base is about this times the
            bytes per pixel measured in docs/operations.md. At least ``max_image_mp``.
        poll_interval: seconds between hot-folder scans.
        settle_time: seconds a hot-folder file's size, mtime and inode must stay
            unchanged before it is taken (a file whose mtime is already that old when
            first seen, e.g. renamed in, is taken at the next scan).
        header_timeout: seconds a connection may take to send a request's headers.
        body_timeout: seconds an upload's whole body may take to arrive (408 beyond).
        new_store: start with an empty results store even though ``done/`` holds files
            (otherwise refused: the store was probably deleted or pointed elsewhere).
        trust: public keys (PEM); when given, only bundles signed by one of them load.
        shutdown_timeout: seconds SIGTERM waits for in-flight work before exiting.
        device: runtime device passed to the bundle loader (``CPU``, ``GPU``, ``AUTO``).
        review_policy: the verdict a part in the bundle's uncertainty band gets:
            ``hold`` (verdict ``hold``), ``reject`` (``defect``) or ``accept`` (``good``);
            every such part is marked ``review`` and kept in the review store.
        review_store: the review store: a SQLite file, default ``review.db`` beside a
            SQLite ``db``, else under the watch folder's state dir or ``./``; or a
            ``postgresql://`` URL that several lines share (each keeps, bounds and counts
            its own ``station``'s parts).
        review_keep: most parts the review store keeps (oldest evicted, counted).
        review_max_mb: most image bytes (MiB) the review store keeps.
        follow_interval: seconds between checks whether ``bundle`` (a symlink such as
            ``bundles/current``) points elsewhere, reloading when it does; 0 = never.
        station: name stored with every row, so lines sharing one PostgreSQL store
            can be told apart.
        log_level: ``debug``, ``info``, ``warning`` or ``error``.
    """

    bundle: Path
    watch: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    db: str | None = None
    overlays: Path | None = None
    token_file: Path | None = None
    workers: int = DEFAULT_WORKERS
    batch_size: int = 1
    queue_size: int = 32
    max_upload_mb: float = 32.0
    max_image_mp: float = 40.0
    pixel_budget_mp: float = 40.0
    poll_interval: float = 0.5
    settle_time: float = 3.0
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    new_store: bool = False
    trust: tuple[Path, ...] = ()
    shutdown_timeout: float = 30.0
    device: str = "CPU"
    review_policy: str = "hold"
    review_store: str | None = None
    review_keep: int = 1000
    review_max_mb: float = 2048.0
    follow_interval: float = 0.0
    station: str = ""
    log_level: str = "info"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ServeConfig:
        """Build from parsed flags (one flag per field, nothing else read)."""
        values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
        for key in ("bundle", "watch", "overlays", "token_file"):
            if values.get(key) is not None:
                values[key] = Path(values[key])
        values["trust"] = tuple(Path(p) for p in values.get("trust") or ())
        return cls(**values)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_uploads(self) -> int:
        """Uploads handled at once, queued ones included (503 + Retry-After beyond).

        Each holds at most ``max_upload_bytes``, so this bounds the memory images take.
        """
        return self.queue_size + self.workers * self.batch_size + 16

    @property
    def max_image_pixels(self) -> int:
        return int(self.max_image_mp * 1_000_000)

    @property
    def pixel_budget(self) -> int:
        return int(self.pixel_budget_mp * 1_000_000)

    def memory_estimate(self) -> int:
        """Most bytes these flags let the daemon hold: base + pixel budget + overlays +
        upload bytes (what ``MemoryMax=`` in the systemd unit must exceed)."""
        overlays = OVERLAY_BYTES * self.workers if self.overlays is not None else 0
        uploads = self.max_uploads * self.max_upload_bytes
        return BASE_BYTES + BYTES_PER_PIXEL * self.pixel_budget + overlays + uploads

    @property
    def station_name(self) -> str:
        return self.station or socket.gethostname()

    @property
    def uses_postgres(self) -> bool:
        return bool(self.db) and self.db.startswith(("postgresql://", "postgres://"))

    def database(self) -> str:
        """The SQLite path or PostgreSQL URL this daemon writes to."""
        if self.db:
            return self.db
        if self.watch is not None:
            return str(self.watch / STATE_DIR / "results.db")
        return str(Path.cwd() / DEFAULT_DB)

    def review_database(self) -> str:
        """The review store's SQLite path or PostgreSQL URL (see ``review_store``)."""
        if self.review_store:
            return self.review_store
        if self.db and not self.uses_postgres:
            return str(Path(self.db).with_name("review.db"))
        if self.watch is not None:
            return str(self.watch / STATE_DIR / "review.db")
        return str(Path.cwd() / "defectkit-review.db")

    def bundle_root(self) -> Path:
        """Folder that ``POST /v1/reload`` may load bundles from (the bundle's parent).

        Not resolved through the bundle itself, so ``--bundle /opt/dk/current`` (a
        symlink to ``releases/v3``) allows every release under ``/opt/dk``.
        """
        return self.bundle.absolute().parent.resolve()

    def validate(self) -> None:
        """Raise :class:`ConfigError` / :class:`ServeError` for options that cannot work."""
        _check_range("--workers", self.workers, 1, 64)
        _check_range("--batch-size", self.batch_size, 1, 256)
        _check_range("--queue-size", self.queue_size, 1, 100_000)
        _check_range("--port", self.port, 0, 65535)
        if not self.max_upload_mb > 0:
            raise ConfigError(f"--max-upload-mb must be positive; got {self.max_upload_mb}")
        if not self.max_image_mp > 0:
            raise ConfigError(f"--max-image-mp must be positive; got {self.max_image_mp}")
        if not self.pixel_budget_mp >= self.max_image_mp:
            raise ConfigError(
                f"--pixel-budget-mp ({self.pixel_budget_mp:g}) must be at least --max-image-mp "
                f"({self.max_image_mp:g}), or an image at the cap could never be inspected"
            )
        if not self.poll_interval > 0:
            raise ConfigError(f"--poll-interval must be positive; got {self.poll_interval}")
        if not self.settle_time >= 0:
            raise ConfigError(f"--settle-time must be zero or positive; got {self.settle_time}")
        for flag, value in (("--header-timeout", self.header_timeout),
                            ("--body-timeout", self.body_timeout)):  # fmt: skip
            if not value > 0:
                raise ConfigError(f"{flag} must be positive; got {value}")
        if self.review_policy not in ("hold", "reject", "accept"):
            raise ConfigError(
                f"--review-policy must be hold, reject or accept; got {self.review_policy}"
            )
        _check_range("--review-keep", self.review_keep, 1, 10_000_000)
        if not self.review_max_mb > 0:
            raise ConfigError(f"--review-max-mb must be positive; got {self.review_max_mb}")
        if not self.follow_interval >= 0:
            raise ConfigError(
                f"--follow-interval must be zero (off) or positive; got {self.follow_interval}"
            )
        if self.shutdown_timeout < 0:
            raise ConfigError("--shutdown-timeout must be zero or positive")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError(
                f"--log-level must be debug, info, warning or error; got {self.log_level}"
            )
        if not self.bundle.is_dir():
            raise ConfigError(
                f"--bundle {self.bundle}: no such folder; pass an exported bundle folder"
            )
        if self.watch is not None and not self.watch.is_dir():
            raise ConfigError(f"--watch {self.watch}: no such folder; create it or fix the path")
        if self.db and "://" in self.db and not self.uses_postgres:
            raise ConfigError(
                f"--db {self.db}: only SQLite paths and postgresql:// URLs are supported"
            )
        review = self.review_store or ""
        if "://" in review and not review.startswith(("postgresql://", "postgres://")):
            raise ConfigError(
                f"--review-store {review}: only SQLite paths and postgresql:// URLs are supported"
            )
        if not is_loopback(self.host) and self.token_file is None:
            raise ConfigError(
                f"--host {self.host} is reachable from other machines; pass --token-file "
                "with a secret token, or bind 127.0.0.1"
            )
        if self.token_file is not None:
            read_token(self.token_file)
        for key in self.trust:
            if not key.is_file():
                raise ConfigError(f"--trust {key}: no such file; pass the lab's public key (PEM)")


def _check_range(flag: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{flag} must be between {low} and {high}; got {value}")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses; hostnames count as exposed."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: Path) -> str:
    """The bearer token in ``path`` (surrounding whitespace stripped)."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ServeError(f"--token-file {path}: cannot read it ({exc})") from None
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise ServeError(
            f"--token-file {path}: the token must be one word of at least {MIN_TOKEN_CHARS} "
            "characters; make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return token


def token_file_is_private(path: Path) -> bool:
    """False when group or others may read the token file (worth a warning, not a refusal)."""
    if os.name != "posix":
        return True
    return not path.stat().st_mode & 0o077
