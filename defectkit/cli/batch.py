"""``inspect batch`` (re-inspect an archive on Dask) and ``inspect compare`` (two bundles'
verdicts on it). Flags map one-to-one onto :class:`~defectkit.apps.batch.job.BatchConfig`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BATCH_EPILOG = """\
examples:
  inspect batch bundle/ /archive/2024-05 --store results.db
        a LocalCluster with one worker per core on this machine
  inspect batch bundle/ files.txt --store postgresql://qc@db/qc --scheduler tcp://sched:8786
        an existing Dask cluster; every worker needs defectkit[serve] and the bundle and
        files at the same paths (or fsspec URLs such as s3://bucket/archive/)
  inspect compare results.db --bundle OLD --bundle NEW --html changed/

Killed or interrupted? Run the same command again: files with a row for this bundle
are skipped, so every file ends with exactly one row (rows are unique by content hash
and bundle id). Unreadable files get a row with the reason and are not retried unless
--retry-failed is given.
"""


def register(sub) -> None:
    from defectkit.apps.batch.job import CHUNK_SIZE
    from defectkit.apps.batch.work import MAX_FILE_MB

    p = sub.add_parser(
        "batch",
        help="re-inspect an archive of images on Dask into the results store (resumable)",
        description="Inspect every image of SOURCE with an exported bundle on a Dask cluster, "
        "writing one row per file into the daemon's results store (SQLite or PostgreSQL), "
        "exactly once, resumable after any kill.",
        epilog=BATCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "bundle", type=Path, metavar="BUNDLE", help="exported bundle folder (inspect export)"
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="a folder (searched recursively), a text file with one path or URL per line, "
                   "a glob (quote it: '/archive/**/*.png'), or an image; local or fsspec URL")  # fmt: skip
    p.add_argument("--store", required=True, metavar="URL_OR_PATH",
                   help="results store: a SQLite file, or a postgresql:// URL when several machines "
                   "or daemons write (the same store `inspect serve --db` uses)")  # fmt: skip
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="an existing Dask scheduler (tcp://host:8786); default: a LocalCluster here",
    )
    p.add_argument("--workers", type=int, metavar="N",
                   help="LocalCluster worker processes (default: one per core); with --scheduler, "
                   "how many workers to wait for (default 1)")  # fmt: skip
    p.add_argument("--station", help="name stored with every row (default: this host's name)")
    p.add_argument("--chunk-size", type=int, default=CHUNK_SIZE, metavar="N",
                   help=f"files per Dask task (default {CHUNK_SIZE}: about a second of work, "
                   "so the scheduler's overhead stays small)")  # fmt: skip
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="read again the files that have a rejected or error row for this bundle "
        "(a file that now reads differently gets a new row; the old one stays)",
    )
    p.add_argument("--device", default="CPU", help="runtime device on the workers (default CPU)")
    p.add_argument(
        "--max-file-mb",
        type=float,
        default=MAX_FILE_MB,
        metavar="MB",
        help=f"larger files get a rejected row instead of being read (default {MAX_FILE_MB:g})",
    )
    p.set_defaults(func=cmd_batch)

    c = sub.add_parser(
        "compare",
        help="which parts changed verdict or class between two bundles in a results store",
        description="Join the rows of two bundles by content hash and list the parts whose "
        "verdict or class changed: a table here, and with --html a page with the overlays "
        "of the changed parts.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("store", metavar="STORE", help="SQLite file or postgresql:// URL")
    c.add_argument("--bundle", action="append", required=True, metavar="ID_OR_DIR",
                   help="give it twice, OLD then NEW: a bundle id (or a unique prefix, as in the "
                   "store) or a bundle folder, whose heatmaps then go on the page")  # fmt: skip
    c.add_argument(
        "--html", type=Path, metavar="DIR", help="write DIR/index.html with the overlays"
    )
    c.add_argument(
        "--limit",
        type=int,
        default=200,
        metavar="N",
        help="most changed parts listed and drawn (default 200; the counts cover all)",
    )
    c.add_argument("--json", action="store_true", help="print the comparison as one JSON object")
    c.set_defaults(func=cmd_compare)


def cmd_batch(args, *, loader: str | None = None) -> int:
    """Run ``inspect batch``; ``loader`` (``module:function``) replaces the runtime's
    ``load_bundle`` on every worker (``python -m defectkit.testing.batch`` passes the
    daemon's test double)."""
    from defectkit.apps.batch.job import BatchConfig, run

    config = BatchConfig(
        bundle=args.bundle, sources=tuple(args.sources), store=args.store,
        scheduler=args.scheduler, workers=args.workers, chunk_size=args.chunk_size,
        retry_failed=args.retry_failed, device=args.device, max_file_mb=args.max_file_mb,
        **({"station": args.station} if args.station else {}),
        **({"loader": loader} if loader else {}),
    )  # fmt: skip
    try:
        summary = run(config)
    except KeyboardInterrupt:
        print("inspect batch: interrupted; the rows committed so far are kept: run the same "
              "command again to resume", file=sys.stderr)  # fmt: skip
        return 130
    t = summary.tally
    print(
        f"inspect batch: {summary.total:,} files, bundle {summary.bundle_id}: "
        f"{t.inspected:,} inspected, {t.skipped:,} already done, {t.duplicates:,} duplicates, "
        f"{t.rejected:,} rejected, {t.errors:,} errors in {summary.seconds:.1f} s "
        f"({summary.files_per_second:.1f} files/s)"
    )
    if t.rejected or t.errors:
        print(f"  the reasons are in the store: SELECT name, error FROM inspections WHERE "
              f"bundle_id = '{summary.bundle_id}' AND status <> 'ok'")  # fmt: skip
    return 0


def cmd_compare(args) -> int:
    from defectkit.apps.batch.compare import compare_bundles, format_comparison
    from defectkit.apps.batch.page import write_compare_page
    from defectkit.apps.daemon.store import open_store
    from defectkit.errors import ConfigError

    if len(args.bundle) != 2:
        raise ConfigError(f"give --bundle twice (OLD, then NEW), not {len(args.bundle)} time(s)")
    if args.limit < 0:
        raise ConfigError(f"--limit must be >= 0, got {args.limit}")
    store = open_store(args.store)
    try:
        comparison = compare_bundles(store, args.bundle[0], args.bundle[1], limit=args.limit)
    finally:
        store.close()
    if args.json:
        print(json.dumps(comparison.to_dict()))
    else:
        print(format_comparison(comparison))
    if args.html:
        page = write_compare_page(comparison, args.html)
        print(f"page: {page}", file=sys.stderr if args.json else sys.stdout)
    return 0
