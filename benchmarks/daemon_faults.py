"""The fault section of ``benchmarks/daemon_load.py``: a bad day on the line, measured.

Each fault runs against its own daemon subprocess (its own hot folder and database) on
127.0.0.1, bounded in time:

- **store deleted**: ``rm results.db*`` while files flow; how long until ``/healthz``
  says so, whether any file was finished without a row, and whether a restart refuses
  the new empty store beside ``done/`` (exit 2) until told ``--new-store``;
- **store corrupted**: the database overwritten with random bytes; time to an unhealthy
  ``/healthz``, what uploads get, where hot-folder files end up;
- **slow clients**: connections trickling headers or bodies a byte at a time, more than
  the daemon's upload bound, while a camera uploads at a steady rate: the camera's
  answers and latency, and when the slow ones are cut (408);
- **oversized images**: an 8900 x 8900 PNG of a few hundred KB, two 8900 x 8900 32-bit
  TIFFs at once, and two images at the per-image cap at once with overlays: answer,
  time and the daemon's peak memory against its pixel budget.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from benchmarks.procstat import RssSampler, rss_mb
from defectkit.testing import daemon as fake
from defectkit.testing import processes as kit

PNG = {"Content-Type": "image/png"}
TIFF = {"Content-Type": "image/tiff"}


def _health(url: str) -> tuple[int, str]:
    try:
        r = httpx.get(url + "/healthz", timeout=10)
        return r.status_code, str(r.json().get("store", r.json().get("status")))
    except (httpx.HTTPError, ValueError):
        return -1, "no answer"


def _until_unhealthy(url: str, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if _health(url)[0] == 503:
            return time.monotonic() - t0
        time.sleep(0.05)
    return float("nan")


def _drop(watch: Path, prefix: str, n: int, start: int) -> list[str]:
    names = []
    for i in range(n):
        name = f"{prefix}-{i:03d}.png"
        data = fake.png_bytes(40 + i % 100, size=128, tag=start + i)
        (watch / (name + ".part")).write_bytes(data)
        os.rename(watch / (name + ".part"), watch / name)
        names.append(name)
    return names


def _daemon(bundle: kit.BundleUnderTest, work: Path, name: str, *args: str) -> tuple:
    watch = work / name / "watch"
    watch.mkdir(parents=True)
    db = work / name / "results.db"
    args = ("--watch", str(watch), "--db", str(db), "--poll-interval", "0.1", "--settle-time", "0.5",
            *args)  # fmt: skip
    return kit.DaemonProcess(bundle, *args).wait_listening(120), watch, db, args


def store_deleted(bundle: kit.BundleUnderTest, work: Path) -> dict:
    daemon, watch, db, args = _daemon(bundle, work, "deleted")
    try:
        first = _drop(watch, "before", 10, 0)
        kit.wait_until(lambda: len(kit.hot_folder_state(watch)["done"]) == len(first), 60)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        detected = _until_unhealthy(daemon.url, 10)
        after = _drop(watch, "after", 10, 1000)
        time.sleep(3.0)  # several settle times and store retries
        state = kit.hot_folder_state(watch)
        metrics = httpx.get(daemon.url + "/metrics", timeout=10).text
    finally:
        daemon.signal(signal.SIGTERM)
        rc_stop = daemon.wait(60)
    restart = kit.run_daemon_to_exit(bundle, *args, timeout=120)
    return {
        "detected_s": detected, "finished_after": len(set(state["done"]) & set(after)),
        "kept": len(set(state["inbox"] + state["processing"]) & set(after)), "dropped_after": len(after),
        "store_errors": _counter(metrics, "defectkit_store_errors_total"), "rc_stop": rc_stop,
        "restart_rc": restart.returncode, "restart_says_new_store": "--new-store" in restart.stderr,
        "db_recreated": db.exists(),
    }  # fmt: skip


def store_corrupted(bundle: kit.BundleUnderTest, work: Path) -> dict:
    daemon, watch, db, _ = _daemon(bundle, work, "corrupted")
    try:
        with httpx.Client(base_url=daemon.url, timeout=30) as c:
            for i in range(10):
                c.post("/v1/inspect", content=fake.png_bytes(50, tag=2000 + i), headers=PNG)
            with open(db, "r+b") as f:
                f.write(np.random.default_rng(0).bytes(db.stat().st_size))
            detected = _until_unhealthy(daemon.url, 10)
            codes = [c.post("/v1/inspect", content=fake.png_bytes(60, tag=3000 + i), headers=PNG).status_code
                     for i in range(10)]  # fmt: skip
            after = _drop(watch, "after", 10, 4000)
            time.sleep(3.0)
            state = kit.hot_folder_state(watch)
            metrics = c.get("/metrics").text
            health = _health(daemon.url)
    finally:
        daemon.signal(signal.SIGTERM)
        daemon.wait(60)
    return {
        "detected_s": detected, "upload_codes": {k: codes.count(k) for k in sorted(set(codes))},
        "finished_after": len(set(state["done"] + state["rejected"]) & set(after)),
        "kept": len(set(state["inbox"] + state["processing"]) & set(after)), "dropped_after": len(after),
        "store_errors": _counter(metrics, "defectkit_store_errors_total"), "health": health,
    }  # fmt: skip


def _counter(metrics: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(name))


def slow_clients(bundle: kit.BundleUnderTest, work: Path, *, slow: int = 60, seconds: float = 8.0) -> dict:
    db = work / "slow.db"
    daemon = kit.DaemonProcess(
        bundle, "--db", str(db), "--header-timeout", "2", "--body-timeout", "3"
    ).wait_listening(120)
    sockets: list[socket.socket] = []
    stop = threading.Event()
    try:
        for i in range(slow):
            s = socket.create_connection(("127.0.0.1", daemon.port))
            if i % 6 == 0:  # one in six never finishes its headers
                s.sendall(b"POST /v1/inspect HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            else:
                s.sendall(b"POST /v1/inspect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                          b"Content-Length: 100000\r\n\r\n")  # fmt: skip
            s.setblocking(False)
            sockets.append(s)
        cut_at: dict[int, float] = {}
        t0 = time.monotonic()

        def trickle() -> None:
            while not stop.wait(1.0):  # a byte a second, as in the issue
                for k, s in enumerate(sockets):
                    if k in cut_at:
                        continue
                    try:
                        s.recv(4096)  # an answer (408) or b"" (closed): either way, cut
                        cut_at[k] = time.monotonic() - t0
                        continue
                    except BlockingIOError:
                        pass  # still open, nothing said: keep trickling
                    except OSError:
                        cut_at[k] = time.monotonic() - t0
                        continue
                    try:
                        s.send(b"x")
                    except OSError:
                        cut_at[k] = time.monotonic() - t0

        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        codes, latencies = [], []
        with httpx.Client(base_url=daemon.url, timeout=30) as c:
            n = int(seconds * 5)
            for i in range(n):  # a camera at 5 images/s
                scheduled = t0 + i / 5
                time.sleep(max(0.0, scheduled - time.monotonic()))
                r = c.post("/v1/inspect", content=fake.png_bytes(80, tag=5000 + i), headers=PNG)
                codes.append(r.status_code)
                latencies.append(time.monotonic() - scheduled)
            metrics = c.get("/metrics").text
        stop.set()
        sender.join(5)
    finally:
        for s in sockets:
            s.close()
        daemon.signal(signal.SIGTERM)
        daemon.wait(60)
    return {
        "slow": slow, "camera_requests": len(codes), "camera_ok": codes.count(200),
        "camera_p99_ms": float(np.percentile(latencies, 99)) * 1e3 if latencies else float("nan"),
        "cut": len(cut_at), "last_cut_s": max(cut_at.values(), default=float("nan")),
        "timeouts_header": _counter(metrics, 'defectkit_client_timeouts_total{phase="header"}'),
        "timeouts_body": _counter(metrics, 'defectkit_client_timeouts_total{phase="body"}'),
    }  # fmt: skip


def _encode(array: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    options = {"compression": "tiff_adobe_deflate"} if fmt == "TIFF" else {"compress_level": 9}
    Image.fromarray(array).save(buf, fmt, **options)
    return buf.getvalue()


def oversized(bundle: kit.BundleUnderTest, work: Path) -> list[dict]:
    """Rows: case, file sizes, answers, seconds, RSS before / peak MB, reason, health after.

    With the default limits, then with ``--max-image-mp 80 --pixel-budget-mp 80``: the
    two 79 MP TIFFs that took 15.6 GB at once in the issue are then inspected one
    after the other.
    """
    side_cap = int((40e6) ** 0.5) - 1  # just under the default 40 MP cap
    huge_png = _encode(np.full((8900, 8900, 3), 120, np.uint8), "PNG")
    huge_tiff = [_encode(np.full((8900, 8900), v, np.int32), "TIFF") for v in (30000, 31000)]
    cap_tiff = [_encode(np.full((side_cap, side_cap), v, np.int32), "TIFF") for v in (30000, 31000)]
    default = [("8900x8900 PNG", [huge_png], PNG),
               ("two 8900x8900 32-bit TIFFs at once", huge_tiff, TIFF),
               (f"two {side_cap}x{side_cap} 32-bit TIFFs at once (at the cap)", cap_tiff, TIFF)]  # fmt: skip
    raised = [("two 8900x8900 32-bit TIFFs at once, `--max-image-mp 80 --pixel-budget-mp 80`",
               [_encode(np.full((8900, 8900), v, np.int32), "TIFF") for v in (32000, 33000)], TIFF)]  # fmt: skip
    rows = _oversized_cases(bundle, work / "default", default)
    rows += _oversized_cases(bundle, work / "raised", raised, "--max-image-mp", "80", "--pixel-budget-mp", "80")
    return rows


def _oversized_cases(bundle: kit.BundleUnderTest, work: Path, cases: list, *extra: str) -> list[dict]:
    work.mkdir(parents=True)
    daemon = kit.DaemonProcess(
        bundle, "--db", str(work / "big.db"), "--workers", "2", "--overlays", str(work / "overlays"), *extra
    ).wait_listening(120)
    rows = []
    try:
        with httpx.Client(base_url=daemon.url, timeout=600) as c, ThreadPoolExecutor(2) as pool:
            for case, files, headers in cases:
                start = rss_mb(daemon.proc.pid)
                with RssSampler(daemon.proc.pid, interval=0.05) as rss:
                    t0 = time.monotonic()
                    answers = list(pool.map(lambda d, h=headers: c.post("/v1/inspect", content=d, headers=h), files))
                    elapsed = time.monotonic() - t0
                reasons = {a.json().get("error", "")[:90] for a in answers if a.status_code != 200}
                rows.append({
                    "case": case, "kb": ", ".join(f"{len(f) / 1e3:.0f}" for f in files),
                    "codes": ", ".join(str(a.status_code) for a in answers), "seconds": elapsed,
                    "rss_start": start, "rss_peak": max(rss.values, default=float("nan")),
                    "reason": "; ".join(sorted(reasons)),
                })  # fmt: skip
            alive = c.get("/healthz").status_code
        for row in rows:
            row["alive_after"] = alive
    finally:
        daemon.signal(signal.SIGTERM)
        daemon.wait(120)
    return rows


def run_faults(bundle: kit.BundleUnderTest, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    return {
        "store_deleted": store_deleted(bundle, work),
        "store_corrupted": store_corrupted(bundle, work),
        "slow_clients": slow_clients(bundle, work),
        "oversized": oversized(bundle, work),
    }


def report_faults(f: dict) -> list[str]:
    d, c, s = f["store_deleted"], f["store_corrupted"], f["slow_clients"]
    lines = [
        "",
        "## Faults (each on its own daemon; defaults unless named)",
        "",
        "| fault | seen by /healthz after | files dropped after it: finished / kept in the inbox | what else |",
        "|---|---:|---|---|",
        f"| `rm results.db*` while running (10 files done before) | {d['detected_s']:.2f} s | "
        f"{d['finished_after']} / {d['kept']} of {d['dropped_after']} | {d['store_errors']:.0f} store errors "
        f"counted; no new database file: {not d['db_recreated']}; SIGTERM exit {d['rc_stop']}; restart "
        f"exits {d['restart_rc']} naming --new-store: {d['restart_says_new_store']} |",
        f"| store overwritten with random bytes | {c['detected_s']:.2f} s | "
        f"{c['finished_after']} / {c['kept']} of {c['dropped_after']} | uploads after: {c['upload_codes']}; "
        f"{c['store_errors']:.0f} store errors counted; /healthz {c['health'][0]} |",
        "",
        f"Slow clients: {s['slow']} connections sending a byte a second (one in six still in its "
        "headers, the rest in a 100 kB body), against a daemon run with `--header-timeout 2 "
        "--body-timeout 3` (defaults 10 and 60), while a camera uploads 5 images/s:",
        "",
        "| camera requests | answered 200 | camera p99 ms | slow connections cut | last cut at | 408 header / body |",
        "|---:|---:|---:|---:|---:|---|",
        f"| {s['camera_requests']} | {s['camera_ok']} | {s['camera_p99_ms']:.1f} | {s['cut']} of {s['slow']} | "
        f"{s['last_cut_s']:.1f} s | {s['timeouts_header']:.0f} / {s['timeouts_body']:.0f} |",
        "",
        "Oversized images (`--workers 2 --overlays`; `--max-image-mp 40 --pixel-budget-mp 40`, the "
        "defaults, unless named):",
        "",
        "| case | file KB | answers | seconds | RSS before / peak MB | reason | /healthz after |",
        "|---|---|---|---:|---|---|---:|",
    ]
    for o in f["oversized"]:
        lines.append(
            f"| {o['case']} | {o['kb']} | {o['codes']} | {o['seconds']:.1f} | "
            f"{o['rss_start']:.0f} / {o['rss_peak']:.0f} | {o['reason'] or '-'} | {o['alive_after']} |"
        )
    return lines
