"""Load and soak test of ``inspect serve``, from a second process, on 127.0.0.1 only.

    python benchmarks/daemon_load.py --bundle PATH            # real bundle -> results/daemon_load.md
    python benchmarks/daemon_load.py --bundle PATH --images textile   # real textile photos
    python benchmarks/daemon_load.py --fake --soak 500        # dry run on the test double (stdout)

Three phases against one daemon subprocess:

1. **steady**: open-loop requests at each of ``--rates`` per second for ``--duration``
   seconds (a sweep, to find the knee). Latency is measured from each request's
   *scheduled* send time, so a stalled daemon cannot hide queueing delay (no coordinated
   omission). Reports throughput, p50/p90/p99, the daemon's own per-stage times (from
   the ``daemon_ms`` and ``timings_ms`` of every answer) and the verdicts it gave.
2. **overload**: ``--overload-clients`` closed-loop clients sending as fast as they can
   for ``--overload-seconds`` (beyond queue capacity): counts 200s and 503s, samples the
   daemon's RSS, and checks the daemon is alive and healthy afterwards.
3. **soak**: ``--soak`` files (default 10,000; 1% truncated) written camera-style
   (``.part`` then rename) into the hot folder, at most ``--backlog`` waiting at a time.
   Checks every file ends in done/ or rejected/, the database holds exactly one row per
   distinct content, and reports RSS growth over the run.
4. **faults** (``--faults``, on by default): the store deleted or corrupted while
   running, slow clients, oversized images, each on a daemon of its own
   (:mod:`benchmarks.daemon_faults`).

Request images: a synthetic textured part (``--image-size``), or ``--images textile``
(the textile benchmark's held-out photos, good and defective, from the
``conformal-clip-data`` package) or ``--images DIR`` (every image in a folder), cycled.
Every request body is unique (a PNG ``tEXt`` chunk carries a counter) so the daemon's
de-duplication never short-cuts an inspection. Everything is bounded: request counts,
``--max-seconds`` overall. Only numbers from a real bundle are reported; ``--fake`` prints
a dry-run report to stdout unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import signal
import sqlite3
import struct
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.common import cpu_name  # noqa: E402
from benchmarks.daemon_faults import report_faults, run_faults  # noqa: E402
from benchmarks.procstat import RssSampler, cpu_seconds  # noqa: E402
from defectkit.testing import daemon as fake  # noqa: E402  (the test double)
from defectkit.testing import processes as kit  # noqa: E402  (the daemon launcher)

# -- images ------------------------------------------------------------------------------


def base_png(size: int, seed: int) -> bytes:
    """A smooth textured gray part (compresses like a real photo of a plain surface)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    pixels = 110 + 40 * np.sin(6 * x + seed) * np.cos(4 * y) + rng.normal(0, 3, (size, size))
    buf = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert("RGB").save(buf, "PNG")
    return buf.getvalue()


def folder_pngs(source: str, limit: int = 200) -> list[bytes]:
    """Up to ``limit`` request images as PNG bytes: ``textile`` or a folder of images."""
    if source == "textile":
        from defectkit.datasets.textile import load_textile, textile_protocol_split

        # the demo's held-out images (100 good, 50 local, 50 global), loaded as the demo
        # fitted them: 249 x 249, without the files' 1-px frame; shuffled (seed 0) as
        # parts come down a line, not 50 global defects in a row as the split lists them
        test = textile_protocol_split(load_textile(), 2, seed=0).test
        order = np.random.default_rng(0).permutation(len(test))
        images = [test[i].load_image() for i in order]
    else:
        from defectkit.core.images import list_image_files, read_image

        paths = list_image_files([source])  # a clear error for a missing or empty folder
        step = max(1, len(paths) // limit)  # spread over the folder (good and defective)
        images = [read_image(p) for p in paths[::step][:limit]]
    out = []
    for image in images[:limit]:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def unique_png(png: bytes, counter: int) -> bytes:
    """``png`` with a tEXt chunk after IHDR carrying ``counter``: same pixels, new SHA-256."""
    data = b"n\x00" + str(counter).encode()
    chunk = (
        struct.pack(">I", len(data))
        + b"tEXt"
        + data
        + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    )
    ihdr_end = 8 + 25
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(np.asarray(values), q))


# -- phases ------------------------------------------------------------------------------


#: Daemon-side stages reported per rate (medians over the 200 answers).
STAGES = ("queue", "decode", "model", "postprocess", "total")


def stages(body: dict) -> dict[str, float]:
    """Per-stage milliseconds of one answer: the daemon's ``daemon_ms`` (queue, decode,
    inference = bundle.inspect, total) split by the result's ``timings_ms.model``
    (preprocessing + engine) into model and postprocess (regions, caption)."""
    d, model = body.get("daemon_ms") or {}, (body.get("timings_ms") or {}).get("model")
    if not d or model is None:
        return {}
    return {"queue": d["queue"], "decode": d["decode"], "model": model,
            "postprocess": d["inference"] - model, "total": d["total"]}  # fmt: skip


def steady(
    url: str, pngs: list[bytes], *, rate: float, duration: float, counter: list[int], pid: int
) -> dict:
    """Open loop at ``rate``/s; latency from the scheduled send time. Also the CPU time
    the daemon (``pid``) and this load generator used per request."""
    n = int(rate * duration)
    cpu0 = cpu_seconds(pid), cpu_seconds(os.getpid())
    latencies, codes, per_stage, verdicts = [], [], [], {}
    lock = threading.Lock()
    client = httpx.Client(base_url=url, timeout=60, limits=httpx.Limits(max_connections=64))
    start = time.monotonic() + 0.2

    def send(i: int) -> None:
        scheduled = start + i / rate
        time.sleep(max(0.0, scheduled - time.monotonic()))
        body = unique_png(pngs[i % len(pngs)], counter[0] + i)
        answer = None
        try:
            response = client.post(
                "/v1/inspect", content=body, headers={"Content-Type": "image/png"}
            )
            code = response.status_code
            if code == 200:
                answer = response.json()
        except (httpx.HTTPError, ValueError):
            code = -1
        with lock:
            codes.append(code)
            if answer is not None:
                latencies.append(time.monotonic() - scheduled)
                per_stage.append(stages(answer))
                verdict = answer.get("verdict", "?")
                verdicts[verdict] = verdicts.get(verdict, 0) + 1

    with ThreadPoolExecutor(64) as pool:
        list(pool.map(send, range(n)))
    elapsed = time.monotonic() - start
    daemon_cpu, own_cpu = cpu_seconds(pid) - cpu0[0], cpu_seconds(os.getpid()) - cpu0[1]
    counter[0] += n
    client.close()
    per_stage = [p for p in per_stage if p]
    return {
        "rate": rate, "verdicts": verdicts,
        "daemon_cpu_ms": daemon_cpu / n * 1e3, "generator_cpu_ms": own_cpu / n * 1e3,
        "stages_ms": {k: percentile([p[k] for p in per_stage], 50) for k in STAGES},
        "requests": n, "ok": codes.count(200), "errors": n - codes.count(200), "elapsed_s": elapsed,
        "throughput": codes.count(200) / elapsed, "p50_ms": percentile(latencies, 50) * 1e3,
        "p90_ms": percentile(latencies, 90) * 1e3, "p99_ms": percentile(latencies, 99) * 1e3,
        "max_ms": max(latencies, default=float("nan")) * 1e3,
    }  # fmt: skip


def overload(url: str, pngs: list[bytes], pid: int, *, clients: int, seconds: float, max_requests: int,
             counter: list[int]) -> dict:  # fmt: skip
    """Closed loop, ``clients`` at once, no back-off: the daemon must shed load, not fall over."""
    codes: list[int] = []
    latencies_ok: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client_loop(k: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            while time.monotonic() < deadline:
                with lock:
                    if len(codes) >= max_requests:
                        return
                    counter[0] += 1
                    i = counter[0]
                t0 = time.monotonic()
                try:
                    code = c.post(
                        "/v1/inspect",
                        content=unique_png(pngs[i % len(pngs)], i),
                        headers={"Content-Type": "image/png"},
                    ).status_code
                except httpx.HTTPError:
                    code = -1
                with lock:
                    codes.append(code)
                    if code == 200:
                        latencies_ok.append(time.monotonic() - t0)

    with RssSampler(pid) as rss, ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_loop, range(clients)))
    alive = kit_alive(pid)
    health = httpx.get(url + "/healthz", timeout=10).status_code if alive else None
    values = [v for _, v in rss.samples if v == v]
    return {
        "clients": clients, "seconds": seconds, "requests": len(codes), "ok": codes.count(200),
        "rejected_503": codes.count(503), "other": len(codes) - codes.count(200) - codes.count(503),
        "ok_per_s": codes.count(200) / seconds, "p99_ok_ms": percentile(latencies_ok, 99) * 1e3,
        "rss_start_mb": values[0] if values else float("nan"), "rss_max_mb": max(values, default=float("nan")),
        "rss_end_mb": values[-1] if values else float("nan"), "alive": alive, "healthz": health,
    }  # fmt: skip


def kit_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def soak(
    watch: Path, db: Path, pid: int, *, count: int, backlog: int, size: int, deadline: float
) -> dict:
    """``count`` files through the hot folder, camera-style; verify files and rows."""
    png = base_png(size, seed=7)
    truncated_every = 100
    expected_rejected = 0
    written = 0
    t0 = time.monotonic()
    with RssSampler(pid, interval=1.0) as rss:
        while written < count and time.monotonic() < deadline:
            inbox = sum(1 for e in os.scandir(watch) if e.is_file())
            for _ in range(max(0, min(backlog - inbox, count - written))):
                data = unique_png(png, 10_000_000 + written)
                name = f"cam-{written:06d}.png"
                if written % truncated_every == truncated_every - 1:
                    data = data[: len(data) // 2]
                    expected_rejected += 1
                (watch / (name + ".part")).write_bytes(data)
                os.rename(watch / (name + ".part"), watch / name)
                written += 1
            time.sleep(0.05)

        def finished() -> int:
            return len(os.listdir(watch / "done")) + sum(
                1 for n in os.listdir(watch / "rejected") if not n.endswith(".reason.txt")
            )

        while finished() < written and time.monotonic() < deadline:
            time.sleep(0.2)
    elapsed = time.monotonic() - t0
    done = len(os.listdir(watch / "done"))
    rejected = finished() - done
    with sqlite3.connect(db) as conn:
        rows, distinct = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT sha256) FROM inspections"
        ).fetchone()
        soak_rows = conn.execute(
            "SELECT COUNT(*) FROM inspections WHERE source='folder'"
        ).fetchone()[0]
    values = [v for _, v in rss.samples if v == v]
    tenth = values[max(0, len(values) // 10)] if values else float("nan")
    return {
        "files": written, "done": done, "rejected": rejected, "expected_rejected": expected_rejected,
        "left_in_inbox_or_processing": written - done - rejected, "folder_rows": soak_rows,
        "rows_total": rows, "distinct_sha_total": distinct, "elapsed_s": elapsed,
        "files_per_s": (done + rejected) / elapsed if elapsed else float("nan"),
        "rss_at_10pct_mb": tenth, "rss_end_mb": values[-1] if values else float("nan"),
        "rss_max_mb": max(values, default=float("nan")), "complete": written == count and finished() == written,
    }  # fmt: skip


# -- report ------------------------------------------------------------------------------


def machine() -> str:
    return f"{cpu_name()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, {platform.system()}"


def report(args, bundle_id: str, results: dict) -> str:
    steadies, o, k = results["steady"], results["overload"], results.get("soak")
    if args.images == "textile":
        requests = "the textile demo's 200 held-out photos (249x249 as fitted; 100 good, 50 local, 50 global), re-encoded as PNG, shuffled once (seed 0) and cycled"
    elif args.images:
        requests = f"images from `{args.images}` re-encoded as PNG, cycled"
    else:
        requests = f"a synthetic {args.image_size}x{args.image_size} PNG part"
    lines = []
    if args.fake:
        lines += ["> **DRY RUN on the test double** - these numbers measure the daemon's plumbing, not a model.",
                  "> Do not report them.", ""]  # fmt: skip
    lines += [
        "# inspect serve: load and soak",
        "",
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {machine()} (load generator on the same machine, 127.0.0.1)",
        f"- load: 1-minute load average {results['load'][0]:.1f} at the start, "
        f"{results['load'][1]:.1f} at the end (with other jobs on these cores, latencies grow)",
        f"- bundle: `{args.bundle}` (id `{bundle_id}`)",
        f"- daemon: `--workers {args.workers} --batch-size {args.batch_size} --queue-size {args.queue_size}`",
        f"- requests: {requests}; soak image: {args.soak_image_size}x{args.soak_image_size} PNG",
        "- command: `python benchmarks/daemon_load.py " + " ".join(sys.argv[1:]) + "`",
        "",
        f"## Steady rates (open loop, {args.duration:g} s each)",
        "",
        "| rate (/s) | requests | ok | errors | throughput (/s) | p50 ms | p90 ms | p99 ms | max ms | verdicts |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in steadies:
        mix = ", ".join(f"{v} {n}" for v, n in sorted(s["verdicts"].items()))
        lines.append(
            f"| {s['rate']:g} | {s['requests']} | {s['ok']} | {s['errors']} | {s['throughput']:.1f} | "
            f"{s['p50_ms']:.1f} | {s['p90_ms']:.1f} | {s['p99_ms']:.1f} | {s['max_ms']:.1f} | {mix} |"
        )
    lines += [
        "",
        "Daemon-side medians per answer (ms): queue wait, image decode, model (preprocessing +",
        "engine), postprocess (regions, caption), total inside the daemon; then the CPU time",
        "per request of the daemon and of this load generator (both on the same cores).",
        "",
        "| rate (/s) | " + " | ".join(STAGES) + " | daemon CPU ms/req | generator CPU ms/req |",
        "|---:|" + "---:|" * (len(STAGES) + 2),
    ]
    for s in steadies:
        lines.append(
            f"| {s['rate']:g} | " + " | ".join(f"{s['stages_ms'][k]:.1f}" for k in STAGES)
            + f" | {s['daemon_cpu_ms']:.1f} | {s['generator_cpu_ms']:.1f} |"
        )
    lines += [
        "",
        "Latency counts from each request's scheduled send time (queueing included).",
        "",
        f"## Overload ({o['clients']} closed-loop clients, {o['seconds']:g} s, no back-off)",
        "",
        "| requests | 200 | 503 | other | 200/s | p99 of 200s ms | RSS start / max / end MB | alive | /healthz |",
        "|---:|---:|---:|---:|---:|---:|---|---|---|",
        f"| {o['requests']} | {o['ok']} | {o['rejected_503']} | {o['other']} | {o['ok_per_s']:.1f} | "
        f"{o['p99_ok_ms']:.1f} | {o['rss_start_mb']:.0f} / {o['rss_max_mb']:.0f} / {o['rss_end_mb']:.0f} | "
        f"{o['alive']} | {o['healthz']} |",
    ]
    if k:
        growth = k["rss_end_mb"] - k["rss_at_10pct_mb"]
        lines += [
            "",
            f"## Soak ({k['files']} files through the hot folder, 1% truncated)",
            "",
            "| files | done | rejected (expected) | left over | folder rows | distinct SHA-256 / rows | files/s | RSS at 10% / end / max MB |",
            "|---:|---:|---:|---:|---:|---|---:|---|",
            f"| {k['files']} | {k['done']} | {k['rejected']} ({k['expected_rejected']}) | "
            f"{k['left_in_inbox_or_processing']} | {k['folder_rows']} | {k['distinct_sha_total']} / {k['rows_total']} | "
            f"{k['files_per_s']:.1f} | {k['rss_at_10pct_mb']:.0f} / {k['rss_end_mb']:.0f} / {k['rss_max_mb']:.0f} |",
            "",
            f"Memory growth from 10% to the end of the soak: {growth:+.1f} MB "
            f"({growth / max(1, k['files']) * 1000 * 1024:+.1f} KB per 1,000 images). "
            f"Complete: {k['complete']}; no lost or duplicated rows: "
            f"{k['folder_rows'] == k['files'] and k['distinct_sha_total'] == k['rows_total']}.",
        ]
    if results.get("faults"):
        lines += report_faults(results["faults"])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, help="exported bundle folder (required unless --fake)")
    p.add_argument(
        "--fake", action="store_true", help="dry run on the test double (numbers not reportable)"
    )
    p.add_argument(
        "--fake-delay-ms", type=float, default=5.0, help="test double's inference time per image"
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--queue-size", type=int, default=32)
    p.add_argument(
        "--rates", default="20,30,40",
        help="steady phase requests per second, comma-separated: one phase each (default %(default)s)",
    )  # fmt: skip
    p.add_argument("--duration", type=float, default=30.0, help="seconds of each steady phase")
    p.add_argument(
        "--images",
        help="request images: 'textile' (the demo's held-out photos) or a folder; "
        "default: a synthetic --image-size part",
    )
    p.add_argument("--overload-clients", type=int, default=96)
    p.add_argument("--overload-seconds", type=float, default=15.0)
    p.add_argument("--overload-max-requests", type=int, default=50_000)
    p.add_argument(
        "--soak", type=int, default=10_000, help="files through the hot folder (0: skip)"
    )
    p.add_argument("--backlog", type=int, default=200, help="most soak files waiting in the inbox")
    p.add_argument("--image-size", type=int, default=512)
    p.add_argument("--soak-image-size", type=int, default=256)
    p.add_argument("--max-seconds", type=float, default=1800.0, help="hard bound on the whole run")
    p.add_argument(
        "--faults", action=argparse.BooleanOptionalAction, default=True,
        help="run the fault section (store deleted/corrupted, slow clients, oversized images)",
    )  # fmt: skip
    p.add_argument(
        "--out",
        type=Path,
        help="markdown report (default: results/daemon_load.md; stdout for --fake)",
    )
    args = p.parse_args(argv)
    try:
        args.rate_list = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        p.error(f"--rates must be numbers separated by commas, got {args.rates!r}")
    if not args.rate_list or min(args.rate_list) <= 0:
        p.error("--rates needs at least one positive rate")
    if sum(args.rate_list) * args.duration > 20_000:
        p.error("the steady phases are bounded to 20,000 requests (rates x --duration)")
    work = Path(tempfile.mkdtemp(prefix="defectkit-load-"))
    try:
        if args.fake:
            args.bundle = args.bundle or work / "bundle"
            bundle = kit.BundleUnderTest(
                fake.write_fake_bundle(args.bundle, delay_s=args.fake_delay_ms / 1e3)
            )
        elif args.bundle is None:
            p.error("--bundle is required (or --fake for a dry run)")
        else:
            bundle = kit.BundleUnderTest(args.bundle.resolve(), fake=False)
        deadline = time.monotonic() + args.max_seconds
        watch, db = work / "watch", work / "results.db"
        watch.mkdir()
        daemon = kit.DaemonProcess(
            bundle, "--watch", str(watch), "--db", str(db), "--workers", str(args.workers),
            "--batch-size", str(args.batch_size), "--queue-size", str(args.queue_size),
            "--poll-interval", "0.2",
        )  # fmt: skip
        pngs = folder_pngs(args.images) if args.images else [base_png(args.image_size, seed=1)]
        counter, results = [0], {"load": [os.getloadavg()[0], float("nan")]}
        try:
            daemon.wait_listening(120)
            bundle_id = httpx.get(daemon.url + "/healthz", timeout=10).json()["bundle_id"]
            steady(
                daemon.url, pngs, rate=args.rate_list[0], duration=min(3.0, args.duration),
                counter=counter, pid=daemon.proc.pid,
            )  # warm-up
            results["steady"] = []
            for rate in args.rate_list:
                results["steady"].append(
                    steady(daemon.url, pngs, rate=rate, duration=args.duration, counter=counter,
                           pid=daemon.proc.pid)  # fmt: skip
                )
                time.sleep(2.0)  # let the queue drain between phases
            results["overload"] = overload(
                daemon.url, pngs, daemon.proc.pid, clients=args.overload_clients, seconds=args.overload_seconds,
                max_requests=args.overload_max_requests, counter=counter,
            )  # fmt: skip
            if args.soak:
                results["soak"] = soak(watch, db, daemon.proc.pid, count=args.soak, backlog=args.backlog,
                                       size=args.soak_image_size, deadline=deadline)  # fmt: skip
        finally:
            daemon.signal(signal.SIGTERM)
            rc = daemon.wait(120)
        if args.faults:
            results["faults"] = run_faults(bundle, work / "faults")
        results["load"][1] = os.getloadavg()[0]
        text = report(args, bundle_id, results) + f"\nDaemon exit code after SIGTERM: {rc}.\n"
        out = args.out or (
            None if args.fake else REPO / "benchmarks" / "results" / "daemon_load.md"
        )
        if out is None:
            print(text)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
            print(f"wrote {out}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
