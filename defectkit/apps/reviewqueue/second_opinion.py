"""A second opinion before a person looks: queued parts re-inspected by a heavier model.

The line runs a small bundle at line speed; in the lab a heavier configuration of the
same project (more shots, the unlabelled images, a finer ``--scale``, a bigger
backbone where one is installed) can afford seconds per part. It is named once - a
model folder from ``inspect fit`` or an exported bundle - and runs on every queued
part, once per part and model (:class:`~.opinion_cache.OpinionCache`). Where the two
models disagree the reviewer is told, and those parts come first.

Only public calls are used: ``Inspector.load`` / ``load_bundle`` and their
``inspect``, and the review sources' ``list`` / ``fetch``. Torch is imported only when
a model folder is loaded, so this module stays importable beside the daemon.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defectkit.apps.reviewqueue.items import ReviewItem
from defectkit.apps.reviewqueue.opinion_cache import OpinionCache
from defectkit.apps.reviewqueue.opinions import Opinion, SecondOpinion, disagreements_first
from defectkit.apps.reviewqueue.sources import ReviewSource
from defectkit.core.images import read_image
from defectkit.errors import DefectkitError

#: Most parts one run re-inspects (the daemon's store keeps --review-keep, 1000 by default).
PART_LIMIT = 200
#: Files whose bytes define a model folder (``inspect fit -o``): its id hashes them.
MODEL_FILES = ("config.json", "heads.safetensors")


class SecondOpinionError(DefectkitError):
    """The heavy model cannot give a second opinion (missing, unreadable, wrong kind)."""


@dataclass
class HeavyModel:
    """A loaded heavy model: ``inspect(images, paths)`` as the Inspector and bundles answer.

    Attributes:
        id: what the cache keys on (a bundle's id, or a hash of a model folder's files).
        has_verdict: False for a type-only model (fitted without good shots).
    """

    path: Path
    id: str
    model: Any
    has_verdict: bool

    def inspect(self, image) -> Any:
        return self.model.inspect([image], [None])[0]


def load_heavy_model(path: str | Path) -> HeavyModel:
    """A model folder (``inspect fit -o``) or an exported bundle (``manifest.json``).

    Raises:
        SecondOpinionError: no such folder, or a folder that is neither.
        ModelFormatError / BundleError: the loaders' own errors (wrong weights, tampered).
    """
    path = Path(str(path).strip()).expanduser()
    if not str(path) or not path.is_dir():
        raise SecondOpinionError(
            f"heavy model {path}: no such folder; fit one with `inspect fit DATA -o {path}` "
            "(more shots, --unlabelled, a finer --scale or a bigger --backbone than the line's)"
        )
    if (path / "manifest.json").is_file():
        from defectkit.exporters.runtime import load_bundle

        bundle = load_bundle(path)
        return HeavyModel(path, bundle.id, bundle, bundle.predictor.info.has_verdict)
    if not all((path / name).is_file() for name in MODEL_FILES):
        raise SecondOpinionError(
            f"heavy model {path}: not a model folder (no {' and '.join(MODEL_FILES)}) nor a "
            "bundle (no manifest.json); give the folder `inspect fit -o` wrote"
        )
    from defectkit.inspect.inspector import Inspector

    inspector = Inspector.load(path)
    return HeavyModel(path, _folder_id(path), inspector, inspector.predictor.info.has_verdict)


def second_opinion(
    item: ReviewItem, heavy: HeavyModel, cache: OpinionCache | None = None
) -> SecondOpinion:
    """The heavy model's opinion of one part (``item`` with its image), beside the line's.

    Raises:
        SecondOpinionError: a type-only heavy model asked about a part the line judged
            good or defect (it cannot second a verdict).
    """
    line = Opinion.of_line(item)
    if item.model_verdict is not None and not heavy.has_verdict:
        raise SecondOpinionError(
            f"heavy model {heavy.path} is type-only (fitted without good shots) and cannot "
            f"second the line's verdict on {item.name or item.sha256[:12]}; fit it with good "
            "shots too"
        )
    found = cache.get(item.sha256, heavy.id) if cache is not None else None
    if found is not None:
        return SecondOpinion(item, line, found, cached=True)
    if item.image is None:
        raise SecondOpinionError(f"part {item.name or item.sha256[:12]}: its image was not fetched")
    opinion = Opinion.of_result(heavy.id, heavy.inspect(read_image(item.image)))
    if cache is not None:
        cache.put(item.sha256, heavy.id, opinion)
    return SecondOpinion(item, line, opinion)


def second_opinions(
    source: ReviewSource,
    heavy: HeavyModel,
    cache: OpinionCache | None = None,
    *,
    limit: int = PART_LIMIT,
    progress: Callable[[int, int], None] | None = None,
) -> list[SecondOpinion]:
    """Both opinions of every queued part, disagreements first.

    Parts evicted between the listing and the fetch are skipped (the line moved on).
    """
    items = source.list(limit=limit)
    pairs = []
    for done, listed in enumerate(items, start=1):
        item = source.fetch(listed)
        if item is not None:
            pairs.append(second_opinion(item, heavy, cache))
        if progress is not None:
            progress(done, len(items))
    return disagreements_first(pairs)


def _folder_id(path: Path) -> str:
    """12 hex digits of the hash of the model folder's files: a refit gets a new id."""
    digest = hashlib.sha256()
    for name in MODEL_FILES:
        with open(path / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]
