"""The review queue's second opinion in the app: the heavy model named once, kept loaded.

The Review tab names a heavy model (a model folder or a bundle); this module loads it
once per process (again only when its files change), runs it on the parts shown -
each part once per model, cached in the project's ``second_opinion.db`` - and puts
the parts where it disagrees with the line first. No Gradio here.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from defectkit.apps.labelling.project import Project
from defectkit.apps.reviewqueue.items import ReviewItem
from defectkit.apps.reviewqueue.opinion_cache import OpinionCache
from defectkit.apps.reviewqueue.opinion_report import picture
from defectkit.apps.reviewqueue.opinions import SecondOpinion
from defectkit.apps.reviewqueue.second_opinion import (
    HeavyModel,
    load_heavy_model,
    second_opinion,
)
from defectkit.core.images import read_image

CACHE_FILE = "second_opinion.db"
_loaded: dict[str, tuple[tuple, HeavyModel]] = {}
_lock = threading.Lock()


def heavy_model(path: str | None) -> HeavyModel | None:
    """The heavy model at ``path`` (None when none is named), loaded once per version."""
    if not (path or "").strip():
        return None
    folder = Path(path.strip()).expanduser()
    stamp = _stamp(folder)
    with _lock:
        found = _loaded.get(str(folder))
        if found is None or found[0] != stamp:
            found = (stamp, load_heavy_model(folder))
            _loaded[str(folder)] = found
        return found[1]


def _stamp(folder: Path) -> tuple:
    """The folder's files and their times: a refit or re-export changes it."""
    if not folder.is_dir():
        return ()
    return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file()))


def opinions(
    project: Project, heavy: HeavyModel, items: list[ReviewItem]
) -> dict[str, SecondOpinion]:
    """Both opinions of each part (with its image), by SHA-256."""
    cache = OpinionCache(project.root / CACHE_FILE)
    try:
        return {item.sha256: second_opinion(item, heavy, cache) for item in items}
    finally:
        cache.close()


def disagreeing_first(items: list[ReviewItem], pairs: dict[str, SecondOpinion]) -> list[ReviewItem]:
    """``items`` (least certain first) with the parts the heavy model disputes moved ahead."""
    return sorted(items, key=lambda i: not (i.sha256 in pairs and pairs[i.sha256].disagrees))


def heavy_picture(pair: SecondOpinion) -> np.ndarray:
    """The part with the heavy model's defect region tinted."""
    return picture(read_image(pair.item.image), pair.heavy.mask_png)


def markdown(pair: SecondOpinion) -> str:
    """The two opinions, one line each, and whether they agree."""
    said = (
        f"**The models disagree: {pair.disagreement}**" if pair.disagrees
        else "The models agree."
    )  # fmt: skip
    caption = f"  \n_{pair.heavy.caption}_" if pair.heavy.caption else ""
    return (
        f"{said}  \nLine bundle {pair.line.model}: {pair.line.describe()}"
        f"  \nHeavy model {pair.heavy.model}: {pair.heavy.describe()}{caption}"
    )
