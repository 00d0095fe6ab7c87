"""Test kit for the daemon: a test-double bundle, images, a daemon subprocess, PostgreSQL.

A plain module (not only fixtures in conftest.py) because three kinds of user need it:
the unit tests, the integration tests (which add this folder to ``sys.path``), and the
daemon *subprocess* the integration tests and the benchmark start - run as
``python daemon_testkit.py --bundle FAKE ...`` it is ``inspect serve`` with the double
as its bundle loader.

The double honours the runtime's contract (``load_bundle(path, device=)`` verifying
every file's SHA-256 and the format version; ``.id``, ``.manifest``, ``.inspect``), so
tamper tests mean the same with a real bundle. Its verdict depends on the image: the
score is the mean brightness in [0, 1], so bright images are defects.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[3]
FAKE_FORMAT = 1


# -- the test-double bundle --------------------------------------------------------------


def write_fake_bundle(
    folder: Path,
    *,
    classes: Sequence[str] = ("good", "scratch"),
    threshold: float = 0.5,
    delay_s: float = 0.0,
    raise_above: float = 2.0,
    version: int = FAKE_FORMAT,
    tag: str = "",
) -> Path:
    """Write a bundle folder the double loads. ``delay_s`` is inference time per image;
    images brighter than ``raise_above`` make ``inspect`` raise; ``tag`` changes the id."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "model.bin"
    weights.write_bytes(hashlib.sha256(f"weights{tag}".encode()).digest() * 64)
    manifest = {
        "format_version": version,
        "kind": "defectkit-test-double",
        "classes": list(classes),
        "thresholds": {"image": threshold, "pixel": threshold + 0.1, "min_defect_area": 4},
        "input_size": [16, 16],
        "delay_s": delay_s,
        "raise_above": raise_above,
        "tag": tag,
        "files": {"model.bin": hashlib.sha256(weights.read_bytes()).hexdigest()},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder


def load_fake_bundle(path: str | Path, device: str = "CPU", streams: int = 1) -> FakeBundle:
    """The double's ``load_bundle``: verifies like the runtime, raises BundleError."""
    from defectkit.errors import BundleError

    path = Path(path)
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise BundleError(f"{path}: no manifest.json; is this an exported bundle folder?")
    raw = manifest_path.read_bytes()
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{manifest_path}: not valid JSON ({exc})") from None
    if manifest.get("format_version") != FAKE_FORMAT:
        raise BundleError(
            f"{path}: unknown bundle format version {manifest.get('format_version')!r}"
        )
    for name, expected in manifest.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise BundleError(f"{path}: {name} is missing; copy the whole bundle folder")
        if hashlib.sha256(file.read_bytes()).hexdigest() != expected:
            raise BundleError(
                f"{path}: {name} does not match its SHA-256 in the manifest (tampered?)"
            )
    return FakeBundle(hashlib.sha256(raw).hexdigest()[:12], manifest, device)


@dataclass
class FakeBundle:
    id: str
    manifest: dict[str, Any]
    device: str = "CPU"
    calls: list[int] = field(default_factory=list)  # batch sizes seen

    def inspect(self, images: list[np.ndarray], paths: Sequence[str | None] | None = None) -> list:
        from defectkit.inspect.results import Thresholds, postprocess

        self.calls.append(len(images))
        time.sleep(float(self.manifest.get("delay_s", 0.0)) * len(images))
        paths = list(paths) if paths is not None else [None] * len(images)
        thresholds = Thresholds.from_dict(self.manifest["thresholds"])
        h, w = self.manifest["input_size"]
        out = []
        for image, path in zip(images, paths, strict=True):
            gray = image.astype(np.float32).mean(axis=2) / 255.0
            score = float(gray.mean())
            if score > float(self.manifest.get("raise_above", 2.0)):
                raise RuntimeError(f"test double: image too bright ({score:.3f})")
            small = np.asarray(Image.fromarray(gray, mode="F").resize((w, h), Image.BILINEAR))
            logits = (
                np.array([0.5 - score, score - 0.5] + [0.0] * (len(self.manifest["classes"]) - 2))
                * 8
            )
            result = postprocess(
                score, small, logits, classes=self.manifest["classes"], thresholds=thresholds,
                image_size=image.shape[:2], path=path, timings={"model": 0.1},
            )  # fmt: skip
            result.caption = f"mean brightness {score:.2f}"
            out.append(result)
        return out


# -- images ------------------------------------------------------------------------------


def png_bytes(value: int, *, size: int = 32, tag: int = 0, fmt: str = "PNG") -> bytes:
    """A uniform gray image of ``value`` (0..255); ``tag`` makes the bytes unique."""
    pixels = np.full((size, size, 3), value, dtype=np.uint8)
    pixels[0, 0] = (tag % 256, (tag // 256) % 256, (tag // 65536) % 256)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def bad_inputs() -> dict[str, bytes]:
    """Files the daemon must refuse, by kind."""
    good = png_bytes(100, size=64)
    return {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "not_an_image": b"this is a text file, not an image\n" * 10,
        "bomb": bomb_png(),
    }


# -- a daemon subprocess -----------------------------------------------------------------


@dataclass(frozen=True)
class BundleUnderTest:
    """A bundle for the daemon tests: the double (default) or a real exported bundle.

    ``DEFECTKIT_TEST_BUNDLE=/path/to/bundle`` makes the integration tests run against a
    real bundle through ``defectkit.exporters.runtime``; tests that assert the double's
    verdicts check ``fake`` first.
    """

    path: Path
    fake: bool = True

    def command(self) -> list[str]:
        if self.fake:
            return [sys.executable, str(HERE / "daemon_testkit.py")]
        return [sys.executable, "-m", "defectkit.apps.daemon"]


def bundle_from_env_or_fake(folder: Path, **fake_options: Any) -> BundleUnderTest:
    real = os.environ.get("DEFECTKIT_TEST_BUNDLE")
    if real:
        return BundleUnderTest(Path(real), fake=False)
    return BundleUnderTest(write_fake_bundle(folder, **fake_options), fake=True)


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


class DaemonProcess:
    """``inspect serve`` in a subprocess on a free 127.0.0.1 port, with its JSON logs."""

    def __init__(self, bundle: BundleUnderTest, *args: str, cwd: Path | None = None):
        self.bundle = bundle
        argv = [*bundle.command(), "--bundle", str(bundle.path), "--port", "0", *args]
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self.port: int | None = None
        self._listening = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.events.append(event)
            if event.get("event") == "listening":
                self.port = int(event["port"])
                self._listening.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_listening(self, timeout: float = 30.0) -> DaemonProcess:
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                if self.proc.poll() is None:  # never leave a half-started daemon behind
                    self.proc.kill()
                    self.proc.wait(10)
                self._reader.join(2)
                raise RuntimeError(
                    f"daemon did not start (rc={self.proc.poll()}):\n" + "\n".join(self.lines[-20:])
                )
        return self

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 30.0) -> int:
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        return rc

    def stop(self) -> int:
        """SIGTERM and wait; SIGKILL if it hangs (then the test fails on the code)."""
        self.signal(signal.SIGTERM)
        try:
            return self.wait(60)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.wait(10)

    def has_event(self, name: str) -> bool:
        return any(e.get("event") == name for e in self.events)


def run_daemon_to_exit(
    bundle: BundleUnderTest, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run the daemon expecting it to refuse to start; returns the finished process."""
    argv = [*bundle.command(), "--bundle", str(bundle.path), "--port", "0", *args]
    return subprocess.run(
        argv, env=subprocess_env(), capture_output=True, text=True, timeout=timeout
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    predicate, timeout: float, interval: float = 0.05, message: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def hot_folder_state(watch: Path) -> dict[str, list[str]]:
    """Names in the inbox, processing/, done/ and rejected/ (images only)."""

    def names(folder: Path) -> list[str]:
        if not folder.is_dir():
            return []
        return sorted(
            p.name for p in folder.iterdir() if p.is_file() and not p.name.endswith(".reason.txt")
        )

    return {
        "inbox": [n for n in names(watch) if not n.startswith(".")],
        "processing": names(watch / "processing"),
        "done": names(watch / "done"),
        "rejected": names(watch / "rejected"),
    }


# -- PostgreSQL --------------------------------------------------------------------------


def find_pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    return str(candidates[0]) if candidates else None


class PostgresServer:
    """A throw-away PostgreSQL cluster in a temp dir on a free 127.0.0.1 port.

    PostgreSQL refuses to run as root, so under root it runs as the ``postgres`` user
    (the Debian package creates it). ``fsync=off``: it is thrown away after the tests.
    """

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = find_pg_bin("initdb"), find_pg_bin("pg_ctl")
        if not (self.initdb and self.pg_ctl):
            raise FileNotFoundError("initdb/pg_ctl not found; apt-get install postgresql")
        self.base = Path(tempfile.mkdtemp(prefix="defectkit-pg-"))
        self.data = self.base / "data"
        self.port = free_port()
        self._preexec = None
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.base, user.pw_uid, user.pw_gid)

            def demote() -> None:
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)

            self._preexec = demote

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, timeout: float = 60) -> None:
        subprocess.run(
            argv,
            check=True,
            capture_output=True,
            timeout=timeout,
            preexec_fn=self._preexec,
            cwd=self.base,
        )

    def start(self) -> PostgresServer:
        self._run(
            self.initdb,
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self._start_server()
        return self

    def _start_server(self) -> None:
        # -l: the server's output goes to a file, not to our pipe (which would never close).
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            self.pg_ctl,
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.base / "log"),
            "-w",
            "start",
        )

    def restart(self) -> None:
        """Stop (dropping every client connection) and start again on the same port."""
        self._run(self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")
        self._start_server()

    def stop(self) -> None:
        try:
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except (subprocess.SubprocessError, OSError):
            pass
        shutil.rmtree(self.base, ignore_errors=True)


if __name__ == "__main__":  # the daemon with the double as its bundle loader
    sys.path.insert(0, str(REPO))
    from defectkit.apps.daemon.cli import main

    sys.exit(main(sys.argv[1:], loader=load_fake_bundle))
