"""A labelling project: one folder on disk holding everything the app knows.

::

    PROJECT/project.json          the manifest: classes, images (label, note, mask), last fit
    PROJECT/images/<id>.<ext>     the uploaded bytes, unchanged
    PROJECT/thumbs/<id>.png       gallery thumbnails (derived; rebuilt when missing)
    PROJECT/display/<id>.png      display-sized copies of large images (derived; rebuilt when missing)
    PROJECT/masks/<id>.png        painted defect masks (0 / 255, the image's size)
    PROJECT/models/<fit id>/      the fitted inspector (defectkit.inspect.saved format)
    PROJECT/cache/features/       raw patch grids of the last fit's images (derived: a refit
                                  extracts only new images; deleting it costs one slower fit)
    PROJECT/exports/<target>-<precision>/ and .zip   exported bundles

Why one folder and one manifest: closing the browser or restarting the server must lose
nothing, and an engineer must be able to copy or back up a project as a folder. Every
write is atomic (:mod:`defectkit.core.files`) and files are written *before* the manifest that
names them, so a kill at any moment leaves a manifest that only names complete files.

A :class:`Project` is shared by every browser tab that opened it; a lock serialises
edits. Fitting runs outside that lock (labelling goes on while a fit runs) and records
the fingerprint of the labels it used, so a later edit marks the fit stale instead of
being silently ignored. Torch is imported only by :meth:`Project.fit` and
:meth:`Project.load_inspector`. Imports live in :mod:`.importing`, exports in
:mod:`.exporting`.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from defectkit.apps.labelling.display import DISPLAY_SIDE, shrink
from defectkit.apps.labelling.records import (
    GOOD,
    SHOTS_WANTED,
    TYPE_ONLY,
    FitRecord,
    ImageRecord,
    ProjectError,
    check_class_name,
    safe_stem,
)
from defectkit.apps.labelling.roi import with_project_roi
from defectkit.core.files import remove_temporaries, sha256_bytes, write_atomic
from defectkit.core.images import read_image, read_mask
from defectkit.core.results import Thresholds
from defectkit.datasets.base import Sample
from defectkit.errors import ImageError, NotFittedError, SupportSetError

MANIFEST = "project.json"
FORMAT = "defectkit-labelling-project"
FORMAT_VERSION = 1
THUMB_SIDE = 160
DEFAULT_BACKBONE = "efficientnet_lite0"
#: The project's feature cache (see :mod:`defectkit.inspect.feature_cache`).
FEATURE_CACHE = Path("cache") / "features"
#: Sentinel for "leave this field as it is" in :meth:`Project.annotate`.
KEEP: Any = object()
# Pillow format -> the suffix we store it under; other formats are re-encoded as PNG
# because the dataset loaders only list these suffixes.
_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, data: Any) -> None:
    """The manifest as indented UTF-8 JSON, written atomically."""
    write_atomic(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


class Project:
    """An on-disk labelling project. Open with :meth:`open`; all methods are thread-safe."""

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = Path(root)
        self._lock = threading.RLock()
        self._fit_lock = threading.Lock()
        self._created = manifest.get("created", _now())
        self._classes: list[str] = list(manifest.get("classes", []))
        self._images: dict[str, ImageRecord] = {
            d["id"]: ImageRecord.from_dict(d) for d in manifest.get("images", [])
        }
        fit = manifest.get("fit")
        self._fit: FitRecord | None = FitRecord.from_dict(fit) if fit else None
        self._settings: dict[str, Any] = dict(manifest.get("settings", {}))
        self._inspector: tuple[str, Any] | None = None  # (fit id, Inspector), loaded lazily
        self._feature_cache = None  # FeatureCache, made by the first fit (it imports torch)

    # ------------------------------------------------------------------ open / save
    @classmethod
    def open(cls, root: str | Path, *, create: bool = True) -> Project:
        """Open the project in ``root``, creating it when ``create`` and the folder is new or empty.

        Raises:
            ProjectError: the folder is a file, a non-empty folder that is not a project,
                or holds an unreadable / newer manifest.
        """
        root = Path(root).expanduser().resolve()
        path = root / MANIFEST
        if root.exists() and not root.is_dir():
            raise ProjectError(f"{root} is a file; give a folder for the project")
        if path.is_file():
            _clean_leftovers(root)
            return cls(root, _read_manifest(path))
        if not create:
            raise ProjectError(f"{root}: no project here ({MANIFEST} is missing)")
        if root.is_dir() and any(p for p in root.iterdir() if not p.name.startswith(".")):
            raise ProjectError(
                f"{root} is not empty and is not a labelling project; choose an empty or new "
                "folder (to import images from it, use 'Add folder' instead)"
            )
        project = cls(root, {"created": _now()})
        with project._lock:
            project._save()
        return project

    def _manifest(self, **changes: Any) -> dict[str, Any]:
        images = changes.get("images", self._images)
        fit = changes.get("fit", self._fit)
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": self._created,
            "classes": list(changes.get("classes", self._classes)),
            "settings": dict(changes.get("settings", self._settings)),
            "images": [record.to_dict() for record in images.values()],
            "fit": fit.to_dict() if fit else None,
        }

    def _save(self, **changes: Any) -> None:
        """Write the manifest with ``changes`` applied, then adopt them in memory.

        Memory changes only after the write succeeded, so a full disk leaves the page,
        the memory and the disk agreeing on the old state.
        """
        _write_json(self.root / MANIFEST, self._manifest(**changes))
        if "images" in changes:
            self._images = dict(changes["images"])
        if "classes" in changes:
            self._classes = list(changes["classes"])
        if "fit" in changes:
            self._fit = changes["fit"]
        if "settings" in changes:
            self._settings = dict(changes["settings"])

    # ------------------------------------------------------------------ queries
    @property
    def name(self) -> str:
        return self.root.name

    @property
    def classes(self) -> tuple[str, ...]:
        """Defect classes, in the order they were created (``good`` is implicit)."""
        with self._lock:
            return tuple(self._classes)

    @property
    def images(self) -> list[ImageRecord]:
        """Every image, in import order."""
        with self._lock:
            return list(self._images.values())

    @property
    def backbone(self) -> str:
        return str(self._settings.get("backbone", DEFAULT_BACKBONE))

    @property
    def fit_record(self) -> FitRecord | None:
        return self._fit

    def get(self, image_id: str) -> ImageRecord:
        with self._lock:
            if image_id not in self._images:
                raise ProjectError(f"no image {image_id!r} in this project (was it removed?)")
            return self._images[image_id]

    def labelled(self) -> list[ImageRecord]:
        return [r for r in self.images if r.label is not None]

    def unlabelled(self) -> list[ImageRecord]:
        return [r for r in self.images if r.label is None]

    def shot_counts(self) -> dict[str, int]:
        """Labelled images per class, ``good`` first then the defect classes."""
        with self._lock:
            counts = {GOOD: 0, **{c: 0 for c in self._classes}}
            for record in self._images.values():
                if record.label is not None:
                    counts[record.label] = counts.get(record.label, 0) + 1
            return counts

    def missing_shots(self) -> list[str]:
        """What still needs labelling, e.g. ``["scratch: 1 of 2", "spot: 0 of 2"]``."""
        return [
            f"{label}: {count} of {SHOTS_WANTED}"
            for label, count in self.shot_counts().items()
            if count < SHOTS_WANTED
        ]

    def path_of(self, image_id: str) -> Path:
        return self.root / self.get(image_id).file

    def load_image(self, image_id: str) -> np.ndarray:
        """The image as H x W x 3 uint8."""
        return read_image(self.path_of(image_id))

    def load_mask(self, image_id: str) -> np.ndarray | None:
        """The painted mask as H x W bool, or None."""
        record = self.get(image_id)
        if record.mask is None:
            return None
        return read_mask(self.root / record.mask, (record.height, record.width))

    def display_image(self, image_id: str) -> np.ndarray:
        """The image as the page shows it: H x W x 3 uint8, at most :data:`DISPLAY_SIDE` px.

        Large images are shrunk once and the copy kept in ``display/`` (rebuilt when
        missing), so showing one costs a small PNG read, not a 70 MB decode.
        """
        record = self.get(image_id)
        if max(record.width, record.height) <= DISPLAY_SIDE:
            return self.load_image(image_id)
        path = self.root / "display" / f"{image_id}.png"
        if path.is_file():
            try:
                return read_image(path)
            except ImageError:
                pass  # a damaged copy: make it again
        image = shrink(self.load_image(image_id))
        write_atomic(path, _png(image))
        return image

    def thumbnail(self, image_id: str) -> Path:
        """The gallery thumbnail's path (rebuilt if someone deleted it)."""
        path = self.root / "thumbs" / f"{image_id}.png"
        if not path.is_file():
            write_atomic(path, _thumbnail(self.load_image(image_id)))
        return path

    def samples(self) -> list[Sample]:
        """The labelled shots as :class:`Sample` s (masks only on defect shots)."""
        return [
            Sample(
                label=r.label,
                path=self.root / r.file,
                mask_path=self.root / r.mask if (r.mask and r.label != GOOD) else None,
                note=r.note or None,
                meta={"id": r.id, "name": r.name},
            )
            for r in self.labelled()
        ]

    def fingerprint(self) -> str:
        """Hash of everything a fit depends on: classes, labels, masks, notes."""
        with self._lock:
            body = {
                "classes": sorted(self._classes),
                "shots": sorted(
                    (r.id, r.sha256, r.label, r.mask_sha256 if r.label != GOOD else None, r.note)
                    for r in self._images.values()
                    if r.label is not None
                ),
            }
        return sha256_bytes(json.dumps(body, sort_keys=True).encode())[:16]

    @property
    def fit_is_stale(self) -> bool:
        """True when labels, masks, notes or classes changed since the last fit."""
        return self._fit is not None and self._fit.fingerprint != self.fingerprint()

    # ------------------------------------------------------------------ images
    def add_image(self, data: bytes, name: str) -> tuple[ImageRecord, bool]:
        """Add one image from its encoded bytes; returns (record, added).

        ``added`` is False when the same bytes are already in the project (the existing
        record is returned): uploading a folder twice must not double the shots.

        Raises:
            ImageError: empty, truncated, not an image, or too big; names the file.
        """
        try:
            image = read_image(data)
            with Image.open(io.BytesIO(data)) as pil:
                fmt = pil.format
        except ImageError as exc:
            raise ImageError(str(exc).replace("<bytes>", name)) from None
        sha = sha256_bytes(data)
        with self._lock:
            for record in self._images.values():
                if record.sha256 == sha:
                    return record, False
            image_id = f"{safe_stem(Path(name).stem)}-{sha[:8]}"
            suffix = _SUFFIX.get(fmt or "")
            if suffix is None:  # e.g. GIF: store what we decoded, losslessly
                data, suffix = _png(image), ".png"
            record = ImageRecord(
                id=image_id, file=f"images/{image_id}{suffix}", name=Path(name).name, sha256=sha,
                width=int(image.shape[1]), height=int(image.shape[0]), added=_now(),
            )  # fmt: skip
            write_atomic(self.root / record.file, data)
            write_atomic(self.root / "thumbs" / f"{image_id}.png", _thumbnail(image))
            if max(image.shape[:2]) > DISPLAY_SIDE:
                write_atomic(self.root / "display" / f"{image_id}.png", _png(shrink(image)))
            self._save(images={**self._images, image_id: record})
            return record, True

    def remove_image(self, image_id: str) -> None:
        """Forget an image; its files go after the manifest no longer names them."""
        with self._lock:
            record = self.get(image_id)
            images = dict(self._images)
            del images[image_id]
            self._save(images=images)
            for rel in (
                record.file,
                record.mask,
                f"thumbs/{image_id}.png",
                f"display/{image_id}.png",
            ):
                if rel:
                    (self.root / rel).unlink(missing_ok=True)

    # ------------------------------------------------------------------ labels
    def annotate(
        self, image_id: str, *, label: Any = KEEP, note: Any = KEEP, mask: Any = KEEP
    ) -> ImageRecord:
        """Set any of label (a class, ``"good"`` or None), note and mask in one write.

        Args:
            mask: H x W bool (the image's size) or None to remove it; an empty mask
                counts as None (the engineer cleared the canvas).
        """
        with self._lock:
            record = self.get(image_id)
            changes: dict[str, Any] = {}
            if label is not KEEP:
                if label is not None and label != GOOD and label not in self._classes:
                    raise ProjectError(f"no class {label!r}; create it first")
                changes["label"] = label
            if note is not KEEP:
                changes["note"] = (note or "").strip()
            if mask is not KEEP:
                changes.update(self._write_mask(record, mask))
            if not changes:
                return record
            new = replace(record, **changes)
            self._save(images={**self._images, image_id: new})
            if mask is not KEEP and new.mask is None and record.mask:
                (self.root / record.mask).unlink(missing_ok=True)
            return new

    def set_label(self, image_id: str, label: str | None) -> ImageRecord:
        return self.annotate(image_id, label=label)

    def set_note(self, image_id: str, note: str) -> ImageRecord:
        return self.annotate(image_id, note=note)

    def set_mask(self, image_id: str, mask: np.ndarray | None) -> ImageRecord:
        return self.annotate(image_id, mask=mask)

    def _write_mask(self, record: ImageRecord, mask: np.ndarray | None) -> dict[str, Any]:
        if mask is None or not np.asarray(mask).any():
            return {"mask": None, "mask_sha256": None}
        mask = np.asarray(mask).astype(bool)
        if mask.shape != (record.height, record.width):
            raise ProjectError(
                f"{record.name}: the mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                f"{record.width}x{record.height}"
            )
        data = _png(mask.astype(np.uint8) * 255)
        rel = f"masks/{record.id}.png"
        write_atomic(self.root / rel, data)
        return {"mask": rel, "mask_sha256": sha256_bytes(data)}

    # ------------------------------------------------------------------ classes
    def add_class(self, name: str) -> str:
        with self._lock:
            name = check_class_name(name)
            if name.lower() in (c.lower() for c in self._classes):
                raise ProjectError(f"class {name!r} already exists")
            self._save(classes=[*self._classes, name])
            return name

    def rename_class(self, old: str, new: str) -> str:
        """Rename a class; its labelled images follow."""
        with self._lock:
            if old not in self._classes:
                raise ProjectError(f"no class {old!r} to rename; pick one from the list")
            new = check_class_name(new)
            if new != old and new.lower() in (c.lower() for c in self._classes if c != old):
                raise ProjectError(f"class {new!r} already exists")
            images = {
                k: replace(r, label=new) if r.label == old else r for k, r in self._images.items()
            }
            classes = [new if c == old else c for c in self._classes]
            self._save(classes=classes, images=images)
            return new

    def delete_class(self, name: str) -> int:
        """Delete a class; its images become unlabelled (they are kept). Returns how many."""
        with self._lock:
            if name not in self._classes:
                raise ProjectError(f"no class {name!r} to delete")
            images = {
                k: replace(r, label=None) if r.label == name else r for k, r in self._images.items()
            }
            count = sum(r.label == name for r in self._images.values())
            self._save(classes=[c for c in self._classes if c != name], images=images)
            return count

    def setting(self, key: str, default: Any = None) -> Any:
        """A remembered choice of the app (``review_heavy_model``...), or ``default``."""
        with self._lock:
            return self._settings.get(key, default)

    def remember(self, key: str, value: Any) -> None:
        """Keep a choice of the app across restarts (written only when it changed)."""
        with self._lock:
            if self._settings.get(key) != value:
                self._save(settings={**self._settings, key: value})

    def set_backbone(self, name: str) -> None:
        with self._lock:
            if name != self.backbone:
                self._save(settings={**self._settings, "backbone": name})

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        *,
        backbone: str | None = None,
        config=None,
        progress: bool = False,
        unlabelled: bool = True,
    ) -> FitRecord:
        """Fit an inspector on the labelled shots, save it in ``models/``, record the fit.

        With ``unlabelled`` (the default) the project's unlabelled images go into the fit
        too: those judged good widen what counts as normal and calibrate the threshold,
        those judged defects are kept out (the record lists both). With them, a project
        with no good shot, or nothing labelled at all, still gets a verdict model; without
        good shots and without them, two or more defect classes give a type-only model.

        The record's ``seconds`` is the wall time of this call (backbone loading, reading
        the shots and saving included): what the engineer waited, not the model's share.
        Fits are incremental: the raw features of every image are kept in the project's
        feature cache (memory and ``cache/features/``), so a refit after adding a shot
        runs the backbone on that shot only (``features_extracted`` and
        ``features_cached`` in the record) and gives the same model as a fit from scratch.
        The backbone is kept between fits of the same backbone, weights and layers.
        A threshold the engineer set is kept when the backbone stays the same (the
        scores keep their scale: 1.0 is the most unusual good shot); the new calibrated
        one is recorded beside it. Another backbone's scores are not comparable, so its
        fit starts from its calibrated threshold.

        Args:
            backbone: registry name; default: the project's (``efficientnet_lite0``).
            config: a full :class:`~defectkit.inspect.config.InspectorConfig`
                (overrides ``backbone``); tests use it for tiny, fast fits. The project's
                saved region of interest (:mod:`.roi`), when there is one, replaces its ``roi``.
            progress: show tqdm bars (the app's progress bar tracks them).
            unlabelled: learn from the unlabelled images (at most the fit's cap,
                :data:`~defectkit.inspect.fit.MAX_UNLABELLED`, a seeded draw).

        Raises:
            SupportSetError: nothing to fit on, no good shot and no unlabelled image with
                fewer than two defect classes, or a class without shots.
            BackboneError: the backbone cannot be built (e.g. its weights are missing).
        """
        from defectkit.fewshot.support import SupportSet
        from defectkit.inspect.config import InspectorConfig
        from defectkit.inspect.inspector import Inspector

        if not self._fit_lock.acquire(blocking=False):
            raise ProjectError("a fit of this project is already running; wait for it to finish")
        started = time.perf_counter()
        try:
            with self._lock:  # a consistent snapshot; labelling may go on during the fit
                samples, fingerprint, classes = self.samples(), self.fingerprint(), self.classes
                free = _draw_unlabelled(self.unlabelled()) if unlabelled else []
            if not samples and not free:
                raise SupportSetError(
                    "nothing is labelled yet: label at least one good image (two is better) "
                    "and the defect images, then fit"
                    + ("" if unlabelled else " (or tick 'learn from unlabelled images')")
                )
            support = SupportSet.from_samples(samples, classes=classes)
            config = config or InspectorConfig(backbone=backbone or self.backbone)
            config = with_project_roi(config, self)  # the region drawn in the app, if any
            inspector = Inspector(config, backbone=self._kept_backbone(config))
            cache = self._features()
            report = inspector.fit(
                support, unlabelled=[self.root / r.file for r in free], progress=progress,
                cache=cache,
            )  # fmt: skip
            cache.prune_unused()  # the folder holds what this fit used, no more
            fit_id = _dt.datetime.now().strftime("fit-%Y%m%d-%H%M%S-%f")
            inspector.save(self.root / "models" / fit_id)
            with self._lock:
                kept = self._fit.threshold if self._fit is not None else None
                if self._fit is not None and self._fit.backbone != config.backbone:
                    kept = None
                if not inspector.model.has_verdict:
                    kept = None  # defect sorting: no verdict, nothing to threshold
            record = FitRecord(
                id=fit_id, created=_now(), backbone=config.backbone, fingerprint=fingerprint,
                classes=list(inspector.classes), shots=support.summary()["shots_per_class"],
                good_scores=[float(s) for s in report.good_scores],
                defect_scores={k: [float(s) for s in v] for k, v in report.defect_scores.items()},
                fitted_thresholds=report.thresholds.to_dict(), threshold=kept,
                seconds=round(time.perf_counter() - started, 3),
                config=config.to_dict(),
                mode="inspect" if inspector.model.has_verdict else TYPE_ONLY,
                unlabelled_used=[r.id for r in free],
                unlabelled_rejected=[free[i].id for i in report.unlabelled_rejected],
                unlabelled_judged_by=report.unlabelled_judged_by,
                unlabelled_taught_classes=report.unlabelled_taught_classes,
                frame=report.frame.describe() if report.frame else None,
                features_extracted=report.features_extracted,
                features_cached=report.features_cached,
            )  # fmt: skip
            with self._lock:
                self._save(fit=record, settings={**self._settings, "backbone": config.backbone})
                self._inspector = (fit_id, inspector)
                inspector.thresholds = self.thresholds()
            self._remove_old_models(keep=fit_id)
            return record
        finally:
            self._fit_lock.release()

    def _features(self):
        """The project's feature cache (memory, backed by ``cache/features/``)."""
        from defectkit.inspect.feature_cache import FeatureCache

        if self._feature_cache is None:
            self._feature_cache = FeatureCache(self.root / FEATURE_CACHE)
        return self._feature_cache

    def _kept_backbone(self, config):
        """The last fitted inspector's backbone when ``config`` builds the same one (it is
        frozen, so sharing it is safe): a refit then skips building it again."""
        if self._inspector is None:
            return None
        old = self._inspector[1]
        same = ("backbone", "weights", "layers")
        if any(getattr(old.config, name) != getattr(config, name) for name in same):
            return None
        return old.backbone

    def _remove_old_models(self, *, keep: str) -> None:
        models = self.root / "models"
        for folder in models.iterdir() if models.is_dir() else ():
            if folder.name != keep:
                shutil.rmtree(folder, ignore_errors=True)

    def load_inspector(self):
        """The fitted inspector (loaded once, then cached), with the current threshold.

        Raises:
            NotFittedError: nothing fitted yet.
            ModelFormatError: the model folder is missing or damaged (refit).
        """
        from defectkit.inspect.inspector import Inspector

        with self._lock:
            record = self._fit
            if record is None:
                raise NotFittedError(
                    "nothing is fitted in this project yet: label the shots and click Fit first"
                )
            if self._inspector is None or self._inspector[0] != record.id:
                self._inspector = (record.id, Inspector.load(self.root / record.model))
            inspector = self._inspector[1]
            inspector.thresholds = self.thresholds()
            return inspector

    def thresholds(self):
        """The thresholds in use: the slider's image threshold, the calibrated rest.

        The pixel threshold never exceeds the image threshold (the one rule,
        :meth:`~defectkit.core.results.Thresholds.with_image`), so a lowered threshold
        still shows the region that made the verdict.
        """
        record = self._fit
        if record is None:
            raise NotFittedError("nothing is fitted in this project yet: click Fit first")
        return Thresholds.from_dict(record.fitted_thresholds).with_image(record.image_threshold)

    def set_threshold(self, value: float) -> None:
        """Move the image threshold (saved; no refit). ``None`` restores the calibrated one."""
        with self._lock:
            if self._fit is None:
                raise NotFittedError("fit the project before moving the threshold")
            if not self._fit.has_verdict:
                raise ProjectError(
                    "this model sorts defects into types and gives no good/defect verdict, "
                    "so it has no threshold: label good images (or keep unlabelled ones) and "
                    "fit again for a verdict"
                )
            if value is not None and not (np.isfinite(value) and value > 0):
                raise ProjectError(f"the threshold must be a positive number, got {value!r}")
            self._save(fit=replace(self._fit, threshold=None if value is None else float(value)))
            if self._inspector is not None and self._inspector[0] == self._fit.id:
                self._inspector[1].thresholds = self.thresholds()

    def write_dataset(self, root: str | Path) -> Path:
        """Write the labelled shots in the folder layout ``inspect fit DATA`` reads."""
        from defectkit.datasets.folder import write_folder

        samples = self.samples()
        if not samples:
            raise ProjectError("nothing is labelled yet; label some images first")
        return write_folder(samples, root)


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProjectError(
            f"{path}: cannot read the project manifest ({exc}); restore it from a backup"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ProjectError(f"{path}: not a defectkit labelling project")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ProjectError(
            f"{path}: project format version {manifest.get('format_version')!r} is not "
            f"supported (this defectkit reads version {FORMAT_VERSION})"
        )
    return manifest


def _clean_leftovers(root: Path) -> None:
    """Remove what a killed write left behind: our temp files, and the temp / old folders
    of :func:`~defectkit.core.files.atomic_directory` (``.<name>.tmp-*``, ``.<name>.old-*``)
    in the folders we own. Never anything the manifest could name."""
    for folder in (root, *(root / f for f in ("images", "masks", "thumbs", "display", "exports"))):
        remove_temporaries(folder)
    for folder in (root / "models", root / "exports"):
        for leftover in folder.glob(".*") if folder.is_dir() else ():
            if leftover.is_dir() and (".tmp-" in leftover.name or ".old-" in leftover.name):
                shutil.rmtree(leftover, ignore_errors=True)


def _draw_unlabelled(records: list[ImageRecord]) -> list[ImageRecord]:
    """The unlabelled images a fit learns from: all, or a seeded draw of the fit's cap.

    Drawn here rather than by the fit so the record can name exactly the images used
    (the fit's rejected indices are indices into this list) and so no more than the cap
    is ever read.
    """
    from defectkit.inspect.fit import MAX_UNLABELLED

    if len(records) <= MAX_UNLABELLED:
        return list(records)
    keep = np.random.default_rng(0).choice(len(records), MAX_UNLABELLED, replace=False)
    return [records[i] for i in sorted(keep)]


def _thumbnail(image: np.ndarray) -> bytes:
    return _png(shrink(image, THUMB_SIDE))
