"""The one record every loader returns (:class:`Sample`) and the format dispatcher.

A dataset is a plain ``list[Sample]``: the support-set builder, the app, the benchmarks
and the demo all iterate it the same way whatever layout it came from. Samples are lazy:
loaders only list files, so listing MVTec AD or the 2,000-image textile benchmark costs
milliseconds and a broken file is reported when (and only when) it is read.

Torch-free on purpose: the daemon-side code and the benchmarks import this module.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from defectkit.core.images import read_image, read_mask, to_rgb
from defectkit.core.labels import GOOD
from defectkit.errors import DatasetError


@dataclass(frozen=True)
class Sample:
    """One labelled image: a file on disk or an in-memory array, with optional mask and note.

    Attributes:
        label: ``"good"`` or a defect class name.
        path: image file; ``None`` for in-memory (synthetic) images.
        mask_path: defect mask file (any non-zero pixel is defect).
        note: free text the engineer wrote about this sample.
        image_array: H x W x 3 uint8, used instead of ``path`` when given.
        mask_array: H x W bool, used instead of ``mask_path`` when given.
        crop: region of interest (x0, y0, x1, y1; end exclusive) applied to the image and
            its mask when loaded, e.g. to drop a frame that is not part of the product.
        meta: extra facts, JSON-able. ``"id"`` (when present) is the sample's unique
            :attr:`key` in its dataset; synthetic samples carry their ground truth here (see
            :mod:`defectkit.datasets.synthetic`).

    Equality and hashing use label, paths and note only: two in-memory samples with the
    same label compare equal, so give them distinct ``meta["id"]`` and compare keys.
    """

    label: str
    path: Path | None = None
    mask_path: Path | None = None
    note: str | None = None
    image_array: np.ndarray | None = field(default=None, repr=False, compare=False)
    mask_array: np.ndarray | None = field(default=None, repr=False, compare=False)
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)
    crop: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label:
            raise DatasetError(f"a sample's label must be a non-empty string, got {self.label!r}")
        for name in ("path", "mask_path"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        if self.path is None and self.image_array is None:
            raise DatasetError(f"sample labelled {self.label!r} has neither a path nor an image")
        if self.image_array is not None:
            object.__setattr__(self, "image_array", to_rgb(self.image_array))
        if self.mask_array is not None:
            mask = np.asarray(self.mask_array).astype(bool, copy=False)
            if mask.ndim != 2:
                raise DatasetError(f"{self.key}: a mask must be H x W, got shape {mask.shape}")
            object.__setattr__(self, "mask_array", mask)
            if self.image_array is not None:
                _check_mask_shape(self, mask.shape, self.image_array.shape[:2])
        # A private copy: the caller's dict may change later, the sample must not.
        object.__setattr__(self, "meta", dict(self.meta))

    @property
    def name(self) -> str:
        """Short name for reports: the file name, else the synthetic id (``meta["id"]``).

        Not unique across a dataset (MVTec AD has ``train/good/000.png`` and
        ``test/good/000.png``); use :attr:`key` to identify a sample.
        """
        if self.path is not None:
            return self.path.name
        return str(self.meta.get("id", "<array>"))

    @property
    def key(self) -> str:
        """Unique name within its dataset: ``meta["id"]`` (every loader sets it, e.g.
        ``"scratch/img3.png"``, ``"bottle/test/good/000.png"``, ``"scratch_003"``), else
        the path, else :attr:`name`. Use it to match samples across runs (support shots
        versus the evaluation set)."""
        if "id" in self.meta:
            return str(self.meta["id"])
        if self.path is not None:
            return self.path.as_posix()
        return self.name

    def load_image(self) -> np.ndarray:
        """The image as H x W x 3 uint8 (a fresh array the caller may modify).

        Raises:
            ImageError: the file is missing, empty, truncated or not an image; the message
                names the file.
        """
        image = self.image_array.copy() if self.image_array is not None else read_image(self.path)
        return self._crop(image)

    def _crop(self, array: np.ndarray) -> np.ndarray:
        if self.crop is None:
            return array
        x0, y0, x1, y1 = self.crop
        return np.ascontiguousarray(array[y0:y1, x0:x1])

    def load_mask(self) -> np.ndarray | None:
        """The defect mask as H x W bool, or ``None`` when the sample has none.

        The mask is checked against the image's size (read from the file header, without
        decoding the image) because a mask of the wrong size is almost always the mask of
        another image; we refuse rather than resize.

        Raises:
            ImageError: unreadable mask or image file, or a mask file of the wrong size.
            DatasetError: an in-memory mask of the wrong size.
        """
        if self.mask_array is None and self.mask_path is None:
            return None
        shape = self._image_shape()
        if self.mask_array is not None:
            _check_mask_shape(self, self.mask_array.shape, shape)
            return self._crop(self.mask_array.copy())
        return self._crop(read_mask(self.mask_path, shape))

    def _image_shape(self) -> tuple[int, int]:
        if self.image_array is not None:
            return self.image_array.shape[:2]
        try:
            with Image.open(self.path) as image:
                width, height = image.size
            return height, width
        except Exception:  # let read_image word the error, naming the file
            return read_image(self.path).shape[:2]


def _check_mask_shape(sample: Sample, mask_shape: tuple, image_shape: tuple) -> None:
    if tuple(mask_shape) != tuple(image_shape):
        raise DatasetError(
            f"{sample.key}: mask is {mask_shape[1]}x{mask_shape[0]} but the image is "
            f"{image_shape[1]}x{image_shape[0]}; masks must have the image's size"
        )


class _Format(NamedTuple):
    module: str  # resolved lazily, so importing this module stays cheap
    function: str
    needs_path: bool
    takes_category: bool
    takes_split: bool
    layout: str  # one line, for error messages


# A small explicit registry (no import side effects): format name -> loader.
_FORMATS: dict[str, _Format] = {
    "folder": _Format(
        "defectkit.datasets.folder",
        "load_folder",
        needs_path=True,
        takes_category=False,
        takes_split=False,
        layout="ROOT/good/*.png and ROOT/<defect>/*.png",
    ),
    "mvtec": _Format(
        "defectkit.datasets.mvtec",
        "load_mvtec",
        needs_path=True,
        takes_category=True,
        takes_split=True,
        layout="ROOT/<category>/{train,test}/<good|defect>/*.png",
    ),
    "visa": _Format(
        "defectkit.datasets.visa",
        "load_visa",
        needs_path=True,
        takes_category=True,
        takes_split=True,
        layout="ROOT/split_csv/1cls.csv and the images it names",
    ),
    "textile": _Format(
        "defectkit.datasets.textile",
        "load_textile",
        needs_path=False,
        takes_category=False,
        takes_split=False,
        layout="the conformal-clip-data package, or ROOT/{nominal,local,global}/*.jpg",
    ),
}


def list_formats() -> list[str]:
    """Names accepted by :func:`load_dataset`'s ``format``."""
    return list(_FORMATS)


def load_dataset(
    path: str | Path | None,
    *,
    format: str = "folder",  # shadows the builtin: the CLI flag is --format
    category: str | None = None,
    split: str | None = None,
) -> list[Sample]:
    """List the samples of a dataset on disk (images are read lazily).

    Args:
        path: dataset root; ``None`` only for ``format="textile"`` (the packaged benchmark).
        format: one of :func:`list_formats`.
        category: MVTec AD category or VisA object; ``None`` for all.
        split: ``"train"`` or ``"test"`` for MVTec AD and VisA; ``None`` for both, train first.

    Raises:
        DatasetError: unknown format, missing folder, an option the format does not have,
            or no images at all; the one-line message says what to do.
    """
    spec = _FORMATS.get(format)
    if spec is None:
        raise DatasetError(f"unknown dataset format {format!r}; use one of: {', '.join(_FORMATS)}")
    if category is not None and not spec.takes_category:
        raise DatasetError(f"the {format} format has no categories; leave category unset")
    if split is not None and not spec.takes_split:
        raise DatasetError(f"the {format} format has no splits; leave split unset")
    if path is None and spec.needs_path:
        raise DatasetError(f"the {format} format needs the dataset folder ({spec.layout})")
    root = None if path is None else Path(path).expanduser()
    if root is not None and not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder; expected {spec.layout}")
    loader = getattr(importlib.import_module(spec.module), spec.function)
    options = {}
    if spec.takes_category:
        options["category"] = category
    if spec.takes_split:
        options["split"] = split
    samples = loader(root, **options)
    if not samples and format == "folder" and root is not None and (root / "unlabelled").is_dir():
        return samples  # unlabelled images only (see defectkit.datasets.folder.unlabelled_files)
    if not samples:  # loaders word this better; this is the safety net
        raise DatasetError(f"{root}: no images found; expected {spec.layout}")
    return samples


def check_split(split: str | None) -> tuple[str, ...]:
    """``None`` -> both splits, train first; ``"train"``/``"test"`` -> that one."""
    if split is None:
        return ("train", "test")
    if split not in ("train", "test"):
        raise DatasetError(f"unknown split {split!r}; use 'train', 'test' or leave it unset")
    return (split,)


__all__ = ["GOOD", "Sample", "check_split", "list_formats", "load_dataset"]
