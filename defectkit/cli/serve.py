"""``inspect serve``: argparse flags, one per :class:`ServeConfig` field.

The umbrella CLI calls :func:`register`; :func:`main` runs the daemon on its own, with
another bundle loader where tests and the benchmark need one
(``python -m defectkit.testing.daemon`` runs it with the test double).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from defectkit.apps.daemon.bundles import Loader, load_runtime_bundle
from defectkit.apps.daemon.config import ServeConfig
from defectkit.errors import DefectkitError

_D = ServeConfig.__dataclass_fields__  # defaults come from the dataclass, written once


def _default(name: str):
    return _D[name].default


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``serve`` flags; each ``dest`` is a :class:`ServeConfig` field."""
    parser.add_argument(
        "--bundle", required=True, metavar="DIR", help="exported bundle folder to serve"
    )
    parser.add_argument(
        "--watch", metavar="DIR", help="hot folder: images dropped here are inspected"
    )
    parser.add_argument(
        "--host",
        default=_default("host"),
        help="address to bind (default %(default)s; others need --token-file)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=_default("port"),
        help="TCP port, 0 = any free (default %(default)s)",
    )
    parser.add_argument(
        "--db",
        metavar="PATH_OR_URL",
        help="SQLite file or postgresql:// URL (default: WATCH/.defectkit/results.db "
        "or ./defectkit-serve.db)",
    )
    parser.add_argument("--overlays", metavar="DIR", help="write heatmap overlay PNGs here")
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        help="file with a bearer token required by every endpoint but /healthz",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=_default("workers"),
        help="inference threads; more than 1 tunes the runtime for throughput, "
        "1 for the lowest latency per image (default %(default)s: up to 2, one per core)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=_default("batch_size"),
        help="most images per inference call (default %(default)s)",
    )
    parser.add_argument(
        "--queue-size",
        type=int,
        default=_default("queue_size"),
        help="jobs that may wait before uploads get 503 (default %(default)s)",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        default=_default("max_upload_mb"),
        help="largest upload or hot-folder file in MiB (default %(default)s)",
    )
    parser.add_argument(
        "--max-image-mp",
        type=float,
        default=_default("max_image_mp"),
        help="most megapixels (width x height, read from the header) of one image; more is "
        "refused with 413 before decoding (default %(default)s)",
    )
    parser.add_argument(
        "--pixel-budget-mp",
        type=float,
        default=_default("pixel_budget_mp"),
        help="most megapixels decoded and inspected at once by all workers together: "
        "bounds memory (see docs/operations.md for bytes per pixel; default %(default)s)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=_default("poll_interval"),
        help="seconds between hot-folder scans (default %(default)s)",
    )
    parser.add_argument(
        "--settle-time",
        type=float,
        default=_default("settle_time"),
        help="seconds a hot-folder file must stay unchanged before it is taken; longer than "
        "any pause of the writer, or write NAME.part and rename (default %(default)s)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=_default("header_timeout"),
        help="seconds a connection may take to send a request's headers (default %(default)s)",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=_default("body_timeout"),
        help="seconds an upload's body may take to arrive; 408 beyond (default %(default)s)",
    )
    parser.add_argument(
        "--new-store",
        action="store_true",
        help="start an empty results store although done/ holds inspected files "
        "(refused otherwise: the store was probably deleted or --db changed)",
    )
    parser.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="PUBKEY",
        help="public key (PEM) of a lab whose signed bundles may be served; repeat for "
        "several; with it, unsigned or otherwise signed bundles are refused",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=_default("shutdown_timeout"),
        help="seconds SIGTERM waits for in-flight work (default %(default)s)",
    )
    parser.add_argument(
        "--device", default=_default("device"), help="runtime device (default %(default)s)"
    )
    parser.add_argument(
        "--review-policy",
        default=_default("review_policy"),
        choices=["hold", "reject", "accept"],
        help="verdict for a part in the bundle's uncertainty band (`inspect threshold "
        "--band`): hold -> 'hold' (set it aside), reject -> 'defect', accept -> 'good'; "
        "the part is marked review, its image kept for the lab (default %(default)s)",
    )
    parser.add_argument(
        "--review-store",
        metavar="PATH|URL",
        help="where review parts and their images are kept: a SQLite file (default: review.db "
        "beside a SQLite --db, or WATCH/.defectkit/review.db), or a postgresql:// URL several "
        "lines share (each keeps, bounds and counts its own --station's parts; when the "
        "server is down the line still runs, and the parts are counted as review_store errors)",
    )
    parser.add_argument(
        "--review-keep",
        type=int,
        default=_default("review_keep"),
        help="most parts the review store keeps; the oldest are evicted and counted "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--review-max-mb",
        type=float,
        default=_default("review_max_mb"),
        help="most image MiB the review store keeps (default %(default)s)",
    )
    parser.add_argument(
        "--follow-interval",
        type=float,
        default=_default("follow_interval"),
        metavar="SECONDS",
        help="with --bundle REGISTRY/current: reload when the link moves (`inspect bundles "
        "promote/rollback`), checked this often; 0 = only on SIGHUP or POST /v1/reload "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--station",
        default=_default("station"),
        help="name stored with every row (default: the host name)",
    )
    parser.add_argument(
        "--log-level",
        default=_default("log_level"),
        choices=["debug", "info", "warning", "error"],
        help="default %(default)s",
    )


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``serve`` to the umbrella ``inspect`` CLI."""
    parser = subparsers.add_parser(
        "serve",
        help="run the inference daemon (hot folder + HTTP API)",
        description="Serve an exported bundle: a hot folder and an HTTP API in; verdicts, "
        "a results database, done/ and rejected/ folders and overlays out.",
    )
    add_arguments(parser)
    parser.set_defaults(func=handler)
    return parser


def handler(args: argparse.Namespace, *, loader: Loader = load_runtime_bundle) -> int:
    """Run the daemon; user errors propagate as :class:`DefectkitError` (exit 2)."""
    from defectkit.apps.daemon.service import run

    return run(ServeConfig.from_args(args), loader=loader)


def main(argv: Sequence[str] | None = None, *, loader: Loader = load_runtime_bundle) -> int:
    """Stand-alone entry point; prints a :class:`DefectkitError` on one line and returns 2."""
    parser = argparse.ArgumentParser(prog="inspect serve", description="defectkit inference daemon")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return handler(args, loader=loader)
    except DefectkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
