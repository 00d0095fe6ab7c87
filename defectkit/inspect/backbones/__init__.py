"""Frozen feature backbones: one contract (:mod:`.base`), one lazy registry (:mod:`.registry`).

Importing this package imports torch but neither open_clip nor timm; a family module
(:mod:`.effnet`, :mod:`.clip`, :mod:`.dinov2`) is imported when a backbone of that family
is built. Weight files: :mod:`.weights`.
"""

from defectkit.inspect.backbones.base import (
    BackboneSpec,
    FeatureExtractor,
    FeatureInfo,
    HubFile,
    Preprocessing,
)
from defectkit.inspect.backbones.registry import (
    DEFAULT_BACKBONE,
    create_backbone,
    hub_file_for,
    list_backbones,
    tiny_config_overrides,
)

__all__ = [
    "DEFAULT_BACKBONE",
    "BackboneSpec",
    "FeatureExtractor",
    "FeatureInfo",
    "HubFile",
    "Preprocessing",
    "create_backbone",
    "hub_file_for",
    "list_backbones",
    "tiny_config_overrides",
]
