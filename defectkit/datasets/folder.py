"""The folder layout: one folder per class, the format the app writes and engineers copy.

::

    ROOT/good/*.png                      defect-free images
    ROOT/<defect>/*.png                  one folder per defect class
    ROOT/masks/<defect>/<stem>.png       optional mask, same stem as its image, any image suffix
    ROOT/notes.json                      optional {"scratch/img3.png": "note text", ...}
    ROOT/meta.json                       optional {"scratch/img3.png": {...}, ...} (ground truth)
    ROOT/unlabelled/*.png                optional line images of unknown class, mostly good
                                         (not samples: see :func:`unlabelled_files`)

Class folders and files are sorted, so a dataset lists identically on every machine.
Hidden files and non-image files are ignored (``Thumbs.db``, ``.DS_Store``, ``README``).
A ``notes.json`` / ``meta.json`` / mask that names a missing image is an error, not
ignored: it almost always means an image was renamed and its annotation is now lost.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from defectkit.core.images import is_image_file
from defectkit.datasets.base import Sample
from defectkit.errors import DatasetError

MASKS = "masks"
UNLABELLED = "unlabelled"
NOTES = "notes.json"
META = "meta.json"
LAYOUT = "ROOT/good/*.png, ROOT/<defect>/*.png, optional ROOT/masks/<defect>/"


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and _visible(p) and is_image_file(p))


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot parse {what} ({exc}); fix or delete the file") from None
    if not isinstance(data, dict):
        raise DatasetError(f'{path}: {what} must be an object {{"class/file.png": ...}}')
    return data


def _mask_index(root: Path, labels: set[str]) -> dict[tuple[str, str], Path]:
    """(label, image stem) -> mask file, from ``ROOT/masks/<label>/``."""
    index: dict[tuple[str, str], Path] = {}
    masks = root / MASKS
    if not masks.is_dir():
        return index
    for folder in sorted(p for p in masks.iterdir() if p.is_dir() and _visible(p)):
        if folder.name not in labels:
            raise DatasetError(
                f"{folder}: masks for class {folder.name!r}, which has no folder "
                f"{root / folder.name}; rename or remove it"
            )
        for mask in _images_in(folder):
            key = (folder.name, mask.stem)
            if key in index:
                raise DatasetError(
                    f"{mask}: two masks for {folder.name}/{mask.stem} ({index[key].name} too); "
                    "keep one"
                )
            index[key] = mask
    return index


def _untuple(value: Any) -> Any:
    """JSON arrays -> tuples, so a reloaded ``meta`` equals the one that was written."""
    if isinstance(value, list):
        return tuple(_untuple(v) for v in value)
    if isinstance(value, dict):
        return {k: _untuple(v) for k, v in value.items()}
    return value


def load_folder(root: str | Path) -> list[Sample]:
    """List a folder-layout dataset as samples (images are read lazily).

    Args:
        root: the dataset folder (see the module docstring for the layout).

    Returns:
        Samples in class-folder order then file order; ``meta["id"]`` is the path relative
        to ``root`` (``"scratch/img3.png"``), the key ``notes.json`` uses.

    Raises:
        DatasetError: missing folder, no images, a bad ``notes.json``/``meta.json``, or a
            mask/note naming an image that does not exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder; expected {LAYOUT}")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and _visible(p) and p.name not in (MASKS, UNLABELLED))
    files = [(folder.name, image) for folder in classes for image in _images_in(folder)]
    if not files and unlabelled_files(root):
        return []  # unlabelled images only: a fit can still learn what is normal from them
    if not files:
        stray = len(_images_in(root))
        hint = (
            f" ({stray} images lie directly in ROOT: move them into class folders)" if stray else ""
        )
        raise DatasetError(f"{root}: no images found; expected {LAYOUT}{hint}")
    masks = _mask_index(root, {folder.name for folder in classes})
    notes = _read_json(root / NOTES, "notes") if (root / NOTES).is_file() else {}
    metas = _read_json(root / META, "meta") if (root / META).is_file() else {}
    ids = {f"{label}/{image.name}" for label, image in files}
    stems = {(label, image.stem) for label, image in files}
    for name, table in ((NOTES, notes), (META, metas)):
        missing = sorted(set(table) - ids)
        if missing:
            raise DatasetError(
                f"{root / name} names {len(missing)} missing image(s), e.g. {missing[0]!r}; "
                "keys are paths relative to ROOT such as 'scratch/img3.png'"
            )
    orphans = sorted(set(masks) - stems)
    if orphans:
        raise DatasetError(
            f"{masks[orphans[0]]}: mask without an image of the same stem in "
            f"{root / orphans[0][0]}; rename or remove it"
        )
    samples = []
    for label, image in files:
        key = f"{label}/{image.name}"
        note = notes.get(key)
        if note is not None and not isinstance(note, str):
            raise DatasetError(f"{root / NOTES}: the note for {key!r} must be text")
        meta = metas.get(key, {})
        if not isinstance(meta, dict):
            raise DatasetError(f"{root / META}: the entry for {key!r} must be an object")
        samples.append(
            Sample(
                label=label,
                path=image,
                mask_path=masks.get((label, image.stem)),
                note=note,
                meta={**_untuple(meta), "id": key},
            )
        )
    return samples


def unlabelled_files(root: str | Path) -> list[Path]:
    """The images in ``ROOT/unlabelled/`` (sorted; none when the folder is absent)."""
    folder = Path(root) / UNLABELLED
    return _images_in(folder) if folder.is_dir() else []


# --- writing ----------------------------------------------------------------------------


def _check_label(label: str) -> None:
    bad = label in (".", "..", MASKS, UNLABELLED) or label.startswith(".") or any(c in label for c in "/\\:")
    if bad:
        raise DatasetError(f"class name {label!r} cannot be a folder name; rename the class")


def _file_name(sample: Sample, taken: set[str]) -> str:
    """A file name unique (by stem, case-insensitively) within the sample's class folder.

    Stems must be unique because masks are matched to images by stem. Files keep their
    own name when they can; clashes (MVTec's ``train/good/000.png`` and ``test/good/000.png``)
    fall back to the flattened id, then to a counter.
    """
    suffix = sample.path.suffix.lower() if sample.path is not None else ".png"
    flat = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(sample.key.replace("/", "_")).stem).strip("_")
    flat = flat or "image"
    first = sample.path.stem if sample.path is not None else flat
    candidates = [first, flat] + [f"{flat}_{i}" for i in range(1, len(taken) + 2)]
    for stem in candidates:
        if stem.lower() not in taken:
            taken.add(stem.lower())
            return stem + suffix
    raise AssertionError("unreachable: the counter always finds a free name")


def _jsonable(value: Any, where: str) -> Any:
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, where) for k, v in value.items()}
    raise DatasetError(f"{where}: meta value of type {type(value).__name__} is not JSON-able")


def write_folder(samples: Iterable[Sample], root: str | Path) -> Path:
    """Write samples in the folder layout, so :func:`load_folder` reads them back.

    Image files are copied byte for byte (no re-encoding: a JPEG stays the same JPEG);
    in-memory images and every mask are written as PNG (lossless: a JPEG mask would
    grow a grey fringe). Notes go to ``notes.json`` and ``meta`` (minus ``id``, which
    becomes the new relative path) to ``meta.json``.

    Args:
        samples: what to write; labels become folder names.
        root: a folder that does not exist yet or is empty (we never mix two datasets).

    Returns:
        ``root``, so ``load_folder(write_folder(samples, tmp))`` round-trips.
    """
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DatasetError(f"{root}: exists and is not an empty folder; choose a new folder")
    samples = list(samples)
    if not samples:
        raise DatasetError("nothing to write: the sample list is empty")
    for sample in samples:  # before writing anything: no half-written folder for a typo
        _check_label(sample.label)
    root.mkdir(parents=True, exist_ok=True)
    taken: dict[str, set[str]] = {}
    notes: dict[str, str] = {}
    metas: dict[str, Any] = {}
    for sample in samples:
        name = _file_name(sample, taken.setdefault(sample.label, set()))
        key = f"{sample.label}/{name}"
        (root / sample.label).mkdir(exist_ok=True)
        if sample.image_array is not None:
            Image.fromarray(sample.image_array).save(root / key)
        else:
            shutil.copyfile(sample.path, root / key)
        mask = sample.load_mask()
        if mask is not None:
            mask_file = root / MASKS / sample.label / (Path(name).stem + ".png")
            mask_file.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255).save(mask_file)
        if sample.note is not None:
            notes[key] = sample.note
        meta = {k: v for k, v in sample.meta.items() if k != "id"}
        if meta:
            metas[key] = _jsonable(meta, sample.key)
    for file_name, table in ((NOTES, notes), (META, metas)):
        if table:
            text = json.dumps(table, indent=2, ensure_ascii=False)
            (root / file_name).write_text(text + "\n", encoding="utf-8")
    return root
