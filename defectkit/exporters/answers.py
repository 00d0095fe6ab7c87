"""Kept answers: what a bundle said about an image, so the gate need not ask it again.

The regression gate compares a new bundle with the current one on every labelled image.
The current bundle was itself gated on (nearly) the same images before it was promoted,
so its answers are already known: keeping them halves the gate's inference (the OpenVINO
graph was 87 % of a gate's time, two bundles per image; see
``benchmarks/results/loop_timing.md``).

An answer is only ever reused for the *same* bundle setting on the *same* pixels:

- the key's ``setting`` is the bundle id (the manifest's hash: model files, thresholds
  written to disk, support set), the runtime device, and the thresholds in force in this
  process (``Bundle.set_threshold`` moves them without changing the id);
- the key's ``image`` is the SHA-256 of the decoded pixels with their shape, so a
  re-saved or renamed file keeps its answers and a changed pixel loses them.

Beside the verdict, label and score, the answer keeps what its overlay needs: the box
list, the threshold and the anomaly map shrunk to at most :data:`MAP_SIDE` pixels on its
long side (float16, zlib). The gate's overlays are shown at most 512 px wide and the map
is a patch grid (one value per 8-16 px) upsampled, so the shrunk map draws the same
picture. The store is one SQLite file (``answers.sqlite`` in a registry folder), safe
for one writer and many readers.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from defectkit.errors import DefectkitError

#: Long side of a kept anomaly map, in pixels (see the module docstring).
MAP_SIDE = 128
_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    setting TEXT NOT NULL,
    image TEXT NOT NULL,
    bundle TEXT NOT NULL,
    verdict TEXT,
    label TEXT NOT NULL,
    score REAL NOT NULL,
    threshold REAL NOT NULL,
    boxes TEXT NOT NULL,
    height INTEGER NOT NULL,
    width INTEGER NOT NULL,
    map_shape TEXT NOT NULL,
    map BLOB NOT NULL,
    PRIMARY KEY (setting, image)
)
"""


class AnswerStoreError(DefectkitError):
    """The answer store cannot be opened or read (not an answer store, or damaged)."""


def image_key(image: np.ndarray) -> str:
    """SHA-256 of an image's pixels, dtype and shape (the file name and format play no part)."""
    array = np.ascontiguousarray(image)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def setting_key(bundle: Any) -> str:
    """The bundle id, device and thresholds in force: answers are reused only when all match."""
    engine = getattr(bundle, "engine", None)
    device = getattr(engine, "device", None) or getattr(bundle, "device", "")
    thresholds = getattr(bundle, "thresholds", None)
    if thresholds is None:  # a bundle without the property (the test double): its manifest's
        thresholds = getattr(bundle, "manifest", {}).get("thresholds")
    elif hasattr(thresholds, "to_dict"):
        thresholds = thresholds.to_dict()
    body = json.dumps({"device": str(device), "thresholds": thresholds}, sort_keys=True, default=str)
    return f"{bundle.id}:{hashlib.sha256(body.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class KeptAnswer:
    """A bundle's answer about one image, as kept: enough to judge it and draw its overlay.

    ``anomaly_map`` (a property) is the kept map resized back to the image's size.
    """

    verdict: str | None
    label: str
    score: float
    threshold: float
    boxes: list[list[int]]
    image_size: tuple[int, int]  # H, W of the image
    small_map: np.ndarray

    @classmethod
    def of(cls, result: Any) -> KeptAnswer:
        amap = np.asarray(result.anomaly_map, dtype=np.float32)
        h, w = amap.shape
        scale = min(1.0, MAP_SIDE / max(h, w))
        small = amap
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = np.asarray(Image.fromarray(amap, mode="F").resize(size, Image.BILINEAR))
        return cls(
            verdict=result.verdict, label=str(result.label), score=round(float(result.score), 6),
            threshold=float(result.threshold), boxes=[list(map(int, b)) for b in result.boxes],
            image_size=(h, w), small_map=small.astype(np.float16),
        )  # fmt: skip

    @property
    def anomaly_map(self) -> np.ndarray:
        h, w = self.image_size
        small = self.small_map.astype(np.float32)
        if small.shape == (h, w):
            return small
        return np.asarray(Image.fromarray(small, mode="F").resize((w, h), Image.BILINEAR))


class AnswerStore:
    """Answers keyed by (bundle setting, image pixels) in one SQLite file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30)
            # No fsync per commit (0.8-0.9 s of a 500-image gate otherwise): these are
            # answers that can be asked again; a process crash loses nothing, an OS crash
            # at worst damages the file, which then says to delete it. The default
            # journal, not WAL, as a registry folder may be shared over the network.
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.execute(_SCHEMA)
            self._db.commit()
        except (OSError, sqlite3.DatabaseError) as exc:
            raise AnswerStoreError(
                f"{self.path}: cannot open the answer store ({exc}); delete the file to start "
                "afresh (the gate then asks every bundle again)"
            ) from None

    def close(self) -> None:
        self._db.close()

    def get(self, setting: str, images: Iterable[str]) -> dict[str, KeptAnswer]:
        """The kept answers of ``setting`` for the given image keys (missing ones left out)."""
        keys = list(dict.fromkeys(images))
        found: dict[str, KeptAnswer] = {}
        for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT image, verdict, label, score, threshold, boxes, height, width, map_shape, map"
                f" FROM answers WHERE setting = ? AND image IN ({marks})",
                (setting, *chunk),
            ).fetchall()
            for image, verdict, label, score, threshold, boxes, h, w, shape, blob in rows:
                small = np.frombuffer(zlib.decompress(blob), np.float16).reshape(json.loads(shape))
                found[image] = KeptAnswer(verdict, label, score, threshold, json.loads(boxes), (h, w), small)
        return found

    def put(self, setting: str, bundle_id: str, answers: dict[str, KeptAnswer]) -> None:
        """Keep answers of ``setting`` by image key (replacing any kept for the same pair)."""
        rows = [
            (setting, image, bundle_id, a.verdict, a.label, a.score, a.threshold, json.dumps(a.boxes),
             a.image_size[0], a.image_size[1], json.dumps(list(a.small_map.shape)),
             zlib.compress(a.small_map.tobytes(), 1))
            for image, a in answers.items()
        ]  # fmt: skip
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )

    def count(self, bundle_id: str | None = None) -> int:
        """Kept answers in all, or of one bundle id (every setting of it)."""
        if bundle_id is None:
            return int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
        query = "SELECT COUNT(*) FROM answers WHERE bundle = ?"
        return int(self._db.execute(query, (bundle_id,)).fetchone()[0])
