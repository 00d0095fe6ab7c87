"""The ``inspect`` command (also ``python -m defectkit``): the top layer.

One module per command group registers its subcommands: :mod:`.backbones` (backbones,
weights), :mod:`.models` (fit, predict, eval), :mod:`.demo`, :mod:`.export` (export,
threshold), :mod:`.serve` (the daemon), :mod:`.bundles` (registry and gate), :mod:`.review` (second opinion) and :mod:`.app` (the labelling app). Nothing
heavy is imported until a subcommand runs, so ``inspect --help`` is instant and
torch-free.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from defectkit import __version__
from defectkit.errors import DefectkitError

# Modules exposing ``register(subparsers)``; only subcommands that work are listed.
COMMAND_MODULES = (
    "defectkit.cli.backbones",
    "defectkit.cli.models",
    "defectkit.cli.demo",
    "defectkit.cli.export",
    "defectkit.cli.serve",
    "defectkit.cli.bundles",
    "defectkit.cli.review",
    "defectkit.cli.batch",
    "defectkit.cli.app",
)

DESCRIPTION = """\
Few-shot defect inspection: label ~2 images per class, fit in seconds, export to
OpenVINO/ONNX, run line-side.

typical flow:
  inspect demo                                  fit + evaluate on the bundled textile benchmark
  inspect fit DATA -o model/ --shots 2          DATA: good/, <defect>/, masks/<defect>/
  inspect predict model/ images/ --json         one JSON line per image
  inspect eval model/ DATA --report report/     metrics + HTML report
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inspect", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"defectkit {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DefectkitError as exc:
        print(f"inspect: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("inspect: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
