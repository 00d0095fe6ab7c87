"""Helpers for the labelling app's tests: synthetic image files, labelled projects.

The synthetic images have known defects (``make_synthetic``), so a fitted project can
be checked against the truth. Fits use a small configuration of the real embedded
backbone (one augmentation, a small memory bank) to stay at a few seconds on 2 cores.
In the package (not a conftest) so test files and the browser test import it by name.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from defectkit.apps.labelling.project import Project

SHOTS = {
    "good_000": "good",
    "good_001": "good",
    "scratch_000": "scratch",
    "scratch_001": "scratch",
    "spot_000": "spot",
    "spot_001": "spot",
}


def write_synthetic(folder: Path, size: int = 96) -> dict[str, Path]:
    """good_000..002, scratch_000..002, spot_000..002 as PNG files -> {key: path}."""
    from defectkit.datasets import make_synthetic

    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    samples = make_synthetic(n_good=3, defects={"scratch": 3, "spot": 3}, size=(size, size), seed=0)
    for sample in samples:
        path = folder / f"{sample.key}.png"
        Image.fromarray(sample.load_image()).save(path)
        files[sample.key] = path
    return files


def truth_masks(size: int = 96) -> dict[str, object]:
    from defectkit.datasets import make_synthetic

    samples = make_synthetic(n_good=3, defects={"scratch": 3, "spot": 3}, size=(size, size), seed=0)
    return {s.key: s.mask_array for s in samples}


def label_shots(project: Project, files: dict[str, Path]) -> dict[str, str]:
    """Import ``files``, create the classes and label two shots per class -> {key: id}."""
    from defectkit.apps.labelling.importing import add_files

    add_files(project, files.values())
    for name in ("scratch", "spot"):
        if name not in project.classes:
            project.add_class(name)
    ids = {Path(r.name).stem: r.id for r in project.images}
    for key, label in SHOTS.items():
        project.set_label(ids[key], label)
    return ids


def fast_config():
    from defectkit.inspect.config import InspectorConfig

    return InspectorConfig(augmentations=1, bank_size=256, seed=0)


#: Spindle photographs of the issue that found the app's faults: 1130 x 460 RGB.
SPINDLE_SIZE = (460, 1130)
#: Colours of the end marks :func:`mark_ends` paints, so a test can see both ends.
FIRST_END, LAST_END = (230, 20, 20), (20, 20, 230)


def mark_ends(image, fraction: float = 0.04):
    """Paint the long axis's first end red and its last end blue (a copy).

    A thumbnail that shows the whole image shows both colours; one cropped to a
    square (the middle of a 1130 x 460 image) shows neither.
    """
    import numpy as np

    out = np.array(image, copy=True)
    h, w = out.shape[:2]
    if w >= h:
        band = max(2, int(w * fraction))
        out[:, :band], out[:, w - band :] = FIRST_END, LAST_END
    else:
        band = max(2, int(h * fraction))
        out[:band], out[h - band :] = FIRST_END, LAST_END
    return out


def write_spindles(
    folder: Path,
    *,
    n_good: int,
    n_pitting: int,
    size: tuple[int, int] = SPINDLE_SIZE,
    seed: int = 0,
) -> dict[str, Path]:
    """Spindle-sized metal images with end marks: good_000.., pitting_000.. -> {key: path}.

    The pits are the synthetic ``spot`` defect on the ``metal`` texture, relabelled.
    """
    from defectkit.datasets import make_synthetic

    folder.mkdir(parents=True, exist_ok=True)
    samples = make_synthetic(
        n_good=n_good, defects={"spot": n_pitting}, size=size, seed=seed, texture="metal"
    )
    files = {}
    for sample in samples:
        key = sample.key.replace("spot", "pitting")
        path = folder / f"{key}.png"
        Image.fromarray(mark_ends(sample.load_image())).save(path)
        files[key] = path
    return files


def write_large(path: Path, size: tuple[int, int] = (4000, 6000), seed: int = 0) -> Path:
    """A large photograph-like JPEG (default 6000 x 4000), made by scaling a small one up."""
    from defectkit.datasets import make_synthetic

    (sample,) = make_synthetic(
        n_good=1, size=(size[0] // 8, size[1] // 8), seed=seed, texture="metal"
    )
    small = Image.fromarray(mark_ends(sample.load_image()))
    path.parent.mkdir(parents=True, exist_ok=True)
    small.resize((size[1], size[0]), Image.BILINEAR).save(path, quality=90)
    return path
