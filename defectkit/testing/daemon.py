"""The daemon's test double: a fake bundle whose verdict is the image's brightness.

Used by the unit and integration tests and by ``benchmarks/daemon_load.py``; run as
``python -m defectkit.testing.daemon --bundle FAKE ...`` it is ``inspect serve`` with the
double as its bundle loader (what :mod:`.processes` starts).

The double honours the runtime's contract (``load_bundle(path, device=)`` verifying
every file's SHA-256 and the format version; ``.id``, ``.manifest``, ``.inspect``), so
tamper tests mean the same with a real bundle. Its verdict depends on the image: the
score is the mean brightness in [0, 1], so bright images are defects. Torch-free, like
the daemon.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from defectkit.core.files import sha256_bytes, sha256_file
from defectkit.core.predictor import inspection_result
from defectkit.core.results import RawOutputs, Thresholds
from defectkit.errors import BundleError

FAKE_FORMAT = 1


# -- the test-double bundle --------------------------------------------------------------


def write_fake_bundle(
    folder: Path,
    *,
    classes: Sequence[str] = ("good", "scratch"),
    threshold: float = 0.5,
    delay_s: float = 0.0,
    raise_above: float = 2.0,
    version: int = FAKE_FORMAT,
    tag: str = "",
) -> Path:
    """Write a bundle folder the double loads. ``delay_s`` is inference time per image;
    images brighter than ``raise_above`` make ``inspect`` raise; ``tag`` changes the id."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "model.bin"
    weights.write_bytes(bytes.fromhex(sha256_bytes(f"weights{tag}".encode())) * 64)
    manifest = {
        "format_version": version,
        "kind": "defectkit-test-double",
        "classes": list(classes),
        "thresholds": {"image": threshold, "pixel": threshold + 0.1, "min_defect_area": 4},
        "input_size": [16, 16],
        "delay_s": delay_s,
        "raise_above": raise_above,
        "tag": tag,
        "files": {"model.bin": sha256_file(weights)},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder


def load_fake_bundle(path: str | Path, device: str = "CPU", streams: int = 1) -> FakeBundle:
    """The double's ``load_bundle``: verifies like the runtime, raises BundleError."""
    path = Path(path)
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise BundleError(f"{path}: no manifest.json; is this an exported bundle folder?")
    raw = manifest_path.read_bytes()
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{manifest_path}: not valid JSON ({exc})") from None
    if manifest.get("format_version") != FAKE_FORMAT:
        raise BundleError(
            f"{path}: unknown bundle format version {manifest.get('format_version')!r}"
        )
    for name, expected in manifest.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise BundleError(f"{path}: {name} is missing; copy the whole bundle folder")
        if sha256_file(file) != expected:
            raise BundleError(
                f"{path}: {name} does not match its SHA-256 in the manifest (tampered?)"
            )
    return FakeBundle(sha256_bytes(raw)[:12], manifest, device)


@dataclass
class FakeBundle:
    id: str
    manifest: dict[str, Any]
    device: str = "CPU"
    calls: list[int] = field(default_factory=list)  # batch sizes seen

    def inspect(self, images: list[np.ndarray], paths: Sequence[str | None] | None = None) -> list:
        self.calls.append(len(images))
        time.sleep(float(self.manifest.get("delay_s", 0.0)) * len(images))
        paths = list(paths) if paths is not None else [None] * len(images)
        thresholds = Thresholds.from_dict(self.manifest["thresholds"])
        h, w = self.manifest["input_size"]
        out = []
        for image, path in zip(images, paths, strict=True):
            gray = image.astype(np.float32).mean(axis=2) / 255.0
            score = float(gray.mean())
            if score > float(self.manifest.get("raise_above", 2.0)):
                raise RuntimeError(f"test double: image too bright ({score:.3f})")
            small = np.asarray(Image.fromarray(gray, mode="F").resize((w, h), Image.BILINEAR))
            logits = (
                np.array([0.5 - score, score - 0.5] + [0.0] * (len(self.manifest["classes"]) - 2))
                * 8
            )
            result = inspection_result(
                RawOutputs(score, small, logits, np.zeros(0, np.float32)),
                classes=self.manifest["classes"], thresholds=thresholds,
                image_size=image.shape[:2], path=path, timings={"model": 0.1},
            )  # fmt: skip
            result.caption = f"mean brightness {score:.2f}"
            out.append(result)
        return out


# -- images ------------------------------------------------------------------------------


def png_bytes(value: int, *, size: int = 32, tag: int = 0, fmt: str = "PNG") -> bytes:
    """A uniform gray image of ``value`` (0..255); ``tag`` makes the bytes unique."""
    pixels = np.full((size, size, 3), value, dtype=np.uint8)
    pixels[0, 0] = (tag % 256, (tag // 256) % 256, (tag // 65536) % 256)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def bad_inputs() -> dict[str, bytes]:
    """Files the daemon must refuse, by kind."""
    good = png_bytes(100, size=64)
    return {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "not_an_image": b"this is a text file, not an image\n" * 10,
        "bomb": bomb_png(),
    }


if __name__ == "__main__":  # the daemon with the double as its bundle loader
    from defectkit.cli.serve import main

    sys.exit(main(sys.argv[1:], loader=load_fake_bundle))
