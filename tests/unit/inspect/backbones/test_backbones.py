"""Backbone registry: the embedded EfficientNet-Lite0 with real weights, tiny random
open_clip and DINOv2 models for every code path, weight files, the offline errors and the
CLI. No test downloads anything."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import torch

from defectkit.errors import BackboneError, ConfigError, WeightsNotFoundError
from defectkit.inspect import backbones as bb
from defectkit.inspect.backbones import create_backbone, list_backbones, tiny_config_overrides
from defectkit.inspect.backbones.registry import _REGISTRY

CAT_CLASSES = range(281, 286)  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat
TINY = ["ViT-B-16", "dinov2_vits14"]


# Every test sees an empty Hugging Face cache of its own and an unreachable Hub.
pytestmark = pytest.mark.usefixtures("empty_hf_cache")


@pytest.fixture(scope="module")
def effnet():
    return create_backbone("efficientnet_lite0")


def tiny(name: str, **kwargs) -> bb.FeatureExtractor:
    return create_backbone(
        name, pretrained=False, config_overrides=tiny_config_overrides(name), **kwargs
    )


def full_depth_layers(name: str) -> list[str]:
    depth = (
        tiny_config_overrides(name).get("depth")
        or tiny_config_overrides(name)["vision_cfg"]["layers"]
    )
    return [f"block{i}" for i in range(depth)] + (["embed"] if name.startswith("ViT") else [])


def full_state_dict(backbone: bb.FeatureExtractor) -> dict[str, torch.Tensor]:
    """What a weights file for this family holds (the whole open_clip model for CLIP)."""
    model = backbone.clip_model if backbone.text_aligned else backbone.model
    return {k: v.clone().contiguous() for k, v in model.state_dict().items()}


def check_outputs(backbone: bb.FeatureExtractor, batch: int = 2) -> dict[str, torch.Tensor]:
    h, w = backbone.preprocessing.input_size
    out = backbone(torch.randn(batch, 3, h, w))
    assert list(out) == [info.name for info in backbone.feature_info]
    for info in backbone.feature_info:
        assert out[info.name].shape == (batch, info.channels, h // info.stride, w // info.stride)
    return out


def assert_frozen(backbone: torch.nn.Module) -> None:
    backbone.train()  # a parent's .train() must not unfreeze it
    assert not backbone.training and not any(m.training for m in backbone.modules())
    assert not any(p.requires_grad for p in backbone.parameters())


# ------------------------------------------------------------------- registry


def test_importing_the_registry_imports_neither_open_clip_nor_timm():
    code = (
        "import sys, defectkit; assert 'torch' not in sys.modules\n"
        "import defectkit.inspect.backbones, defectkit.cli.backbones\n"
        "assert 'open_clip' not in sys.modules and 'timm' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_backbone_names_the_known_ones():
    with pytest.raises(BackboneError, match="efficientnet_lite0.*ViT-B-16.*dinov2_vits14"):
        create_backbone("resnet-9000")


def test_list_backbones_reports_what_is_on_this_machine():
    specs = {s.name: s for s in list_backbones()}
    assert {"efficientnet_lite0", "ViT-B-16", "ViT-L-14", "dinov2_vits14", "dinov2_vitb14"} <= set(
        specs
    )
    assert specs["efficientnet_lite0"].available_offline  # embedded in a pip package
    assert not specs["ViT-B-16"].available_offline  # the test's HF cache is empty
    assert specs["ViT-B-16"].text_aligned and not specs["dinov2_vits14"].text_aligned
    assert "inspect weights fetch ViT-B-16" in specs["ViT-B-16"].fetch_hint


def test_registry_hub_locations_agree_with_open_clip_and_timm():
    from defectkit.inspect.backbones import clip, dinov2

    for name, entry in _REGISTRY.items():
        if entry.family == "open_clip":
            assert entry.hub == clip.hub_file(name, entry.default_weights)
        elif entry.family == "dinov2":
            assert entry.hub == dinov2.hub_file(entry.options["arch"], entry.default_weights)


def test_the_registry_is_one_way():
    """Families share base and weights with the registry but never import it (no cycle)."""
    import inspect as pyinspect

    from defectkit.inspect.backbones import clip, dinov2, effnet

    for family in (clip, dinov2, effnet):
        assert "backbones.registry" not in pyinspect.getsource(family)
    assert all(":" in entry.target for entry in _REGISTRY.values())  # strings, resolved lazily


def test_weights_with_pretrained_false_is_a_config_error():
    with pytest.raises(ConfigError):
        create_backbone("efficientnet_lite0", pretrained=False, weights="x.pth")


# ------------------------------------------------------- embedded EfficientNet-Lite0


def test_effnet_default_maps_match_feature_info(effnet):
    assert [(i.name, i.channels, i.stride) for i in effnet.feature_info] == [
        ("s4", 24, 4),
        ("s8", 40, 8),
        ("s16", 112, 16),
    ]
    check_outputs(effnet)
    assert_frozen(effnet)
    assert effnet.weights_id == "efficientnet-lite0-57934424.pth sha256:579344248a93e230"
    assert effnet.preprocessing == bb.Preprocessing((224, 224), (0.5,) * 3, (0.5,) * 3, "bilinear")


def test_effnet_batch_norms_are_folded_without_changing_the_maps(effnet):
    """Every BatchNorm of the feature extractor is folded into its convolution (faster
    on the CPU); the folded network computes the same maps as the network as loaded."""
    import copy

    from defectkit.inspect.backbones.effnet import create_classifier, fold_batch_norms

    assert not [m for m in effnet.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    loaded = create_classifier().eval()
    folded = copy.deepcopy(loaded)
    assert fold_batch_norms(folded) == sum(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in loaded.modules()
    )
    torch.manual_seed(0)
    x = torch.rand(2, 3, 96, 160) * 2 - 1
    with torch.no_grad():
        want = loaded.forward_intermediates(x, indices=[1, 2, 3], intermediates_only=True)
        got = folded.forward_intermediates(x, indices=[1, 2, 3], intermediates_only=True)
    for a, b in zip(want, got, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4 * float(a.abs().max()))


def test_effnet_s2_and_s32_are_selectable():
    backbone = create_backbone("efficientnet_lite0", layers=["s32", "s2"])
    assert [(i.name, i.channels, i.stride) for i in backbone.feature_info] == [
        ("s32", 320, 32),
        ("s2", 16, 2),
    ]
    check_outputs(backbone, batch=1)
    with pytest.raises(BackboneError, match="s2, s4, s8, s16, s32"):
        create_backbone("efficientnet_lite0", layers=["s64"])


def _chelsea_top5(classifier: torch.nn.Module) -> list[int]:
    from skimage import data

    from defectkit.core.images import preprocess
    from defectkit.inspect.backbones.effnet import PREPROCESSING

    x = torch.from_numpy(preprocess(data.chelsea(), PREPROCESSING.input_size))
    x = (x - torch.tensor(PREPROCESSING.mean).view(1, 3, 1, 1)) / torch.tensor(
        PREPROCESSING.std
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        return classifier(x)[0].topk(5).indices.tolist()


def test_effnet_weights_are_real_imagenet_weights():
    from defectkit.inspect.backbones.effnet import create_classifier

    top5 = _chelsea_top5(create_classifier())
    assert top5[0] in CAT_CLASSES and len(set(top5) & set(CAT_CLASSES)) >= 3, top5
    torch.manual_seed(0)
    assert not set(_chelsea_top5(create_classifier(pretrained=False))) & set(CAT_CLASSES)


def test_effnet_normalisation_is_the_one_its_batchnorm_saw():
    """With the right input normalisation the stem's batch statistics on natural images
    match the stored BatchNorm running statistics (TF-Lite's [-1, 1] beats ImageNet's)."""
    from skimage import data

    from defectkit.core.images import preprocess
    from defectkit.inspect.backbones.effnet import create_classifier

    model = create_classifier()
    images = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]
    x = torch.from_numpy(preprocess(images, (224, 224)))
    bn = model.bn1

    def stem_errors(mean, std) -> tuple[float, float]:
        """(|batch mean - running mean| in running stds, |log batch var / running var|)."""
        xn = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        with torch.no_grad():
            y = model.conv_stem(xn)
        var = bn.running_var + bn.eps
        mean_err = (y.mean((0, 2, 3)) - bn.running_mean).abs() / var.sqrt()
        var_err = (y.var((0, 2, 3)).add(bn.eps) / var).log().abs()
        return float(mean_err.mean()), float(var_err.mean())

    tf_lite = stem_errors((0.5,) * 3, (0.5,) * 3)
    imagenet = stem_errors((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert tf_lite[0] < imagenet[0] and tf_lite[1] < 0.6 * imagenet[1], (tf_lite, imagenet)


def test_effnet_weights_that_do_not_fit_fail_loudly():
    from defectkit.inspect.backbones.effnet import _create_timm_classifier, load_mapped_state_dict

    model = _create_timm_classifier()
    good = dict(model.state_dict())
    bad = dict(good)
    bad["conv_stem.weight"] = torch.zeros(16, 3, 3, 3)
    with pytest.raises(BackboneError, match="conv_stem.weight"):
        load_mapped_state_dict(model, bad, "bad.pth")
    with pytest.raises(BackboneError, match="295 tensors"):
        load_mapped_state_dict(model, dict(list(good.items())[:-1]), "short.pth")


def test_effnet_refuses_tags():
    with pytest.raises(BackboneError, match="no pretrained tags"):
        create_backbone("efficientnet_lite0", weights="imagenet")


# ------------------------------------------------ tiny open_clip and DINOv2 models


@pytest.mark.parametrize("name", TINY)
def test_tiny_maps_match_feature_info(name):
    backbone = tiny(name)
    assert backbone.weights_id == "random"
    assert [i.name for i in backbone.feature_info] == ["block0", "block1", "block2"]
    assert all(i.stride == (8 if name.startswith("ViT") else 14) for i in backbone.feature_info)
    check_outputs(backbone)
    assert_frozen(backbone)


@pytest.mark.parametrize("name", TINY)
def test_tiny_layer_selection(name):
    backbone = tiny(name, layers=["block3", "block1"])
    assert [i.name for i in backbone.feature_info] == ["block3", "block1"]
    check_outputs(backbone, batch=1)
    with pytest.raises(BackboneError, match="block0, block1"):
        tiny(name, layers=["block9"])
    with pytest.raises(BackboneError, match="twice"):
        tiny(name, layers=["block1", "block1"])


def test_clip_embed_map_and_text_encoder_share_one_space():
    backbone = tiny("ViT-B-16", layers=["block2", "embed"])
    info = {i.name: i for i in backbone.feature_info}
    assert info["embed"].channels == backbone.embed_dim == 16
    check_outputs(backbone)
    text = backbone.encode_text(["a scratch on metal", "a dent"])
    assert text.shape == (2, backbone.embed_dim)
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(2))
    # The text tower stays out of the module tree, hence out of state dicts and exports.
    assert not any(
        k.startswith("transformer.") or "token_embedding" in k for k in backbone.state_dict()
    )


def test_clip_exportable_attention_block_equals_open_clips_default():
    """The tower uses open_clip's SDPA block (exportable); same weights, same numbers."""
    layers = full_depth_layers("ViT-B-16")
    exportable = tiny("ViT-B-16", layers=layers)
    overrides = tiny_config_overrides("ViT-B-16")
    overrides["vision_cfg"]["block_type"] = "default"  # nn.MultiheadAttention
    default = create_backbone(
        "ViT-B-16", pretrained=False, layers=layers, config_overrides=overrides
    )
    assert type(default.visual.transformer.resblocks[0]) is not type(
        exportable.visual.transformer.resblocks[0]
    )
    default.visual.load_state_dict(exportable.visual.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(default(x), exportable(x), rtol=1e-5, atol=1e-5)


def _save(state: dict[str, torch.Tensor], path) -> None:
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)


@pytest.mark.parametrize(
    ("name", "filename"),
    [("ViT-B-16", "open_clip_pytorch_model.bin"), ("dinov2_vits14", "model.safetensors")],
)
def test_weights_from_a_file_and_a_folder_give_identical_features(name, filename, tmp_path):
    layers = full_depth_layers(name)
    source = tiny(name, layers=layers)
    folder = tmp_path / "weights"
    folder.mkdir()
    _save(full_state_dict(source), folder / filename)
    x = torch.randn(2, 3, *source.preprocessing.input_size)
    expected = source(x)
    for weights in (folder / filename, str(folder)):
        loaded = create_backbone(
            name, weights=weights, layers=layers, config_overrides=tiny_config_overrides(name)
        )
        assert loaded.weights_id.startswith(f"{filename} sha256:")
        assert_frozen(loaded)
        for key, value in loaded(x).items():
            torch.testing.assert_close(value, expected[key], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("name", "repo", "filename"),
    [
        ("ViT-B-16", "timm/vit_base_patch16_clip_224.openai", "open_clip_model.safetensors"),
        ("dinov2_vits14", "timm/vit_small_patch14_dinov2.lvd142m", "model.safetensors"),
    ],
)
def test_tag_is_found_in_the_hugging_face_cache(name, repo, filename, empty_hf_cache):
    layers = full_depth_layers(name)
    source = tiny(name, layers=layers)
    repo_dir = empty_hf_cache / f"models--{repo.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("0" * 40)
    _save(full_state_dict(source), snapshot / filename)
    assert {s.name: s for s in list_backbones()}[name].available_offline
    for weights in (None, _REGISTRY[name].default_weights):
        loaded = create_backbone(
            name, weights=weights, layers=layers, config_overrides=tiny_config_overrides(name)
        )
        assert loaded.weights_id.startswith(f"{_REGISTRY[name].default_weights} sha256:")
        x = torch.randn(1, 3, *source.preprocessing.input_size)
        torch.testing.assert_close(loaded(x), source(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", TINY)
def test_missing_weights_name_the_file_and_the_fetch_command(name, tmp_path):
    overrides = tiny_config_overrides(name)
    with pytest.raises(WeightsNotFoundError, match=f"inspect weights fetch {name}") as err:
        create_backbone(name, config_overrides=overrides)  # default tag, empty cache
    assert _REGISTRY[name].hub.repo_id in str(err.value)
    with pytest.raises(WeightsNotFoundError, match=f"inspect weights fetch {name}"):
        create_backbone(name, weights=tmp_path / "nowhere.safetensors", config_overrides=overrides)
    with pytest.raises(WeightsNotFoundError, match="expected one of"):
        create_backbone(name, weights=tmp_path, config_overrides=overrides)  # empty folder


def test_dinov2_position_embeddings_are_resampled_to_the_input_size(tmp_path):
    """DINOv2 files are made at 518 px; the backbone runs at 224: the grid is resampled."""
    layers = full_depth_layers("dinov2_vits14")
    source = create_backbone(
        "dinov2_vits14",
        pretrained=False,
        layers=layers,
        config_overrides={**tiny_config_overrides("dinov2_vits14"), "img_size": 98},
    )
    _save(full_state_dict(source), tmp_path / "model.safetensors")
    loaded = create_backbone(
        "dinov2_vits14", weights=tmp_path, config_overrides=tiny_config_overrides("dinov2_vits14")
    )
    assert loaded.preprocessing.input_size == (56, 56)
    check_outputs(loaded)
    torch.testing.assert_close(
        loaded.model.blocks[0].attn.qkv.weight, source.model.blocks[0].attn.qkv.weight
    )


def test_weights_of_another_architecture_are_refused(tmp_path):
    source = tiny("dinov2_vits14", layers=full_depth_layers("dinov2_vits14"))
    _save(full_state_dict(source), tmp_path / "model.safetensors")
    with pytest.raises(BackboneError, match="do not fit"):
        create_backbone("dinov2_vits14", weights=tmp_path, config_overrides={"img_size": 56})


def test_any_open_clip_vit_name_works():
    backbone = tiny("ViT-B-32")
    assert backbone.name == "ViT-B-32" and backbone.text_aligned
    check_outputs(backbone, batch=1)


# ------------------------------------------------------------------ ONNX export


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # fixed input size: intended
@pytest.mark.parametrize("name", ["efficientnet_lite0", *TINY])
def test_feature_maps_export_to_onnx_and_match(name):
    ort = pytest.importorskip("onnxruntime")
    if name == "efficientnet_lite0":
        backbone = create_backbone(name)
    else:
        backbone = tiny(name, layers=["block1", "embed"] if name.startswith("ViT") else None)
    x = torch.randn(1, 3, *backbone.preprocessing.input_size)
    names = [i.name for i in backbone.feature_info]
    buffer = io.BytesIO()
    torch.onnx.export(backbone, (x,), buffer, input_names=["x"], output_names=names, dynamo=False)
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    got = session.run(names, {"x": x.numpy()})
    expected = backbone(x)
    for key, value in zip(names, got, strict=True):
        np.testing.assert_allclose(value, expected[key].numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size", [(64, 96), (63, 96), (65, 65)])
@pytest.mark.parametrize(("kernel", "stride", "groups"), [(3, 2, 1), (3, 2, 8), (5, 2, 8), (3, 1, 8)])
def test_same_padded_convolutions_give_conv2d_same_sums_without_the_copy(size, kernel, stride, groups):
    # Even sizes pad one more after than before (a zero tap instead), odd sizes and
    # stride 1 pad symmetrically; each gives timm's Conv2dSame numbers, bit for bit.
    from timm.layers.conv2d_same import Conv2dSame

    from defectkit.inspect.backbones.effnet import SamePaddedConv

    torch.manual_seed(0)
    conv = Conv2dSame(8, 16 if groups == 1 else 8, kernel, stride=stride, groups=groups).eval()
    x = torch.randn(1, 8, *size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(SamePaddedConv(conv)(x), conv(x))


def test_every_same_convolution_of_lite0_pads_inside_the_convolution():
    from timm.layers.conv2d_same import Conv2dSame

    from defectkit.inspect.backbones.effnet import SamePaddedConv

    backbone = create_backbone("efficientnet_lite0")
    wrapped = [m.conv for m in backbone.model.modules() if isinstance(m, SamePaddedConv)]
    bare = [m for m in backbone.model.modules() if isinstance(m, Conv2dSame)]
    assert wrapped and all(any(m is w for w in wrapped) for m in bare)  # the stem and the 3 strided stages
