"""A registry folder of bundle versions, and the ``current`` channel daemons follow.

Layout (one folder, copied or shared as a whole)::

    REGISTRY/
      current -> versions/3f2a9c01b7de/bundle     the channel: `inspect serve --bundle REGISTRY/current`
      versions/<id>/bundle/                       the bundle as exported (verified when added)
      versions/<id>/entry.json                    parent, support-set hash, gate summary, acceptance
      versions/<id>/gate/                         the gate report (gate.json, index.html, overlays/)
      history.jsonl                               one line per promote / rollback
      answers.sqlite                              every version's answers on gated images

A version's id is the bundle's id (the first 12 hex digits of its manifest hash), the
same id every daemon row names. ``promote`` needs a gate report of that version against
the version being served now: with no blocking flips, or with the engineer's explicit
acceptance (``accept``, recorded with who and why). ``rollback`` returns to the current
version's parent (or a named version) without a gate: it was served before. Switching
is one atomic ``rename`` of the ``current`` link, so a daemon reloading at that moment
sees the old or the new version, never a mix.

Every answer a version gives in a gate is kept (:mod:`defectkit.exporters.answers`,
keyed by version and image pixels), so the next gate asks only the new version: the
current one answered the same labelled images when it was gated itself.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from defectkit.core.files import write_atomic
from defectkit.errors import DefectkitError
from defectkit.exporters.answers import AnswerStore
from defectkit.exporters.bundle import read_manifest
from defectkit.exporters.gate import GateReport

CURRENT = "current"
VERSIONS = "versions"
HISTORY = "history.jsonl"
ENTRY = "entry.json"
ANSWERS = "answers.sqlite"


class RegistryError(DefectkitError):
    """A registry operation that cannot be done (unknown version, gate missing or failed)."""


@dataclass
class Acceptance:
    """An engineer's explicit acceptance of a gate's blocking flips."""

    by: str
    note: str
    at: float
    flips: int


@dataclass
class Entry:
    """One version in the registry (``versions/<id>/entry.json``)."""

    id: str
    added: float
    parent: str | None
    support_sha256: str
    source: str
    gate: dict[str, Any] | None = None  # summary of the last gate run: against, passed, counts
    accepted: Acceptance | None = None
    promoted: list[float] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        data = dict(data)
        if data.get("accepted"):
            data["accepted"] = Acceptance(**data["accepted"])
        return cls(**data)


def support_sha256(manifest: dict[str, Any]) -> str:
    """SHA-256 of the support set a bundle was fitted from (its summary and shots, as the
    manifest records them): two versions with the same hash saw the same labelled shots."""
    body = {"support": manifest.get("support"), "shots": manifest.get("shots")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Registry:
    """Operations on one registry folder (created on first ``add``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # -- reading ---------------------------------------------------------------------

    def current_id(self) -> str | None:
        link = self.root / CURRENT
        if not link.is_symlink():
            return None
        return Path(os.readlink(link)).parent.name

    def entries(self) -> list[Entry]:
        """Every version, oldest first."""
        folder = self.root / VERSIONS
        if not folder.is_dir():
            return []
        found = [self._read_entry(p.name) for p in folder.iterdir() if (p / ENTRY).is_file()]
        return sorted(found, key=lambda e: e.added)

    def entry(self, version: str) -> Entry:
        matches = [e for e in self.entries() if e.id.startswith(version)] if version else []
        if len(matches) != 1:
            known = ", ".join(e.id for e in self.entries()) or "none"
            what = "no" if not matches else "more than one"
            raise RegistryError(f"{self.root}: {what} version matches {version!r} (known: {known})")
        return matches[0]

    def bundle_path(self, version: str) -> Path:
        return self.root / VERSIONS / self.entry(version).id / "bundle"

    def gate_dir(self, version: str) -> Path:
        return self.root / VERSIONS / self.entry(version).id / "gate"

    def answers(self) -> AnswerStore:
        """The versions' kept answers (opened, created on first use; close it when done)."""
        return AnswerStore(self.root / ANSWERS)

    def history(self) -> list[dict[str, Any]]:
        path = self.root / HISTORY
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    # -- changing --------------------------------------------------------------------

    def add(self, bundle: str | Path, *, parent: str | None = None) -> Entry:
        """Copy a verified bundle in as a new version; its parent defaults to ``current``."""
        bundle = Path(bundle)
        manifest = read_manifest(bundle)  # refuses tampered or partial bundles
        version = str(manifest["manifest_sha256"])[:12]
        target = self.root / VERSIONS / version
        if target.exists():
            raise RegistryError(f"{self.root}: version {version} is already registered")
        parent_id = self.entry(parent).id if parent else self.current_id()
        staging = target.with_name(version + ".adding")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(bundle, staging / "bundle")
        entry = Entry(
            id=version, added=time.time(), parent=parent_id, support_sha256=support_sha256(manifest),
            source=str(bundle.resolve()), metrics=dict(manifest.get("selfcheck") or {}),
        )  # fmt: skip
        _write_entry(staging, entry)
        staging.rename(target)
        return entry

    def record_gate(self, version: str, report: GateReport) -> Entry:
        """Keep the gate's summary in the version's entry (the report sits in its gate/)."""
        entry = self.entry(version)
        effects = [f.effect for f in report.flips]
        entry.gate = {
            "against": report.old_bundle, "passed": report.passed, "images": report.images,
            "blocking": len(report.blockers), "seconds": report.seconds,
            **{e: effects.count(e) for e in ("regression", "fix", "change", "miss")},
        }  # fmt: skip
        entry.accepted = None  # a new gate run needs a new acceptance
        entry.metrics.update({"gate_images": report.images, "gate_flips": len(report.flips)})
        _write_entry(self.root / VERSIONS / entry.id, entry)
        return entry

    def promote(self, version: str, *, accept: str | None = None) -> Entry:
        """Make ``version`` current, if its gate against the current version passed or
        ``accept`` (the engineer's note) accepts its blocking flips."""
        entry = self.entry(version)
        serving = self.current_id()
        if entry.id == serving:
            raise RegistryError(f"version {entry.id} is already current")
        gate = entry.gate
        if gate is None:
            raise RegistryError(
                f"version {entry.id} has no gate report; run `inspect bundles gate "
                f"{self.root} {entry.id} --images LABELLED_DIR` first"
            )
        if gate["against"] != serving:
            raise RegistryError(
                f"version {entry.id} was gated against {gate['against'] or 'the labels only'}, "
                f"but {serving or 'nothing'} is current now; run the gate again"
            )
        if not gate["passed"]:
            if not accept:
                raise RegistryError(
                    f"version {entry.id}: the gate lists {gate['blocking']} blocking flip(s) "
                    f"(see {self.gate_dir(entry.id) / 'index.html'}); fix them, or promote "
                    "with --accept 'why these flips are fine'"
                )
            entry.accepted = Acceptance(_user(), accept, time.time(), gate["blocking"])
        entry.promoted.append(time.time())
        _write_entry(self.root / VERSIONS / entry.id, entry)
        self._switch(entry.id)
        self._log("promote", entry.id, serving, note=accept)
        return entry

    def rollback(self, to: str | None = None) -> Entry:
        """Make the current version's parent (or ``to``) current again; no gate needed."""
        serving = self.current_id()
        if serving is None:
            raise RegistryError(f"{self.root}: nothing is current, nothing to roll back")
        target = to or self.entry(serving).parent
        if target is None:
            raise RegistryError(
                f"version {serving} has no parent to roll back to; name one with --to"
            )
        entry = self.entry(target)
        if entry.id == serving:
            raise RegistryError(f"version {entry.id} is already current")
        self._switch(entry.id)
        self._log("rollback", entry.id, serving)
        return entry

    # -- internals -------------------------------------------------------------------

    def _switch(self, version: str) -> None:
        link = self.root / CURRENT
        temporary = self.root / f".{CURRENT}.{os.getpid()}"
        if temporary.is_symlink() or temporary.exists():
            temporary.unlink()
        os.symlink(Path(VERSIONS) / version / "bundle", temporary)
        os.replace(temporary, link)  # atomic: a reader resolves the old or the new target

    def _log(self, action: str, version: str, previous: str | None, note: str | None = None):
        line = {"action": action, "version": version, "previous": previous, "at": time.time(),
                "by": _user(), "note": note}  # fmt: skip
        with open(self.root / HISTORY, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    def _read_entry(self, version: str) -> Entry:
        path = self.root / VERSIONS / version / ENTRY
        try:
            return Entry.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise RegistryError(f"{path}: unreadable ({exc})") from None


def _write_entry(folder: Path, entry: Entry) -> None:
    write_atomic(folder / ENTRY, (json.dumps(asdict(entry), indent=1) + "\n").encode())


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
