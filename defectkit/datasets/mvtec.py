"""MVTec AD, read in place from its published layout (no copying, no download).

::

    ROOT/<category>/train/good/*.png
    ROOT/<category>/test/good/*.png
    ROOT/<category>/test/<defect>/*.png
    ROOT/<category>/ground_truth/<defect>/<stem>_mask.png

``ROOT`` may also be one category folder (it holds ``train/`` or ``test/``). Defect
images without a ground-truth file get no mask rather than an error, as anomalib does:
some re-distributions drop the masks, and image-level metrics still work.
"""

from __future__ import annotations

from pathlib import Path

from defectkit.core.images import is_image_file
from defectkit.core.labels import GOOD
from defectkit.datasets.base import Sample, check_split
from defectkit.errors import DatasetError

LAYOUT = "ROOT/<category>/{train,test}/<good|defect>/*.png"


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _is_category(folder: Path) -> bool:
    return (folder / "train").is_dir() or (folder / "test").is_dir()


def _categories(root: Path, category: str | None) -> list[Path]:
    if category is None:
        if _is_category(root):
            return [root]
        found = [p for p in _subdirs(root) if _is_category(p)]
        if not found:
            raise DatasetError(f"{root}: no MVTec AD categories found; expected {LAYOUT}")
        return found
    folder = root / category
    if not _is_category(folder):
        known = ", ".join(p.name for p in _subdirs(root) if _is_category(p)) or "none"
        raise DatasetError(
            f"{root}: no MVTec AD category {category!r} (with train/ or test/); "
            f"categories here: {known}"
        )
    return [folder]


def _category_samples(folder: Path, split: str) -> list[Sample]:
    split_dir = folder / split
    if not split_dir.is_dir():
        return []
    samples = []
    for class_dir in _subdirs(split_dir):
        label = class_dir.name
        images = sorted(
            p
            for p in class_dir.iterdir()
            if p.is_file() and not p.name.startswith(".") and is_image_file(p)
        )
        for image in images:
            mask = folder / "ground_truth" / label / f"{image.stem}_mask.png"
            samples.append(
                Sample(
                    label=label,
                    path=image,
                    mask_path=mask if label != GOOD and mask.is_file() else None,
                    meta={
                        "id": f"{folder.name}/{split}/{label}/{image.name}",
                        "category": folder.name,
                        "split": split,
                    },
                )
            )
    return samples


def load_mvtec(
    root: str | Path, *, category: str | None = None, split: str | None = None
) -> list[Sample]:
    """List MVTec AD samples (images are read lazily).

    Args:
        root: the MVTec AD folder, or one category folder.
        category: e.g. ``"bottle"``; ``None`` for every category, sorted.
        split: ``"train"``, ``"test"`` or ``None`` for both (train first).

    Returns:
        Samples by category, split, class folder (sorted) and file; labels are the class
        folder names (``"good"``, ``"broken_large"``, ...); ``meta`` holds ``id``,
        ``category`` and ``split``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder; expected {LAYOUT}")
    splits = check_split(split)
    samples = [
        sample
        for folder in _categories(root, category)
        for name in splits
        for sample in _category_samples(folder, name)
    ]
    if not samples:
        which = f"split {split!r}" if split else "train/ or test/"
        raise DatasetError(f"{root}: no images in {which}; expected {LAYOUT}")
    return samples
