"""open_clip vision towers as patch-grid feature extractors, with their text encoder.

Any open_clip model whose image tower is open_clip's own ``VisionTransformer`` and whose
text tower is built in (``ViT-B-16``, ``ViT-L-14``, ``ViT-B-32``, ...) works. Towers from
timm or Hugging Face transformers (SigLIP, XLM-R text, ...) are refused: building them
can reach for the network.

Maps are the patch tokens of chosen transformer blocks, CLS token dropped, as
N x width x (H/patch) x (W/patch) grids named ``block{i}`` (0-based). ``embed`` is the
last block's tokens through the CLIP head (``ln_post`` then ``proj``): patch features in
the joint image-text space, which the caption adapter compares with :meth:`encode_text`.

The weights tag (``openai`` by default for the registered names) decides QuickGELU and
the preprocessing. A weights file or folder is taken to hold the default tag's weights;
for other weights in a file, say what differs with ``config_overrides`` (e.g.
``{"quick_gelu": False}`` for LAION weights).
"""

from __future__ import annotations

import copy
import os
import posixpath
from collections.abc import Sequence

import torch
from torch import nn

from defectkit.errors import BackboneError, WeightsNotFoundError
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
    OPENCLIP_FILES,
    looks_like_path,
    resolve_cached_weights,
    resolve_local_weights,
    weights_id,
)


def _deep_merge(base: dict, overrides: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def hub_file(model_name: str, tag: str) -> HubFile:
    """Where open_clip says the ``tag`` weights of ``model_name`` live on the Hub."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model_name, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        raise BackboneError(
            f"{model_name}: {tag!r} is neither an existing file or folder nor a weights tag "
            f"open_clip knows ({', '.join(tags) or 'none'})"
        )
    if not cfg.get("hf_hub"):
        raise WeightsNotFoundError(
            f"{model_name} {tag!r} weights are not on the Hugging Face Hub; download "
            f"{cfg.get('url')} on a connected machine and pass the file as the weights"
        )
    # open_clip's convention: "org/repo/" (default file names) or "org/repo/file.bin".
    repo_id, filename = posixpath.split(cfg["hf_hub"])
    if not filename:
        return HubFile(repo_id, OPENCLIP_FILES)
    # An explicit file name: prefer its safetensors twin, as open_clip does.
    stem, ext = os.path.splitext(filename)
    names = (stem + ".safetensors", filename) if ext in (".bin", ".pth", ".pt") else (filename,)
    return HubFile(repo_id, names)


def default_tag(model_name: str) -> str | None:
    """The first pretrained tag open_clip lists for ``model_name`` (None if it has none)."""
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(model_name)
    return tags[0] if tags else None


def _check_builtin_towers(model_name: str, cfg: dict) -> None:
    if "timm_model_name" in cfg.get("vision_cfg", {}) or cfg.get("vision_cfg", {}).get(
        "attentional_pool"
    ):
        raise BackboneError(f"{model_name}: only open_clip's own ViT image towers are supported")
    if any(k in cfg.get("text_cfg", {}) for k in ("hf_model_name", "hf_tokenizer_name")):
        raise BackboneError(
            f"{model_name}: its text tower comes from Hugging Face transformers, which may "
            "download at build time; choose a model with a built-in text tower"
        )


class ClipVisionFeatures(FeatureExtractor):
    """Patch-token grids of an open_clip ViT image tower, plus the CLIP text encoder.

    Only the image tower is a submodule: the text tower is kept out of the module tree
    so it is neither in ``state_dict()`` nor in exported graphs (text embeddings are
    computed at fit time and baked into the model's buffers). ``.to(device)`` moves
    the image tower only; :meth:`encode_text` runs where the text tower is (CPU).
    """

    def __init__(
        self,
        clip_model: nn.Module,
        *,
        model_name: str,
        layers: tuple[str, ...],
        preprocessing: Preprocessing,
        weights_id: str,
    ) -> None:
        super().__init__()
        visual = clip_model.visual
        depth = len(visual.transformer.resblocks)
        width = visual.transformer.width
        patch = visual.patch_size[0]
        block_of = {name: int(name[len("block") :]) for name in layers if name != "embed"}
        if "embed" in layers:
            block_of["embed"] = depth - 1
        else:
            # Blocks after the deepest requested one are dropped: never computed, never exported.
            visual.transformer.prune_intermediate_layers([max(block_of.values())])
        self._indices = sorted(set(block_of.values()))
        self._take = tuple((name, self._indices.index(block_of[name])) for name in layers)
        self._patch = patch
        self.visual = visual
        # A tuple hides the full CLIP model (text tower) from nn.Module registration.
        self._clip = (clip_model,)
        self._tokenizer = None
        self._model_name = model_name
        self.name = model_name
        self.preprocessing = preprocessing
        self.weights_id = weights_id
        self.text_aligned = True
        self.embed_dim = int(visual.output_dim)
        self.feature_info = tuple(
            FeatureInfo(name, self.embed_dim if name == "embed" else width, patch)
            for name in layers
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """N x 3 x H x W normalised -> ``{name: N x C x H/patch x W/patch}``.

        H, W must equal ``preprocessing.input_size`` (learned position embeddings).
        """
        n, h, w = x.shape[0], x.shape[-2] // self._patch, x.shape[-1] // self._patch
        tokens = self.visual.forward_intermediates(
            x, indices=self._indices, stop_early=True, intermediates_only=True, output_fmt="NLC"
        )["image_intermediates"]
        out = {}
        for name, pos in self._take:
            t = tokens[pos]  # N x (h*w) x C, CLS already split off
            if name == "embed":
                t = self.visual.ln_post(t) @ self.visual.proj
            out[name] = t.transpose(1, 2).reshape(n, t.shape[-1], h, w)
        return out

    @property
    def clip_model(self) -> nn.Module:
        """The whole open_clip model (image and text towers; the image tower may be cut short)."""
        return self._clip[0]

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Texts -> T x embed_dim L2-normalised CLIP text embeddings (the ``embed`` space).

        Example prompts: ``"a photo of a scratch on a metal part"``. Tokenised with the
        BPE vocabulary bundled in open_clip (no download).
        """
        import open_clip

        clip_model = self._clip[0]
        if self._tokenizer is None:
            self._tokenizer = open_clip.get_tokenizer(
                self._model_name, context_length=clip_model.context_length
            )
        device = clip_model.token_embedding.weight.device
        tokens = self._tokenizer(list(texts)).to(device)
        return clip_model.encode_text(tokens, normalize=True)


def _local_names(model_name: str, tag: str | None) -> tuple[str, ...]:
    """File names to look for in a weights folder: the tag's Hub names, then open_clip's."""
    try:
        names = hub_file(model_name, tag).filenames if tag else ()
    except (BackboneError, WeightsNotFoundError):  # a tag without Hub files: the usual names
        names = ()
    return names + tuple(n for n in OPENCLIP_FILES if n not in names)


def _resolve(
    model_name: str, weights, pretrained: bool, registry_tag: str | None
) -> tuple[str | None, str | None, str]:
    """-> (tag deciding QuickGELU/preprocessing, checkpoint path or None, weights_id)."""
    tag = registry_tag or default_tag(model_name)
    if not pretrained:
        return tag, None, "random"
    if weights is not None and looks_like_path(weights):
        path = resolve_local_weights(
            weights, name=model_name, filenames=_local_names(model_name, tag)
        )
        return tag, str(path), weights_id(path.name, path)
    tag = weights or tag
    if tag is None:
        raise WeightsNotFoundError(
            f"{model_name} has no pretrained tag in open_clip; pass a weights file"
        )
    path = resolve_cached_weights(hub_file(model_name, tag), name=model_name, tag=tag)
    return tag, str(path), weights_id(tag, path)


def create(
    *,
    name: str,
    model_name: str,
    default_tag: str | None = None,
    weights=None,
    pretrained: bool = True,
    layers: Sequence[str] | None = None,
    config_overrides: dict | None = None,
    text_embedding: bool = False,
) -> ClipVisionFeatures:
    """Frozen open_clip image tower (see ``registry.create_backbone``).

    Args:
        name: the registry name (the open_clip model name for every open_clip entry).
        model_name: an open_clip model config name, e.g. ``"ViT-B-16"``.
        default_tag: the registry's tag when ``weights`` is None (else open_clip's first).
        config_overrides: merged (deeply) into open_clip's model config; keys as in
            open_clip's JSON configs (``embed_dim``, ``vision_cfg``, ``text_cfg``,
            ``quick_gelu``).
        text_embedding: also return ``embed`` (after ``layers``, default or chosen), for
            the caption head; the whole tower then runs.
    """
    import open_clip

    base = open_clip.get_model_config(model_name)
    if base is None:
        raise BackboneError(f"{model_name}: not an open_clip model config")
    _check_builtin_towers(model_name, base)
    tag, checkpoint, wid = _resolve(model_name, weights, pretrained, default_tag)
    tag_cfg = open_clip.get_pretrained_cfg(model_name, tag) if tag else {}
    cfg = _deep_merge(base, {"quick_gelu": bool(tag_cfg.get("quick_gelu", base.get("quick_gelu")))})
    # open_clip's "custom" block computes attention with F.scaled_dot_product_attention and
    # has the same parameters as the default nn.MultiheadAttention block, whose inference
    # fast path (aten::_native_multi_head_attention) cannot be exported to ONNX.
    cfg = _deep_merge(cfg, {"vision_cfg": {"block_type": "custom"}})
    cfg = _deep_merge(cfg, config_overrides or {})
    _check_builtin_towers(model_name, cfg)
    custom_text = bool(cfg.pop("custom_text", False))
    try:
        clip_model = open_clip.create_model(
            model_name,
            pretrained=checkpoint,
            pretrained_image=False,
            pretrained_text=False,
            force_custom_text=custom_text,
            **cfg,
        )
    except Exception as exc:  # strict load: the weights do not fit this architecture
        raise BackboneError(f"{model_name}: cannot build with weights {checkpoint}: {exc}") from exc
    if not isinstance(clip_model.visual, open_clip.transformer.VisionTransformer):
        raise BackboneError(f"{model_name}: only open_clip's own ViT image towers are supported")
    freeze(clip_model)
    depth = len(clip_model.visual.transformer.resblocks)
    available = [f"block{i}" for i in range(depth)] + ["embed"]
    default = [f"block{i}" for i in default_blocks(depth)]
    chosen = select_layers(layers, available, default, model_name)
    if text_embedding and "embed" not in chosen:
        chosen = (*chosen, "embed")
    preprocessing = Preprocessing(
        input_size=tuple(clip_model.visual.image_size),
        mean=tuple(tag_cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        std=tuple(tag_cfg.get("std", open_clip.OPENAI_DATASET_STD)),
        interpolation=tag_cfg.get("interpolation", "bicubic"),
    )
    return freeze(
        ClipVisionFeatures(
            clip_model,
            model_name=model_name,
            layers=chosen,
            preprocessing=preprocessing,
            weights_id=wid,
        )
    )
