"""The bundle being served, and hot reload without dropping a request.

A reload verifies and loads the new bundle *beside* the old one; only when that
succeeded is one reference swapped. Workers read the reference once per batch, so a
batch always runs on one bundle from start to finish, and the old bundle is freed when
its last batch ends. A refused bundle (tampered, partial, unknown format, unsigned
when keys are trusted) leaves the old one serving.

A reload without a path always loads ``--bundle`` as given, resolving its symlink
again: a ``current`` link switched to a new release is what gets loaded, never the
folder an earlier ``POST /v1/reload {"path": ...}`` named. The resolved folder is what
is loaded, so switching the link while a reload reads the files cannot mix releases.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from defectkit.errors import BundleError, DefectkitError
from defectkit.exporters.signing import TrustedKey, verify_bundle


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


@dataclass(frozen=True)
class Reloaded:
    """What a reload did: the ids before and after, the path asked for and its folder."""

    previous: str
    bundle_id: str
    path: Path  # as given (``--bundle`` or the request's path)
    resolved: Path  # the folder actually loaded (the symlink's target at that moment)
    signed_by: str | None = None  # key id, when keys are trusted


class BundleHolder:
    """The current bundle, the ``--bundle`` path it came from, and serialised reloads.

    Args:
        path: ``--bundle`` as given (often a ``current`` symlink); a reload without a
            path loads it again.
        trusted: public keys; when given, only bundles signed by one of them load.
    """

    def __init__(
        self, path: Path, *, loader: Loader = load_runtime_bundle, device: str = "CPU",
        streams: int = 1, trusted: Sequence[TrustedKey] = (),
    ):  # fmt: skip
        self.loader = loader
        self.device, self.streams = device, streams
        self.trusted = list(trusted)
        self.configured = Path(path)
        self.path = self.configured.resolve()
        self.current, self.signed_by = self._load(self.path)
        self._reload_lock = threading.Lock()

    @property
    def id(self) -> str:
        return self.current.id

    def reload(self, path: Path | None = None) -> Reloaded:
        """Load ``path`` (default: ``--bundle`` as given, its symlink resolved anew)
        and swap it in.

        Raises:
            BundleError: the new bundle was refused; the old one keeps serving.
        """
        with self._reload_lock:
            asked = Path(path) if path is not None else self.configured
            resolved = asked.resolve()
            new, signer = self._load(resolved)
            previous = self.current
            self.current, self.path, self.signed_by = new, resolved, signer
            return Reloaded(previous.id, new.id, asked, resolved, signer)

    def _load(self, path: Path) -> tuple[Bundle, str | None]:
        verified = verify_bundle(path, self.trusted) if self.trusted else None
        try:
            bundle = self.loader(path, device=self.device, streams=self.streams)
        except DefectkitError:
            raise
        except Exception as exc:  # noqa: BLE001 - a loader bug must not look like a crash
            raise BundleError(
                f"{path}: cannot load the bundle ({type(exc).__name__}: {exc})"
            ) from None
        if verified is not None and bundle.manifest != verified.manifest:
            raise BundleError(
                f"{path}: manifest.json changed between the signature check and loading; "
                "refused (was the bundle being copied?)"
            )
        warm_up(bundle, path)
        return bundle, verified.key_id if verified else None


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
