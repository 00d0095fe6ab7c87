"""``inspect compare``: which parts changed verdict or class between two bundles.

A part is its content hash: the rows of the two bundles are joined on ``sha256``
(rows are unique by content and bundle), whether the line's daemon or an archive run
wrote them. The counting is done by the database over every row; only the first
``limit`` changed parts are fetched, verdict flips first, then the largest score moves.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defectkit.apps.daemon.store import ResultStore
from defectkit.errors import ConfigError


@dataclass(frozen=True)
class BundleRef:
    """One side of the comparison: its id, and the loaded bundle when a folder was given
    (then the page draws heatmaps with it)."""

    id: str
    bundle: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Verdict:
    """One bundle's row for a part."""

    verdict: str | None
    label: str | None
    score: float | None
    boxes: tuple[tuple[int, int, int, int], ...] = ()
    caption: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "label": self.label, "score": self.score,
                "boxes": [list(b) for b in self.boxes], "caption": self.caption}  # fmt: skip


@dataclass(frozen=True)
class ChangedPart:
    sha256: str
    name: str | None  # where the new bundle's row says the file was
    old: Verdict
    new: Verdict

    @property
    def verdict_changed(self) -> bool:
        return self.old.verdict != self.new.verdict

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "name": self.name, "old": self.old.to_dict(),
                "new": self.new.to_dict(), "verdict_changed": self.verdict_changed}  # fmt: skip


@dataclass
class Comparison:
    """Two bundles over the same parts.

    Attributes:
        both: parts with a successful row under each bundle.
        verdict_changed: of those, parts whose verdict changed.
        label_changed: parts whose class changed but not their verdict.
        status_changed: parts inspected by one bundle and rejected or failed by the other.
        only_old, only_new: parts with a row under one bundle only.
        transitions: (old class, new class) -> parts, over ``both``.
        changed: the first ``limit`` changed parts.
    """

    old: BundleRef
    new: BundleRef
    both: int = 0
    verdict_changed: int = 0
    label_changed: int = 0
    status_changed: int = 0
    only_old: int = 0
    only_new: int = 0
    transitions: dict[tuple[str | None, str | None], int] = field(default_factory=dict)
    changed: list[ChangedPart] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        counts = (
            "both",
            "verdict_changed",
            "label_changed",
            "status_changed",
            "only_old",
            "only_new",
        )
        return {
            "old": self.old.id, "new": self.new.id, **{k: getattr(self, k) for k in counts},
            "transitions": [{"old": o, "new": n, "parts": c} for (o, n), c in self.transitions.items()],
            "changed": [p.to_dict() for p in self.changed],
        }  # fmt: skip


def compare_bundles(store: ResultStore, old: str, new: str, *, limit: int = 200) -> Comparison:
    """Compare the rows of bundles ``old`` and ``new`` (ids, id prefixes or folders).

    Raises:
        ConfigError: a bundle with no rows in the store, an ambiguous prefix, the same
            bundle twice.
        BundleError: a bundle folder that does not verify.
    """
    refs = resolve_bundle(store, old), resolve_bundle(store, new)
    if refs[0].id == refs[1].id:
        raise ConfigError(f"both --bundle name bundle {refs[0].id}; compare two different bundles")
    out = Comparison(*refs)
    p = store.dialect.param
    ids = [out.old.id, out.new.id]
    both = (f"FROM inspections o JOIN inspections n ON n.sha256 = o.sha256 "
            f"WHERE o.bundle_id = {p} AND n.bundle_id = {p}")  # fmt: skip
    ok = f"{both} AND o.status = 'ok' AND n.status = 'ok'"
    verdict_differs = "COALESCE(o.verdict, '') <> COALESCE(n.verdict, '')"
    label_differs = "COALESCE(o.label, '') <> COALESCE(n.label, '')"
    (counts,) = store.select(
        f"SELECT COUNT(*) AS both_ok, "
        f"SUM(CASE WHEN {verdict_differs} THEN 1 ELSE 0 END) AS verdict_changed, "
        f"SUM(CASE WHEN NOT {verdict_differs} AND {label_differs} THEN 1 ELSE 0 END) AS label_changed "
        f"{ok}", ids,
    )  # fmt: skip
    out.both = int(counts["both_ok"] or 0)
    out.verdict_changed = int(counts["verdict_changed"] or 0)
    out.label_changed = int(counts["label_changed"] or 0)
    out.status_changed = _count(store, f"SELECT COUNT(*) AS n {both} AND o.status <> n.status "
                                       "AND (o.status = 'ok' OR n.status = 'ok')", ids)  # fmt: skip
    out.only_old = _only(store, out.old.id, out.new.id)
    out.only_new = _only(store, out.new.id, out.old.id)
    rows = store.select(f"SELECT o.label AS old, n.label AS new, COUNT(*) AS parts {ok} "
                        "GROUP BY o.label, n.label ORDER BY COUNT(*) DESC", ids)  # fmt: skip
    out.transitions = {(r["old"], r["new"]): int(r["parts"]) for r in rows}
    if limit > 0:
        rows = store.select(
            f"SELECT o.sha256 AS sha256, n.name AS name, o.verdict AS old_verdict, "
            f"o.label AS old_label, o.score AS old_score, o.result AS old_result, "
            f"n.verdict AS new_verdict, n.label AS new_label, n.score AS new_score, "
            f"n.result AS new_result {ok} AND ({verdict_differs} OR {label_differs}) "
            f"ORDER BY CASE WHEN {verdict_differs} THEN 0 ELSE 1 END, "
            f"ABS(COALESCE(n.score, 0) - COALESCE(o.score, 0)) DESC, o.sha256 LIMIT {int(limit)}",
            ids,
        )  # fmt: skip
        out.changed = [_changed(r) for r in rows]
    return out


def resolve_bundle(store: ResultStore, spec: str) -> BundleRef:
    """A bundle folder (loaded and verified, for its id and heatmaps) or an id prefix
    that names exactly one bundle with rows in the store."""
    if Path(spec).is_dir():
        from defectkit.exporters.runtime import load_bundle

        bundle = load_bundle(spec)
        return BundleRef(bundle.id, bundle)
    p = store.dialect.param
    rows = store.select(
        f"SELECT DISTINCT bundle_id FROM inspections WHERE substr(bundle_id, 1, {len(spec)}) = {p}",
        [spec],
    )
    ids = sorted(r["bundle_id"] for r in rows)
    if len(ids) == 1:
        return BundleRef(ids[0])
    if len(ids) > 1:
        raise ConfigError(f"bundle {spec!r} is ambiguous in the store: {', '.join(ids[:10])}")
    known = store.select("SELECT bundle_id, COUNT(*) AS n FROM inspections WHERE bundle_id IS NOT NULL "
                         "GROUP BY bundle_id ORDER BY COUNT(*) DESC LIMIT 10")  # fmt: skip
    listing = ", ".join(f"{r['bundle_id']} ({r['n']:,} rows)" for r in known) or "none"
    raise ConfigError(
        f"no rows of bundle {spec!r} in the store and no such folder; bundles there: {listing}"
    )


def format_comparison(c: Comparison) -> str:
    """The counts, the class transitions that changed, and the changed parts, as text."""
    lines = [
        f"bundles {c.old.id} (old) -> {c.new.id} (new): {c.both:,} parts inspected by both",
        f"  verdict changed: {c.verdict_changed:,}   class changed (same verdict): {c.label_changed:,}",
        f"  inspected by one, rejected or failed by the other: {c.status_changed:,}",
        f"  only in old: {c.only_old:,}   only in new: {c.only_new:,}",
    ]
    moved = [(k, n) for k, n in c.transitions.items() if k[0] != k[1]]
    if moved:
        lines.append("class transitions (old -> new: parts):")
        lines += [f"  {o} -> {n}: {count:,}" for (o, n), count in moved]
    if c.changed:
        rows = [("old", "new", "old score", "new score", "name")]
        rows += [(f"{p.old.verdict}/{p.old.label}", f"{p.new.verdict}/{p.new.label}",
                  _score(p.old.score), _score(p.new.score), p.name or p.sha256[:16]) for p in c.changed]  # fmt: skip
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines.append(f"changed parts ({len(c.changed):,} shown):")
        lines += [
            "  " + "  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows
        ]
    return "\n".join(lines)


def _changed(row: dict[str, Any]) -> ChangedPart:
    return ChangedPart(row["sha256"], row["name"], _verdict(row, "old"), _verdict(row, "new"))


def _verdict(row: dict[str, Any], side: str) -> Verdict:
    result = row[f"{side}_result"] or {}
    if isinstance(result, str):  # SQLite: text; PostgreSQL: JSONB comes back parsed
        result = json.loads(result)
    boxes = tuple(
        tuple(int(v) for v in d["box"]) for d in result.get("defects", []) if d.get("box")
    )
    return Verdict(row[f"{side}_verdict"], row[f"{side}_label"], row[f"{side}_score"], boxes,
                   result.get("caption"))  # fmt: skip


def _count(store: ResultStore, sql: str, args: Sequence[Any]) -> int:
    return int(store.select(sql, args)[0]["n"] or 0)


def _only(store: ResultStore, this: str, other: str) -> int:
    p = store.dialect.param
    return _count(store, f"SELECT COUNT(*) AS n FROM inspections o WHERE o.bundle_id = {p} AND NOT EXISTS "
                         f"(SELECT 1 FROM inspections n WHERE n.sha256 = o.sha256 AND n.bundle_id = {p})",
                  [this, other])  # fmt: skip


def _score(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.4f}"
