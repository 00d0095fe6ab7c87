"""Raw patch grids kept between fits, so a refit runs the backbone on new images only.

::

    cache = FeatureCache("project/cache/features")     # or FeatureCache() in memory only
    inspector.fit(shots, cache=cache)                  # extracts every image
    inspector.fit(shots + [new_shot], cache=cache)     # extracts new_shot only

Why only the raw grids: the backbone is most of a fit's time, and an image's raw
(pre-standardisation) patch grid depends on nothing but the image and the features'
settings. Everything after it (standardisation, memory bank, defect bank, left-out
calibration, prototypes) depends on all the shots together, so it is recomputed on
every fit; it is the cheap part. A cached grid holds the very numbers the backbone gave
for the same image under the same settings, so a refit through the cache computes what
a full refit computes (the tests hold thresholds and scores to 1e-6 of each other).

An entry's key is the SHA-256 of :data:`FORMAT`, the torch version, the backbone (name,
preprocessing, weights id; for weights named without a hash, e.g. a randomly
initialised test backbone, a hash of its tensors), the configuration fields that change
features (:data:`FEATURE_FIELDS`), the tile spec, and the image's dtype, shape and
bytes. So another backbone, another configuration, or tiles of another size (a new
shot of a larger size changes the tiles chosen at fit) simply miss.

Entries live in memory (least recently used dropped first beyond ``max_bytes``) and,
with a folder, on disk as one ``<key>.npz`` each, written atomically (least recently
used deleted first beyond ``max_disk_bytes``: a 5 MP image's grid is ~56 MB with the
embedded backbone). The folder is a cache: deleting it loses nothing but time, and an
unreadable entry is counted in :attr:`CacheStats.corrupt`, deleted and extracted again,
never an error.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from defectkit.core.files import remove_temporaries, write_atomic
from defectkit.errors import ConfigError

log = logging.getLogger(__name__)

#: Bump when the feature code changes what it computes: on-disk entries of older code
#: then miss instead of being reused.
FORMAT = "defectkit-raw-grid-1"
#: InspectorConfig fields that change an image's raw patch grid. ``batch_size`` is here
#: because the tiles of one image run in batches of it, and a convolution's float
#: rounding may depend on the batch.
FEATURE_FIELDS = ("backbone", "weights", "layers", "pool_size", "grid_stride", "detail", "batch_size")
#: Memory kept by default: about 200 images of 256 x 256 pixels with the embedded backbone.
DEFAULT_MAX_BYTES = 256 * 2**20
#: Disk kept by default in a cache folder: 8x the memory (the folder outlives the process).
DEFAULT_MAX_DISK_BYTES = 2 * 2**30
SUFFIX = ".npz"

# Hashing a backbone's tensors costs ~1 s per GB; once per backbone object is enough
# (backbones are frozen).
_tensor_hashes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class CacheStats:
    """Counts since the cache was made: grids served, grids computed, disk entries read
    and those that could not be read (ignored, extracted again, rewritten)."""

    hits: int = 0
    misses: int = 0
    disk_hits: int = 0
    corrupt: int = 0
    write_errors: int = 0
    disk_evicted: int = 0


class FeatureCache:
    """Raw patch grids (D x h x w float32) by key, in memory and optionally in a folder.

    Args:
        folder: where entries are kept between processes (created when missing); None
            keeps them in memory only.
        max_bytes: memory held at most; the least recently used entries go first (they
            stay on disk).
        max_disk_bytes: bytes of entries kept in ``folder`` at most; the least recently
            used files are deleted first.
    """

    def __init__(
        self, folder: str | Path | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES,
        max_disk_bytes: int = DEFAULT_MAX_DISK_BYTES,
    ) -> None:  # fmt: skip
        if min(max_bytes, max_disk_bytes) < 0:
            raise ConfigError(f"max_bytes and max_disk_bytes must be 0 or more, not {max_bytes}, {max_disk_bytes}")
        self.folder = None if folder is None else Path(folder)
        if self.folder is not None:
            if self.folder.exists() and not self.folder.is_dir():
                raise ConfigError(f"{self.folder} is a file; give a folder for the feature cache")
            remove_temporaries(self.folder)
        self.max_bytes = max_bytes
        self.max_disk_bytes = max_disk_bytes
        self.stats = CacheStats()
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._used: set[str] = set()

    def __len__(self) -> int:
        return len(self._memory)

    @property
    def nbytes(self) -> int:
        """Bytes held in memory."""
        return self._bytes

    # ------------------------------------------------------------------ entries
    def get(self, key: str) -> np.ndarray | None:
        """The grid stored under ``key`` (read-only), or None."""
        grid = self._memory.get(key)
        if grid is not None:
            self._memory.move_to_end(key)
        elif self.folder is not None:
            grid = self._read(key)
            if grid is not None:
                self.stats.disk_hits += 1
                self._remember(key, grid)
        if grid is not None:
            self.stats.hits += 1
            self._used.add(key)
        return grid

    def put(self, key: str, grid: np.ndarray) -> None:
        """Keep a copy of ``grid`` under ``key`` (and write it to the folder)."""
        grid = np.array(grid, dtype=np.float32)  # a copy: the caller's array stays its own
        grid.flags.writeable = False
        self._used.add(key)
        self._remember(key, grid)
        if self.folder is not None:
            self._write(key, grid)

    def prune_unused(self) -> int:
        """Drop every entry not read or written since the last prune (or since the cache
        was made), in memory and on disk; returns how many files were deleted.

        Called after a fit, it bounds the folder to what that fit used.
        """
        for key in [k for k in self._memory if k not in self._used]:
            self._bytes -= self._memory.pop(key).nbytes
        removed = 0
        if self.folder is not None and self.folder.is_dir():
            for path in self.folder.glob(f"*{SUFFIX}"):
                if path.stem not in self._used:
                    path.unlink(missing_ok=True)
                    removed += 1
        self._used.clear()
        return removed

    # ------------------------------------------------------------------ inside
    def _remember(self, key: str, grid: np.ndarray) -> None:
        old = self._memory.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes
        if grid.nbytes > self.max_bytes:
            return
        self._memory[key] = grid
        self._bytes += grid.nbytes
        while self._bytes > self.max_bytes:
            _, dropped = self._memory.popitem(last=False)
            self._bytes -= dropped.nbytes

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{key}{SUFFIX}"

    def _read(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                grid, stored = data["grid"], str(data["key"])
            if stored != key or grid.dtype != np.float32 or grid.ndim != 3:
                raise ValueError(f"holds key {stored[:12]}, {grid.dtype} {grid.shape}")
        except Exception as exc:  # any unreadable entry is a miss: a cache never fails a fit
            log.warning("feature cache: ignoring unreadable %s (%s); extracting again", path.name, exc)
            self.stats.corrupt += 1
            path.unlink(missing_ok=True)
            return None
        grid.flags.writeable = False
        os.utime(path)  # recently used: the disk bound deletes the oldest first
        return grid

    def _write(self, key: str, grid: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, grid=grid, key=np.array(key))
        try:
            # No fsync: a lost or empty entry after a power cut is read as corrupt and
            # extracted again, and a fit writes one entry per image.
            write_atomic(self._path(key), buffer.getvalue(), fsync=False)
        except OSError as exc:  # a full or read-only disk costs time next fit, not this fit
            log.warning("feature cache: cannot write %s (%s)", self._path(key).name, exc)
            self.stats.write_errors += 1
            return
        self._bound_disk(keep=self._path(key))

    def _bound_disk(self, keep: Path) -> None:
        """Delete the least recently used files while the folder holds too much."""
        files = []
        for path in self.folder.glob(f"*{SUFFIX}"):
            try:
                stat = path.stat()
            except OSError:  # deleted meanwhile
                continue
            files.append((stat.st_mtime_ns, stat.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_disk_bytes:
                break
            if path != keep:
                path.unlink(missing_ok=True)
                total -= size
                self.stats.disk_evicted += 1


class GridSource:
    """Raw grids of one fit's images: from the cache when there, else computed (and kept).

    Args:
        compute: image -> raw grid (D x h x w float32), the backbone's work.
        cache: where grids are looked up and kept; None computes every grid.
        fingerprint: :func:`features_fingerprint` of the model as it is fitted.
    """

    def __init__(self, compute: Callable[[np.ndarray], np.ndarray], cache: FeatureCache | None, fingerprint: str) -> None:
        self.compute = compute
        self.cache = cache
        self.fingerprint = fingerprint
        self.extracted = 0
        self.cached = 0

    def grid(self, image: np.ndarray) -> np.ndarray:
        if self.cache is None:
            self.extracted += 1
            return self.compute(image)
        key = image_key(self.fingerprint, image)
        grid = self.cache.get(key)
        if grid is not None:
            self.cached += 1
            return np.array(grid)  # the fit owns what it gets; the cache's copy stays intact
        self.cache.stats.misses += 1
        self.extracted += 1
        grid = self.compute(image)
        self.cache.put(key, grid)
        return grid


# ---------------------------------------------------------------------- keys
def features_fingerprint(model) -> str:
    """What makes an :class:`~defectkit.inspect.model.InspectorModel`'s raw grids what
    they are, as a hex digest: backbone, feature settings, tile spec."""
    backbone, cfg, spec = model.backbone, model.config, model.tiles
    pre = backbone.preprocessing
    parts = [
        FORMAT, torch.__version__, backbone.name, str(pre.mean), str(pre.std),
        _weights_identity(backbone),
        *(f"{name}={getattr(cfg, name)!r}" for name in FEATURE_FIELDS),
        f"tiles={tuple(spec.size)!r},{spec.stride},{spec.margin},{spec.scale!r},{spec.roi!r}",
    ]  # fmt: skip
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def image_key(fingerprint: str, image: np.ndarray) -> str:
    """The cache key of ``image`` under a model's :func:`features_fingerprint`."""
    image = np.ascontiguousarray(image)
    digest = hashlib.sha256(f"{fingerprint}\n{image.dtype.str}\n{image.shape}\n".encode())
    digest.update(image)  # the buffer itself: no copy of a 5 MP image
    return digest.hexdigest()


def _weights_identity(backbone) -> str:
    """The weights id when it names the weights' SHA-256 (a file read once); otherwise
    (``"random"``: a test backbone) a hash of the backbone's tensors."""
    wid = str(getattr(backbone, "weights_id", ""))
    if "sha256:" in wid:
        return wid
    digest = _tensor_hashes.get(backbone)
    if digest is None:
        h = hashlib.sha256(wid.encode())
        for name, tensor in backbone.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())  # any dtype
        digest = _tensor_hashes[backbone] = h.hexdigest()
    return f"{wid} tensors:{digest}"
