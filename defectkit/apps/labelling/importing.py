"""Bringing images into a project: browser uploads and folders on the server's disk.

One bad file never stops an import: each file is added or reported (not an image,
unreadable, a duplicate) and the engineer gets one message saying which. A folder in
the dataset layout (``good/``, ``<defect>/``, ``masks/``, ``notes.json``) comes in with
its labels, masks and notes, so shots labelled elsewhere are not labelled twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from defectkit.apps.labelling.project import Project
from defectkit.apps.labelling.records import ImportReport, ProjectError
from defectkit.core.images import IMAGE_SUFFIXES, is_image_file
from defectkit.core.labels import GOOD
from defectkit.errors import ImageError


def add_files(project: Project, paths: Iterable[str | Path]) -> ImportReport:
    """Add uploaded files; unreadable ones are reported, the others still added."""
    report = ImportReport()
    for path in paths:
        path = Path(path)
        try:
            record, added = project.add_image(path.read_bytes(), path.name)
        except OSError as exc:
            report.errors.append(f"{path.name}: cannot read the file ({exc.strerror})")
            continue
        except ImageError as exc:
            message = str(exc)
            if not is_image_file(path):
                message = f"{path.name}: not an image ({', '.join(IMAGE_SUFFIXES)} are)"
            report.errors.append(message)
            continue
        if added:
            report.added.append(record)
        else:
            report.duplicates.append(f"{path.name} (as {record.name})")
    return report


def add_folder(project: Project, folder: str | Path) -> ImportReport:
    """Import a folder: a labelled dataset keeps its labels, masks and notes; any other
    folder's images (subfolders included, hidden ones not) come in unlabelled.

    Raises:
        ProjectError: no such folder, the project's own folder, or no images at all.
        DatasetError: a dataset folder whose masks or notes name missing images.
    """
    if folder is None or not str(folder).strip():
        raise ProjectError("type the path of a folder of images on this machine")
    folder = Path(str(folder).strip()).expanduser()
    if not folder.is_dir():
        raise ProjectError(f"{folder}: no such folder on this machine")
    folder = folder.resolve()
    if folder == project.root or project.root in folder.parents:
        raise ProjectError(f"{folder} is inside this project; choose a folder of new images")
    if (folder / GOOD).is_dir():
        return _add_dataset(project, folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not _hidden(p, folder))
    images = [p for p in files if is_image_file(p)]
    if not images:
        raise ProjectError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) found")
    report = add_files(project, images)
    report.skipped = [p.name for p in files if not is_image_file(p)]
    return report


def _add_dataset(project: Project, folder: Path) -> ImportReport:
    from defectkit.datasets.folder import load_folder

    report = ImportReport()
    for sample in load_folder(folder):
        try:
            record, added = project.add_image(sample.path.read_bytes(), sample.path.name)
            if not added:
                report.duplicates.append(f"{sample.path.name} (as {record.name})")
                continue
            if sample.label != GOOD and sample.label not in project.classes:
                project.add_class(sample.label)
            record = project.annotate(
                record.id, label=sample.label, note=sample.note or "", mask=sample.load_mask()
            )
            report.added.append(record)
        except ImageError as exc:
            report.errors.append(str(exc))
    return report


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)
