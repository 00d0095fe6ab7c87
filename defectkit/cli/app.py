"""``inspect app``: serve the labelling app for one or more projects."""

from __future__ import annotations

import argparse
import ipaddress
import sys

from defectkit.apps.labelling.server import DEFAULT_PROJECT, launch


def register(sub) -> None:
    p = sub.add_parser(
        "app", help="open the labelling app (label, fit, review, threshold, export) in a browser",
        description="Serve the labelling app. A project is one folder (images, labels, masks, "
        "notes, fitted inspector, exports); it survives closing the browser or restarting the app. "
        "Open other projects from the page.",
    )  # fmt: skip
    p.add_argument(
        "--project", default=DEFAULT_PROJECT, metavar="DIR",
        help=f"project folder to open, created if new (default: ./{DEFAULT_PROJECT})",
    )  # fmt: skip
    p.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; the app has no login)",
    )  # fmt: skip
    p.add_argument("--port", type=int, help="port (default: the first free one from 7860)")
    p.set_defaults(func=cmd_app)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def cmd_app(args: argparse.Namespace) -> int:
    if args.port is not None and not 0 < args.port < 65536:
        from defectkit.errors import ConfigError

        raise ConfigError(f"--port must be between 1 and 65535, got {args.port}")
    if not _is_loopback(args.host):
        print(
            f"inspect app: warning: listening on {args.host}; anyone who can reach this "
            "machine can read and change the project (the app has no login)",
            file=sys.stderr,
        )
    launch(args.project, host=args.host, port=args.port, block=True)
    return 0
