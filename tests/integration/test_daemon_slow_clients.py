"""Slow clients cannot hold the daemon: header and body timeouts, and uploads bounded by
bytes, not connections (issue 17: 52 connections at a byte a second blocked every upload)."""

import socket
import threading
import time

import httpx

from defectkit.testing import daemon as fake
from defectkit.testing import processes as kit

PNG = {"Content-Type": "image/png"}


class Trickler:
    """Sends one byte every ``interval`` on each socket until stopped (a slowloris)."""

    def __init__(self, sockets: list[socket.socket], byte: bytes, interval: float = 0.2):
        self.sockets, self.byte, self.interval = sockets, byte, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for s in self.sockets:
                try:
                    s.send(self.byte)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def answer(sock: socket.socket, timeout: float) -> bytes:
    """What the daemon sent before closing, within ``timeout`` seconds (b"" if nothing)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def test_slow_clients_get_408s_and_never_block_other_uploads(tmp_path):
    bundle = kit.bundle_from_env_or_fake(tmp_path / "bundles" / "v1")
    daemon = kit.DaemonProcess(
        bundle, "--db", str(tmp_path / "r.db"), "--workers", "1", "--queue-size", "1",
        "--header-timeout", "1", "--body-timeout", "1.5",
    ).wait_listening()  # fmt: skip
    # more slow uploads than the 18 uploads --queue-size 1 --workers 1 handles at once
    bodies, headers = [], []
    try:
        for _ in range(24):
            s = socket.create_connection(("127.0.0.1", daemon.port))
            s.sendall(b"POST /v1/inspect HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: image/png\r\nContent-Length: 1000\r\n\r\nx")  # fmt: skip
            bodies.append(s)
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", daemon.port))
            s.sendall(b"POST /v1/inspect HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            headers.append(s)
        trickle_bodies, trickle_headers = Trickler(bodies, b"x"), Trickler(headers, b"a")
        time.sleep(0.3)
        t0 = time.monotonic()
        with httpx.Client(base_url=daemon.url, timeout=10) as client:
            r = client.post("/v1/inspect", content=fake.png_bytes(20), headers=PNG)
            assert r.status_code == 200, r.text
            assert time.monotonic() - t0 < 1.0, "answered at once, not after the slow ones left"
            slow = [answer(s, 4.0) for s in bodies + headers]
            trickle_bodies.stop()
            trickle_headers.stop()
            assert all(a.startswith(b"HTTP/1.1 408") for a in slow), {a[:40] for a in slow}
            assert b"--body-timeout" in slow[0] and b"--header-timeout" in slow[-1]
            assert time.monotonic() - t0 < 6.0
            metrics = client.get("/metrics").text
            assert 'defectkit_client_timeouts_total{phase="body"} 24' in metrics
            assert 'defectkit_client_timeouts_total{phase="header"} 4' in metrics
            assert client.get("/healthz").status_code == 200
    finally:
        for s in bodies + headers:
            s.close()
        assert daemon.stop() == 0
