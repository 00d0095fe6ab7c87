"""The plain records a project manifest is made of, and the rules for class names.

Torch-free and I/O-free so that they are trivially testable; :mod:`.project` owns the
files. Everything here round-trips through JSON (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from defectkit.core.labels import ANOMALY, GOOD
from defectkit.errors import DatasetError

#: Shots per class the app asks for ("scratch: 1 of 2"). Fitting works from one; two
#: give the leave-one-out calibration something to measure.
SHOTS_WANTED = 2
#: :attr:`FitRecord.mode` of a defect-sorting fit (the results' ``mode`` says the same).
TYPE_ONLY = "type_only"
#: Names a defect class cannot take: ``good`` is the normal class, ``masks`` is a folder
#: of the dataset layout, ``anomaly`` is what results call an unnamed defect, and
#: ``unlabelled`` is what the app shows for images without a label.
RESERVED = (GOOD, "masks", ANOMALY, "unlabelled")
_CLASS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


class ProjectError(DatasetError):
    """A project folder or an edit that cannot be used; the message says what to do."""


def check_class_name(name: str) -> str:
    """Return ``name`` stripped, or raise :class:`ProjectError` saying what is allowed.

    Why so strict: class names become folder names (dataset export), keys in bundle
    manifests and words in captions, on Windows factory PCs too.
    """
    name = (name or "").strip()
    if not name:
        raise ProjectError("type a class name first (e.g. scratch)")
    if name.lower() in RESERVED:
        raise ProjectError(f"{name!r} is reserved; choose another class name")
    if not _CLASS_NAME.match(name):
        raise ProjectError(
            f"class name {name!r} is not allowed: use 1-40 letters, digits, '-' or '_', "
            "starting with a letter or digit (e.g. scratch, missing_part)"
        )
    return name


def safe_stem(name: str, limit: int = 40) -> str:
    """A file-name-safe version of an uploaded file's stem (never empty)."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:limit]
    return stem or "image"


def _from_dict(cls, data: dict[str, Any]):
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class ImageRecord:
    """One image of the project.

    Attributes:
        id: unique, stable, file-name-safe (``<stem>-<8 hex of sha256>``).
        file: the image, relative to the project root (the uploaded bytes, unchanged).
        name: the file name it was uploaded or imported with, for display.
        sha256: of the image file; a second upload of the same bytes is a duplicate.
        width, height: pixels (masks must match).
        label: ``"good"``, a defect class, or None (unlabelled: reviewed, not a shot).
        note: what the engineer typed about it ("" for none).
        mask: the painted defect mask (PNG), relative to the root, or None.
        mask_sha256: of the mask file, so the fit fingerprint sees a repainted mask.
        added: ISO time of import.
    """

    id: str
    file: str
    name: str
    sha256: str
    width: int
    height: int
    label: str | None = None
    note: str = ""
    mask: str | None = None
    mask_sha256: str | None = None
    added: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageRecord:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class FitRecord:
    """What the last fit produced and measured; enough to redraw the threshold histogram.

    Attributes:
        id: names the model folder (``models/<id>``); a new fit gets a new folder, so a
            crash between saving the model and writing the manifest leaves the old pair
            consistent.
        fingerprint: of the labels, masks and notes the fit used (see
            :meth:`~defectkit.apps.labelling.project.Project.fingerprint`): when it
            differs from the current one, the fit is stale.
        good_scores: leave-one-out scores of the good shots.
        defect_scores: scores of the defect shots, per class.
        fitted_thresholds: ``{"image", "pixel", "min_defect_area"}`` as calibrated.
        threshold: the image threshold in use (moved with the slider; None = calibrated).
        mode: ``"inspect"`` (a good/defect verdict from the score) or ``"type_only"``
            (defect sorting: fitted without good shots or unlabelled images, the model
            names a type and gives no verdict, so there is no threshold to move).
        unlabelled_used: ids of the unlabelled images the fit learned from.
        unlabelled_rejected: of those, the ones the fit judged defects and kept out of
            its memory bank (the others widened "good" and calibrated the threshold).
        unlabelled_judged_by: who judged them (``FitReport.unlabelled_judged_by``:
            ``"labelled"``, ``"mutual"``, ``"mutual_fallback"`` or ``"unused"``; None
            without any).
        unlabelled_taught_classes: how many of them also taught the class head what good
            looks like (``FitReport.unlabelled_taught_classes``; 0 for a record from before).
        frame: the frame every image had and the fit left out (``Frame.describe()``:
            "1 px on the right and bottom edges"); None when there was none.
        features_extracted: images (augmented copies included) the backbone ran on.
        features_cached: images whose features came from the project's feature cache
            (an incremental refit: only new images are extracted).
    """

    id: str
    created: str
    backbone: str
    fingerprint: str
    classes: list[str]
    shots: dict[str, int]
    good_scores: list[float]
    defect_scores: dict[str, list[float]]
    fitted_thresholds: dict[str, float]
    threshold: float | None = None
    seconds: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)
    mode: str = "inspect"
    unlabelled_used: list[str] = field(default_factory=list)
    unlabelled_rejected: list[str] = field(default_factory=list)
    unlabelled_judged_by: str | None = None
    unlabelled_taught_classes: int = 0
    frame: str | None = None
    features_extracted: int = 0
    features_cached: int = 0

    @property
    def has_verdict(self) -> bool:
        """False for a type-only fit: no good/defect verdict exists, only types."""
        return self.mode != TYPE_ONLY

    @property
    def learned_as_good(self) -> set[str]:
        """Unlabelled images whose patches entered the bank: their own review scores
        are low by construction (each is compared with itself). None when the fit left
        them all out (``unlabelled_judged_by == "unused"``)."""
        if self.unlabelled_judged_by == "unused":
            return set()
        return set(self.unlabelled_used) - set(self.unlabelled_rejected)

    @property
    def model(self) -> str:
        """The model folder, relative to the project root."""
        return f"models/{self.id}"

    @property
    def image_threshold(self) -> float:
        return float(self.fitted_thresholds["image"] if self.threshold is None else self.threshold)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FitRecord:
        return _from_dict(cls, data)


@dataclass
class ImportReport:
    """What an upload or folder import did, in words a QC engineer can act on."""

    added: list[ImageRecord] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # not image files at all
    errors: list[str] = field(default_factory=list)  # image files that cannot be read

    def message(self) -> str:
        parts = [f"added {len(self.added)} image{'s' if len(self.added) != 1 else ''}"]
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} already in the project")
        if self.skipped:
            parts.append(
                f"skipped {len(self.skipped)} file(s) that are not images "
                f"({', '.join(self.skipped[:3])}{', ...' if len(self.skipped) > 3 else ''})"
            )
        text = "; ".join(parts)
        if self.errors:
            text += ". Could not read: " + "; ".join(self.errors)
        return text
