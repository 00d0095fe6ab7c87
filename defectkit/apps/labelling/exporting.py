"""Export a project's fitted inspector as a bundle folder and a zip for the browser.

This is also the one place the app touches the exporter, so an API move costs one
edit: its entry point ``export_bundle(inspector, out_dir, *, target, precision,
check_images)`` lives in :mod:`defectkit.exporters.export` today (the package
``__init__`` imports nothing, so the factory-side runtime stays torch-free). A missing
export engine becomes a message instead of an ImportError traceback in the page.
"""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path

from defectkit.apps.labelling.records import safe_stem
from defectkit.core.files import atomic_file
from defectkit.errors import BundleError

#: Labelled images the export's self-check runs on (it adds flipped and noised copies).
CHECK_IMAGES = 8
_MODULES = ("defectkit.exporters.export", "defectkit.exporters", "defectkit.exporters.bundle")


def find_exporter():
    """The exporter's ``export_bundle``, wherever this defectkit keeps it."""
    for module in _MODULES:
        try:
            found = getattr(importlib.import_module(module), "export_bundle", None)
        except ImportError as exc:
            missing = getattr(exc, "name", None) or str(exc)
            if missing and not missing.startswith("defectkit"):
                raise BundleError(
                    f"exporting needs {missing}, which is not installed: "
                    "pip install 'defectkit[export]'"
                ) from None
            continue
        if found is not None:
            return found
    raise BundleError("this defectkit has no exporter (defectkit.exporters.export_bundle)")


def export_project(project, target: str, precision: str = "fp32") -> Path:
    """Export the fitted inspector as a self-checked bundle; returns the bundle's zip.

    The bundle folder is ``exports/<target>-<precision>/`` and its zip (one top folder
    named after the project) lies beside it; both replace an older export with the same
    settings, each atomically. The self-check runs on labelled images of the project.

    Raises:
        NotFittedError: nothing fitted yet.
        BundleError / ConfigError: the exporter's errors (a failed self-check, a bad target).
    """
    inspector = project.load_inspector()  # first: "fit first" beats "no exporter"
    export_bundle = find_exporter()
    check = [project.load_image(r.id) for r in project.labelled()[:CHECK_IMAGES]]
    name = f"{target}-{precision}"
    folder = project.root / "exports" / name
    export_bundle(inspector, folder, target=target, precision=precision, check_images=check)
    archive = project.root / "exports" / f"{name}.zip"
    with atomic_file(archive) as tmp:
        zip_folder(folder, tmp, top=f"{safe_stem(project.name)}-{name}")
    return archive


def list_exports(project) -> list[Path]:
    """Zips of earlier exports of ``project``, newest first."""
    folder = project.root / "exports"
    zips = folder.glob("*.zip") if folder.is_dir() else []
    return sorted(zips, key=lambda p: p.stat().st_mtime, reverse=True)


def zip_folder(folder: Path, out: Path, *, top: str) -> None:
    """Zip the folder's files under one top folder, so unzipping gives one bundle folder.

    Written to a file, not memory: a ViT-L bundle is over a gigabyte. Level 1 because
    float weights barely compress and a QC engineer is waiting for the download.
    """
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(file, f"{top}/{file.relative_to(folder).as_posix()}")
