"""Defect-free surfaces for synthetic data: woven fabric, brushed metal, noise, a photo.

Each call draws one *good* surface: the same product every time (colour, thread pitch,
grain), shifted in phase and brightness and with fresh fine noise, the way consecutive
parts on a line differ. That variation is what makes anomaly detection non-trivial: a
detector must learn "this kind of texture", not memorise pixels.

All textures are H x W x 3 float32 in grey levels (0..255, not yet rounded), so a defect
can be blended in before the one rounding to uint8. numpy only, a few ms per 256 x 256.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

from defectkit.core.images import read_image
from defectkit.errors import DatasetError


def _grid(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    return x.astype(np.float32), y.astype(np.float32)


def _tint(grey: np.ndarray, colour: tuple[float, float, float]) -> np.ndarray:
    """H x W relative brightness (about 1) -> H x W x 3 grey levels of the given colour."""
    return grey[:, :, None] * np.asarray(colour, dtype=np.float32)


def fabric(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Plain weave: warp and weft threads alternating over/under, 8 px pitch, beige."""
    x, y = _grid(size)
    pitch = 8.0
    u = (x + rng.uniform(0, 64)) / pitch
    v = (y + rng.uniform(0, 64)) / pitch
    iu, iv = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    on_top = (iu + iv) % 2 == 0  # which thread crosses on top in this cell
    profile = np.where(on_top, np.sin(np.pi * (u - iu)), np.sin(np.pi * (v - iv)))
    # Threads differ a little in thickness/dye: one brightness offset per thread.
    warp_var = rng.normal(0.0, 0.025, iu.max() + 1)[iu]
    weft_var = rng.normal(0.0, 0.025, iv.max() + 1)[iv]
    grey = 0.78 + 0.22 * profile + np.where(on_top, warp_var, weft_var)
    grey = grey * rng.uniform(0.97, 1.03) + rng.normal(0.0, 0.012, grey.shape)
    return _tint(grey.astype(np.float32), (178.0, 164.0, 140.0))


def metal(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Brushed metal: horizontal grain (noise smeared along x) under a soft light gradient."""
    h, w = size
    run = 48  # grain length in px: noise averaged over a run along x
    white = rng.normal(0.0, 1.0, (h, w + run))
    cumulative = np.cumsum(white, axis=1)
    grain = (cumulative[:, run:] - cumulative[:, :-run]) / np.sqrt(run)
    x, y = _grid(size)
    phase, tilt = rng.uniform(0, 2 * np.pi), rng.uniform(-0.3, 0.3)
    light = 0.06 * np.cos(2 * np.pi * (y + tilt * x) / (2.5 * h) + phase)
    grey = 1.0 + 0.035 * grain + light + rng.normal(0.0, 0.01, (h, w))
    grey = grey * rng.uniform(0.97, 1.03)
    return _tint(grey.astype(np.float32), (150.0, 152.0, 158.0))


def noise(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Stationary cloudy noise (power spectrum ~ 1/f^3, like stone or cast surfaces)."""
    h, w = size
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    amplitude = 1.0 / np.maximum(f, 1.0 / 64.0) ** 1.5  # flattened below 1/64 cycles/px
    spectrum = amplitude * (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape))
    field = np.fft.irfft2(spectrum, s=(h, w))
    field = (field - field.mean()) / (field.std() + 1e-12)
    grey = 1.0 + 0.1 * field + rng.normal(0.0, 0.015, (h, w))
    grey = grey * rng.uniform(0.97, 1.03)
    return _tint(grey.astype(np.float32), (132.0, 128.0, 120.0))


@lru_cache(maxsize=1)
def _brick() -> np.ndarray:
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise DatasetError(
            "texture='sample' uses the brick photo shipped with scikit-image: "
            "pip install scikit-image, or choose texture='fabric', 'metal' or 'noise'"
        )
    # Read the file directly: importing skimage.data pulls in its downloader (slow).
    path = Path(spec.origin).parent / "data" / "brick.png"
    if not path.is_file():
        raise DatasetError(f"{path}: scikit-image's brick photo is missing; reinstall it")
    return read_image(path).astype(np.float32)


def sample(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random crop of a real brick-wall photo (scikit-image's ``data/brick.png``)."""
    photo = _brick()
    h, w = size
    reps = (-(-h // photo.shape[0]), -(-w // photo.shape[1]), 1)
    if reps != (1, 1, 1):  # larger than the photo: mirror-tile it
        photo = np.pad(
            photo,
            ((0, (reps[0] - 1) * photo.shape[0]), (0, (reps[1] - 1) * photo.shape[1]), (0, 0)),
            mode="symmetric",
        )
    y0 = int(rng.integers(0, photo.shape[0] - h + 1))
    x0 = int(rng.integers(0, photo.shape[1] - w + 1))
    crop = photo[y0 : y0 + h, x0 : x0 + w] * rng.uniform(0.97, 1.03)
    return (crop + rng.normal(0.0, 1.5, crop.shape)).astype(np.float32)


_TEXTURES: dict[str, Callable[[tuple[int, int], np.random.Generator], np.ndarray]] = {
    "fabric": fabric,
    "metal": metal,
    "noise": noise,
    "sample": sample,
}


def list_textures() -> list[str]:
    """Names accepted by :func:`make_texture`."""
    return list(_TEXTURES)


def make_texture(kind: str, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """One good surface of ``kind``: H x W x 3 float32 grey levels, ``size`` = (H, W)."""
    make = _TEXTURES.get(kind)
    if make is None:
        raise DatasetError(f"unknown texture {kind!r}; use one of: {', '.join(_TEXTURES)}")
    return make(size, rng)
