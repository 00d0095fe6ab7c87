"""DINOv2 ViTs through timm, as patch-grid feature extractors.

``dinov2_vits14`` is timm's ``vit_small_patch14_dinov2`` with the ``lvd142m`` weights, and
so on. The input is 224 x 224 by default (a 16 x 16 grid of 14-pixel patches) rather than
DINOv2's 518: the position embeddings are resampled when the weights load (timm's
``checkpoint_filter_fn``), which also converts the original ``dinov2_vit*14_pretrain.pth``
files from Meta. Maps are the patch tokens of chosen blocks, prefix tokens (CLS,
registers) dropped, named ``block{i}`` (0-based), without the final LayerNorm.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

import torch
from torch import nn

from defectkit.errors import BackboneError
from defectkit.inspect.backbones.base import (
    FeatureExtractor,
    FeatureInfo,
    HubFile,
    Preprocessing,
    default_blocks,
    freeze,
    select_layers,
)
from defectkit.inspect.backbones.weights import (
    TIMM_FILES,
    load_weights_file,
    looks_like_path,
    resolve_cached_weights,
    resolve_local_weights,
    weights_id,
)

DEFAULT_TAG = "lvd142m"
INPUT_SIZE = 224


def _pretrained_cfg(arch: str, tag: str) -> dict:
    import timm

    cfg = timm.models.get_pretrained_cfg(f"{arch}.{tag}")
    if cfg is None:
        tags = [n.split(".", 1)[1] for n in timm.list_pretrained(f"{arch}.*")]
        raise BackboneError(
            f"{arch}: {tag!r} is neither an existing file or folder nor a weights tag timm "
            f"knows ({', '.join(tags)})"
        )
    return cfg.to_dict()


def hub_file(arch: str, tag: str = DEFAULT_TAG) -> HubFile:
    """Where timm says the ``tag`` weights of timm architecture ``arch`` live on the Hub."""
    cfg = _pretrained_cfg(arch, tag)
    files = (cfg["hf_hub_filename"],) if cfg.get("hf_hub_filename") else TIMM_FILES
    return HubFile(cfg["hf_hub_id"], files)


class Dinov2Features(FeatureExtractor):
    """Patch-token grids of a timm DINOv2 ViT: ``{"block{i}": N x D x H/14 x W/14}``."""

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str,
        layers: tuple[str, ...],
        preprocessing: Preprocessing,
        weights_id: str,
    ) -> None:
        super().__init__()
        block_of = {layer: int(layer[len("block") :]) for layer in layers}
        self._indices = sorted(set(block_of.values()))
        # Later blocks and the head are dropped: never computed, never exported. The final
        # norm stays (a few hundred numbers) so a full-depth model keeps timm's state dict.
        model.prune_intermediate_layers(self._indices, prune_norm=False, prune_head=True)
        self._take = tuple((layer, self._indices.index(block_of[layer])) for layer in layers)
        self.model = model
        self.name = name
        self.preprocessing = preprocessing
        self.weights_id = weights_id
        self.text_aligned = False
        patch = model.patch_embed.patch_size[0]
        self.feature_info = tuple(FeatureInfo(layer, model.embed_dim, patch) for layer in layers)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """N x 3 x H x W normalised (H, W = ``preprocessing.input_size``) -> patch grids."""
        feats = self.model.forward_intermediates(
            x, indices=self._indices, stop_early=True, intermediates_only=True, output_fmt="NCHW"
        )
        return {layer: feats[pos] for layer, pos in self._take}


def _load(model: nn.Module, name: str, arch: str, weights, tag: str, url: str | None) -> str:
    """Load the weights into ``model``; returns the weights id."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    if weights is not None and looks_like_path(weights):
        # The original Meta file name is accepted beside timm's Hub names.
        extra = (posixpath.basename(url),) if url else ()
        path = resolve_local_weights(weights, name=name, filenames=TIMM_FILES + extra)
        label = path.name
    else:
        tag = weights or tag
        path = resolve_cached_weights(hub_file(arch, tag), name=name, tag=tag)
        label = tag
    state = checkpoint_filter_fn(load_weights_file(path), model)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BackboneError(f"{name}: weights {path} do not fit the model: {exc}") from exc
    return weights_id(label, path)


def create(
    *,
    name: str,
    arch: str,
    weights=None,
    pretrained: bool = True,
    layers: Sequence[str] | None = None,
    config_overrides: dict | None = None,
) -> Dinov2Features:
    """Frozen DINOv2 feature extractor (see ``registry.create_backbone``).

    Args:
        name: the registry name, e.g. ``"dinov2_vits14"``.
        arch: the timm architecture, e.g. ``"vit_small_patch14_dinov2"``.
        config_overrides: keyword arguments for ``timm.create_model`` (``img_size``,
            ``embed_dim``, ``depth``, ``num_heads``, ...); ``img_size`` sets the input size.
    """
    import timm

    tag = weights if isinstance(weights, str) and not looks_like_path(weights) else DEFAULT_TAG
    cfg = _pretrained_cfg(arch, tag)
    kwargs = {"img_size": INPUT_SIZE, **(config_overrides or {})}
    try:
        # pretrained=False: timm must not fetch anything; the weights are loaded below.
        model = timm.create_model(arch, pretrained=False, **kwargs)
    except TypeError as exc:
        raise BackboneError(f"{name}: bad config_overrides {config_overrides}: {exc}") from exc
    wid = _load(model, name, arch, weights, tag, cfg.get("url")) if pretrained else "random"
    freeze(model)
    depth = len(model.blocks)
    available = [f"block{i}" for i in range(depth)]
    default = [f"block{i}" for i in default_blocks(depth)]
    chosen = select_layers(layers, available, default, name)
    preprocessing = Preprocessing(
        input_size=tuple(model.patch_embed.img_size),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        interpolation=cfg.get("interpolation", "bicubic"),
    )
    return freeze(
        Dinov2Features(model, name=name, layers=chosen, preprocessing=preprocessing, weights_id=wid)
    )
