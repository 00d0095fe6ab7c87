"""The bundle being served, and hot reload without dropping a request.

A reload verifies and loads the new bundle *beside* the old one; only when that
succeeded is one reference swapped. Workers read the reference once per batch, so a
batch always runs on one bundle from start to finish, and the old bundle is freed when
its last batch ends. A refused bundle (tampered, partial, unknown format) leaves the old
one serving.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from defectkit.errors import BundleError, DefectkitError


class Bundle(Protocol):
    """What the daemon needs from a loaded bundle (``defectkit.exporters.runtime``)."""

    id: str
    manifest: dict[str, Any]

    def inspect(
        self, images: list[np.ndarray], paths: Sequence[str | None] | None = None
    ) -> list[Any]: ...


Loader = Callable[..., Bundle]  # loader(path, device=..., streams=...) -> Bundle


def load_runtime_bundle(path: Path, *, device: str = "CPU", streams: int = 1) -> Bundle:
    """The default loader: the torch-free runtime (imported on use)."""
    try:
        from defectkit.exporters.runtime import load_bundle
    except ImportError as exc:
        raise BundleError(
            f"cannot load bundles: the runtime is not available ({exc}); "
            "install defectkit[export] on this machine"
        ) from None
    return load_bundle(path, device=device, streams=streams)


class BundleHolder:
    """The current bundle, its path, and serialised reloads."""

    def __init__(
        self, path: Path, *, loader: Loader = load_runtime_bundle, device: str = "CPU",
        streams: int = 1,
    ):  # fmt: skip
        self.loader = loader
        self.device, self.streams = device, streams
        self.path = Path(path)
        self.current: Bundle = self._load(self.path)
        self._reload_lock = threading.Lock()

    @property
    def id(self) -> str:
        return self.current.id

    def reload(self, path: Path | None = None) -> tuple[str, str]:
        """Load ``path`` (default: the current path again) and swap it in.

        Returns:
            (previous bundle id, new bundle id).

        Raises:
            BundleError: the new bundle was refused; the old one keeps serving.
        """
        with self._reload_lock:
            target = Path(path) if path is not None else self.path
            new = self._load(target)
            previous, self.current, self.path = self.current, new, target
            return previous.id, new.id

    def _load(self, path: Path) -> Bundle:
        try:
            bundle = self.loader(path, device=self.device, streams=self.streams)
        except DefectkitError:
            raise
        except Exception as exc:  # noqa: BLE001 - a loader bug must not look like a crash
            raise BundleError(
                f"{path}: cannot load the bundle ({type(exc).__name__}: {exc})"
            ) from None
        warm_up(bundle, path)
        return bundle


def warm_up(bundle: Bundle, path: Path) -> None:
    """Run one gray image through a freshly loaded bundle before it serves.

    Runtimes compile lazily (OpenVINO, ONNX Runtime's first run, SciPy's first import),
    so without this the first real image pays for it; and a bundle that verifies but
    cannot run is refused here, at start or at reload, not on the first part.
    """
    try:
        results = bundle.inspect([np.full((64, 64, 3), 128, dtype=np.uint8)], paths=[None])
        if len(results) != 1:
            raise RuntimeError(f"{len(results)} results for 1 image")
    except Exception as exc:  # noqa: BLE001
        raise BundleError(
            f"{path}: the bundle loaded but failed a test inference ({type(exc).__name__}: {exc})"
        ) from None
