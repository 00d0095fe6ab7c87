"""Daemon processes and a throw-away PostgreSQL for tests and the load benchmark.

:class:`DaemonProcess` runs ``inspect serve`` in a subprocess on a free port, with the
test double (:mod:`.daemon`) or a real bundle (``DEFECTKIT_TEST_BUNDLE``);
:class:`PostgresServer` starts a private PostgreSQL cluster for the shared-store tests.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defectkit.testing.daemon import write_fake_bundle

#: The folder holding the ``defectkit`` package (put on a subprocess's PYTHONPATH).
REPO = Path(__file__).resolve().parents[2]


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
            return [sys.executable, "-m", "defectkit.testing.daemon"]
        return [sys.executable, "-m", "defectkit", "serve"]


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
