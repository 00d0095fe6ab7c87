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
