"""Reading images and masks, and the one preprocessing function every path shares.

Torch-free on purpose: the PyTorch path, the exported runtime and the daemon all call
:func:`preprocess` so that a bundle sees exactly the pixels the fitted inspector saw.
Normalisation (mean/std) is *not* done here: it lives inside the model graph.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from defectkit.errors import DatasetError, ImageError

#: Largest image we decode (pixels). Bigger files are refused as likely decompression bombs;
#: 80 MP covers every industrial camera we know of.
MAX_PIXELS = 80_000_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# A truncated JPEG must be an error, not a silently grey lower half.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def is_image_file(path: Path) -> bool:
    """True when the file name has an image suffix we read (case-insensitive)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def list_image_files(inputs: list[str | Path]) -> list[Path]:
    """Image files named on a command line: files as given, folders searched recursively
    (sorted). A missing path or a folder without images is a :class:`DatasetError`."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and is_image_file(f))
            if not found:
                raise DatasetError(f"{p}: no images found in this folder")
            paths.extend(found)
        elif p.is_file():
            paths.append(p)
        else:
            raise DatasetError(f"{p}: no such file or folder")
    return paths


def _open(source: str | Path | bytes, max_pixels: int | None = None) -> tuple[Image.Image, str]:
    # Read MAX_PIXELS at call time, not as a default bound at import: it is the one
    # module-wide cap, and tests and embedders lower it by assignment.
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), "<bytes>"
    else:
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise ImageError(f"{name}: no such image file")
        data = path.read_bytes()
    if not data:
        raise ImageError(f"{name}: the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            w, h = image.size
            if w * h > limit:
                raise ImageError(
                    f"{name}: {w}x{h} pixels is more than the {limit:,} allowed "
                    "(possible decompression bomb)"
                )
            image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: refused as a possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: cannot decode the image ({exc}); is it truncated?") from None
    return image, name


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        # 16-bit (or 32-bit) sensors: scale by the type's range so 12-bit data in a
        # 16-bit container stays dark rather than being stretched per image.
        top = 65535.0 if array.max(initial=0) <= 65535 else float(np.iinfo(array.dtype).max)
        return np.clip(array.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        return np.clip(array * 255.0 + 0.5, 0, 255).astype(np.uint8)
    raise ImageError(f"unsupported pixel type {array.dtype}")


def to_rgb(array: np.ndarray) -> np.ndarray:
    """Any H x W, H x W x 1/3/4 array of 8/16-bit ints or floats in [0, 1] -> H x W x 3 uint8."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ImageError(
            f"an image must be H x W, or H x W x C with C in 1..4; got shape {array.shape}"
        )
    if array.shape[0] < 8 or array.shape[1] < 8:
        raise ImageError(f"image of {array.shape[1]}x{array.shape[0]} pixels is too small")
    array = _to_uint8(array)
    channels = array.shape[2]
    if channels in (1, 2):  # gray, gray + alpha
        array = np.repeat(array[:, :, :1], 3, axis=2)
    elif channels == 4:  # drop alpha: parts are photographed, not composited
        array = array[:, :, :3]
    return np.ascontiguousarray(array)


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from an encoded image's header, without decoding its pixels.

    What a server needs to refuse or budget an image before paying for it: decoding
    costs memory in proportion to the pixels, not to the file (a 225 KB PNG can hold
    79 MP). Raises :class:`~defectkit.errors.ImageError` for empty or unreadable data.
    """
    if not data:
        raise ImageError("the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data)).size
    except UnidentifiedImageError:
        raise ImageError("not an image file Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"refused as a possible decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot read the image header ({exc})") from None


def read_image(source: str | Path | bytes, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode a file path or encoded bytes into H x W x 3 uint8 RGB.

    Gray, palette, RGBA, CMYK and 16-bit images are converted; empty, truncated,
    non-image files and those over ``max_pixels`` (default :data:`MAX_PIXELS`; checked
    from the header, before decoding) raise :class:`~defectkit.errors.ImageError`.
    """
    image, name = _open(source, max_pixels)
    try:
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(image)
            if image.mode == "I":
                array = array.astype(np.int64).clip(0, 65535).astype(np.uint16)
            return to_rgb(array)
        if image.mode == "F":
            return to_rgb(np.asarray(image).clip(0.0, 1.0))
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        return to_rgb(np.asarray(image))
    except ImageError as exc:
        raise ImageError(f"{name}: {exc}") from None


def read_mask(source: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a defect mask as H x W bool (any non-zero pixel is defect).

    Args:
        source: mask image file.
        shape: (H, W) of the image it belongs to; a mismatch is an error, not a resize,
            because a mask of the wrong size is almost always a mask of the wrong image.
    """
    image, name = _open(source)
    mask = np.asarray(image.convert("L")) > 0
    if shape is not None and mask.shape != tuple(shape):
        raise ImageError(
            f"{name}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
            f"{shape[1]}x{shape[0]}; masks must have the image's size"
        )
    return mask


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize H x W x 3 uint8 to ``size`` = (H, W) with bilinear filtering (Pillow)."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    return np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an H x W bool mask with nearest-neighbour sampling."""
    h, w = size
    if mask.shape == (h, w):
        return mask
    img = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(img.resize((w, h), Image.NEAREST)) > 127


def preprocess(images: list[np.ndarray] | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Images (any size, RGB/gray, 8/16-bit) -> N x 3 x H x W float32 in [0, 1].

    The one preprocessing function: the PyTorch inspector, the exported runtime and the
    daemon all call it, so exported parity starts from identical inputs.
    """
    if isinstance(images, np.ndarray) and images.ndim in (2, 3):
        images = [images]
    batch = np.stack([resize(to_rgb(im), size) for im in images])
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
