"""``inspect review``: the line's escalated parts, seen from the lab."""

from __future__ import annotations

import argparse
from pathlib import Path

from defectkit.errors import ConfigError

DESCRIPTION = """\
The parts a line's daemon escalated (scores in the bundle's uncertainty band), read from
its review store: the daemon's URL with its token, a copy of its review.db, or the
PostgreSQL database several lines share (`inspect serve --review-store URL`).

  inspect review second-opinion --model HEAVY --daemon http://line3:8080 --token-file T
  inspect review second-opinion --model HEAVY --store review.db -o opinions/
  inspect review second-opinion --model HEAVY --store postgresql://qc@db/lines

The labelling app's "4 · Review queue" tab shows the same two opinions side by side.
"""

SECOND_OPINION = """\
Re-inspect every queued part with a heavier model than the line's: a model folder from
`inspect fit` (more shots, --unlabelled line images, a finer --scale, a bigger --backbone)
or an exported bundle. Both opinions (verdict, score, class and probability, caption,
defect region) are written side by side, parts where the models disagree first:
OUT/second_opinion.json and OUT/index.html. Each part is inspected once per heavy model
(cached in OUT/opinions.db, or --cache). Exit 0, or 1 when the models disagree on any
part, so a script can tell.
"""


def register(sub) -> None:
    parser = sub.add_parser(
        "review", help="the line's escalated parts: a second opinion from a heavier model",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    p = commands.add_parser(
        "second-opinion", help="re-inspect queued parts with a heavier model, both side by side",
        description=SECOND_OPINION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument(
        "--model", required=True, metavar="HEAVY",
        help="the heavier model: a folder from `inspect fit -o` or an exported bundle",
    )  # fmt: skip
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--store", metavar="REVIEW_DB|URL",
        help="a daemon's review.db (or a copy), or the postgresql:// URL of a shared review "
        "store (every line's parts)",
    )  # fmt: skip
    where.add_argument("--daemon", metavar="URL", help="a running daemon, e.g. http://line3:8080")
    p.add_argument("--token-file", metavar="FILE", help="the daemon's bearer token (with --daemon)")
    p.add_argument(
        "-o", "--output", default="second-opinion", metavar="OUT",
        help="report folder (default: %(default)s/)",
    )  # fmt: skip
    p.add_argument("--cache", metavar="FILE", help="opinion cache (default: OUT/opinions.db)")
    p.add_argument(
        "--limit", type=int, default=200, help="most parts, newest first (default: %(default)s)"
    )
    p.set_defaults(func=cmd_second_opinion)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def cmd_second_opinion(args) -> int:
    from defectkit.apps.reviewqueue.opinion_cache import OpinionCache
    from defectkit.apps.reviewqueue.opinion_report import write_report
    from defectkit.apps.reviewqueue.second_opinion import load_heavy_model, second_opinions
    from defectkit.apps.reviewqueue.sources import open_source

    if args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}")
    token = _token(args)
    source = open_source(args.daemon or args.store, token)
    source.list(limit=1)  # an unreachable daemon or a wrong token fails before the slow load
    heavy = load_heavy_model(args.model)
    out = Path(args.output)
    cache = OpinionCache(args.cache or out / "opinions.db")
    try:
        pairs = second_opinions(source, heavy, cache, limit=args.limit)
    finally:
        cache.close()
    page = write_report(pairs, out, heavy_path=str(args.model))
    disagree = [p for p in pairs if p.disagrees]
    for pair in pairs:
        name = pair.item.name or pair.item.sha256[:12]
        said = f"DISAGREE ({pair.disagreement})" if pair.disagrees else "agree"
        print(f"  {said:40s} {name}: line {pair.line.describe()}; heavy {pair.heavy.describe()}")
    cached = sum(p.cached for p in pairs)
    print(f"{len(pairs)} part(s) from {source.name}, {len(disagree)} disagreement(s), "
          f"{cached} from the cache; report: {page}")  # fmt: skip
    return 1 if disagree else 0


def _token(args) -> str | None:
    if not args.token_file:
        return None
    if not args.daemon:
        raise ConfigError("--token-file goes with --daemon (a review.db needs no token)")
    try:
        return Path(args.token_file).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"--token-file {args.token_file}: cannot read it ({exc.strerror})") from None
