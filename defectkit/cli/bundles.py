"""``inspect bundles``: a registry of bundle versions, the regression gate, promote, rollback."""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime

DESCRIPTION = """\
Versioned bundles in a registry folder, and the channel daemons follow.

  inspect bundles add REG BUNDLE_DIR                 register an exported bundle (parent: current)
  inspect bundles gate REG ID --images PROJECT       run it beside the current version on every
                                                     labelled image; list every flip (HTML report)
  inspect bundles promote REG ID [--accept NOTE]     make it current (gate passed, or flips accepted)
  inspect bundles rollback REG [--to ID]             back to the current version's parent
  inspect bundles list REG

Daemons follow the channel with `inspect serve --bundle REG/current --follow-interval 5`.
"""


def register(sub) -> None:
    parser = sub.add_parser(
        "bundles", help="bundle registry: add, gate, promote, rollback, list",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = commands.add_parser("list", help="versions, newest last, with parent, gate and state")
    p.add_argument("registry", metavar="REG")
    p.set_defaults(func=cmd_list)

    p = commands.add_parser("add", help="copy a verified bundle into the registry")
    p.add_argument("registry", metavar="REG", help="registry folder (created if missing)")
    p.add_argument("bundle", metavar="BUNDLE_DIR")
    p.add_argument("--parent", metavar="ID", help="the version it derives from (default: current)")
    p.set_defaults(func=cmd_add)

    p = commands.add_parser(
        "gate", help="run a version beside the current one on every labelled image",
        description="The regression gate: the version and the one it would replace run on "
        "every labelled image; every verdict or class they answer differently is listed with "
        "overlays in REG/versions/ID/gate/index.html. A flip from right to wrong (by the "
        "label) is a regression and blocks promotion. Answers are kept in "
        "REG/answers.sqlite by version and image pixels, so a version is run only on images "
        "it has not answered before (the current one usually none).",
    )  # fmt: skip
    p.add_argument("registry", metavar="REG")
    p.add_argument("version", metavar="ID")
    p.add_argument(
        "--images", nargs="+", required=True, metavar="LABELLED_DIR",
        help="the app's project folder (its labelled shots, parts confirmed in review among "
        "them) or labelled images in the folder layout (good/, <defect>/)",
    )  # fmt: skip
    p.add_argument("--against", metavar="ID", help="compare with this version (default: current)")
    p.add_argument("--device", default="CPU", help="runtime device (default: CPU)")
    p.add_argument(
        "--workers", type=int, default=min(4, os.cpu_count() or 1), metavar="N",
        help="batches inspected at once, each with its share of the cores (default: the "
        "cores, at most 4). One thread per core does not wait on the others, so the gate "
        "also keeps its pace on cores shared with other jobs",
    )  # fmt: skip
    p.set_defaults(func=cmd_gate)

    p = commands.add_parser("promote", help="make a gated version current")
    p.add_argument("registry", metavar="REG")
    p.add_argument("version", metavar="ID")
    p.add_argument(
        "--accept", metavar="NOTE",
        help="accept the gate's blocking flips, saying why; recorded with your user name",
    )  # fmt: skip
    p.set_defaults(func=cmd_promote)

    p = commands.add_parser("rollback", help="make the current version's parent current again")
    p.add_argument("registry", metavar="REG")
    p.add_argument("--to", metavar="ID", help="another earlier version instead of the parent")
    p.set_defaults(func=cmd_rollback)

    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _registry(args):
    from defectkit.exporters.registry import Registry

    return Registry(args.registry)


def cmd_list(args) -> int:
    registry = _registry(args)
    current = registry.current_id()
    entries = registry.entries()
    if not entries:
        print(f"{args.registry}: no versions; add one with `inspect bundles add`")
        return 0
    for e in entries:
        gate = "not gated"
        if e.gate:
            gate = ("passed" if e.gate["passed"] else f"{e.gate['blocking']} blocking") + (
                f" vs {e.gate['against'] or 'labels'} on {e.gate['images']} images"
            )
        accepted = f", accepted by {e.accepted.by}: {e.accepted.note}" if e.accepted else ""
        print(
            f"{'*' if e.id == current else ' '} {e.id}  added {_when(e.added)}  parent "
            f"{e.parent or '-'}  support {e.support_sha256[:12]}  gate: {gate}{accepted}"
        )
    return 0


def cmd_add(args) -> int:
    entry = _registry(args).add(args.bundle, parent=args.parent)
    print(f"added {entry.id} (parent {entry.parent or '-'}); next: inspect bundles gate "
          f"{args.registry} {entry.id} --images LABELLED_DIR")  # fmt: skip
    return 0


def cmd_gate(args) -> int:
    from defectkit.errors import ConfigError
    from defectkit.exporters.gate import run_gate
    from defectkit.exporters.runtime import load_bundle

    registry = _registry(args)
    entry = registry.entry(args.version)
    against = registry.entry(args.against).id if args.against else registry.current_id()
    samples = [s for folder in args.images for s in _labelled(folder)]
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    load = lambda version: load_bundle(registry.bundle_path(version), device=args.device,  # noqa: E731
                                       streams=args.workers)  # fmt: skip
    new = load(entry.id)
    old = load(against) if against else None
    started = time.perf_counter()
    answers = registry.answers()
    try:
        report = run_gate(new, samples, old=old, report_dir=registry.gate_dir(entry.id),
                          answers=answers, workers=args.workers)  # fmt: skip
    finally:
        answers.close()
    registry.record_gate(entry.id, report)
    print(report.summary())
    for flip in report.flips:
        print(f"  {flip.effect:10s} {flip.image}  label {flip.truth}  "
              f"{_answer(flip.old)} -> {_answer(flip.new)}")  # fmt: skip
    print(f"report: {registry.gate_dir(entry.id) / 'index.html'} "
          f"({time.perf_counter() - started:.1f} s)")  # fmt: skip
    return 0 if report.passed else 1


def cmd_promote(args) -> int:
    entry = _registry(args).promote(args.version, accept=args.accept)
    note = f" (flips accepted: {entry.accepted.note})" if entry.accepted else ""
    print(f"promoted {entry.id}{note}; daemons following {args.registry}/current reload it")
    return 0


def cmd_rollback(args) -> int:
    entry = _registry(args).rollback(args.to)
    print(f"rolled back to {entry.id}; daemons following {args.registry}/current reload it")
    return 0


def _labelled(folder: str) -> list:
    """An app project's labelled shots (confirmed review parts among them), or a
    folder-layout dataset (good/, <defect>/)."""
    from pathlib import Path

    from defectkit.apps.labelling.project import MANIFEST, Project
    from defectkit.datasets.folder import load_folder

    if (Path(folder) / MANIFEST).is_file():
        return Project.open(folder, create=False).samples()
    return load_folder(folder)


def _answer(answer) -> str:
    return "-" if answer is None else f"{answer.verdict}/{answer.label}"


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M")
