"""Saved inspectors: a folder with ``config.json`` and ``heads.safetensors``. No pickles.

The backbone's weights are not copied: the folder names the backbone and the SHA-256
of its weights, and loading checks that the same weights are found on this machine, so
a model folder stays small and can never run on silently different features.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from defectkit import __version__
from defectkit.core.caption import CaptionContext
from defectkit.core.files import atomic_directory, sha256_file
from defectkit.core.head import Head
from defectkit.core.results import Thresholds
from defectkit.core.tiling import TileSpec
from defectkit.errors import ConfigError, ModelFormatError
from defectkit.inspect.config import InspectorConfig
from defectkit.inspect.model import InspectorModel

FORMAT = "defectkit-inspector"
#: 2 added the caption head's ``caption.vocab_embeddings`` and ``captions`` (shots in
#: prototype order with their notes, the vocabulary), and the anomaly head's grain
#: statistic (``anomaly.grain_center``; ``stat_ref[2]`` now refers to it, where version 1
#: had the mean detail excess). A version-1 folder's references no longer mean what the
#: head computes, so it is refused with "refit" rather than loaded into wrong scores.
#: 3: region descriptors grew from 2 D to 3 D + 2 values (feature spread and region
#: shape, see :mod:`defectkit.fewshot.prototypes`); older prototypes do not fit the head.
#: 4: tiles at native resolution; the tensors are the feature standardisation and the
#: two memory banks, and ``head`` (the numpy head: evidence, references, prototypes,
#: vocabulary) and ``tiles`` sit in config.json. Older folders are refused: refit.
FORMAT_VERSION = 4
READABLE_VERSIONS = (4,)
CONFIG_FILE = "config.json"
TENSORS_FILE = "heads.safetensors"


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the numbers, for manifests and configs."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"defectkit": __version__}
    for name in ("torch", "timm", "open_clip_torch", "numpy", "onnx", "onnxruntime", "openvino"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def save_inspector(inspector, directory: str | Path) -> Path:
    """Write a fitted inspector (or InspectorModel) to ``directory`` (atomically: temp
    folder, then rename)."""
    model = getattr(inspector, "model", inspector)
    model.require_fitted()
    tensors = model.fitted_state()
    with atomic_directory(directory, marker=CONFIG_FILE) as tmp:
        save_file(tensors, str(tmp / TENSORS_FILE))
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "config": model.config.to_dict(),
            "backbone": {"name": model.backbone.name, "weights_id": model.backbone.weights_id},
            "input_size": list(model.input_size),
            "tiles": model.tiles.to_dict(),
            "head": model.head.to_dict(),
            "preprocessing": {
                "mean": model.mean.flatten().tolist(),
                "std": model.std.flatten().tolist(),
                "interpolation": model.backbone.preprocessing.interpolation,
            },
            "classes": list(model.classes),
            "thresholds": model.thresholds.to_dict(),
            "captions": model.caption_context.to_dict(),
            "support": model.support_summary,
            "versions": package_versions(),
            "sha256": {TENSORS_FILE: sha256_file(tmp / TENSORS_FILE)},
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    return Path(directory)


def read_config(directory: str | Path) -> dict:
    """Parse and check ``config.json`` of a saved inspector (format, version, hashes)."""
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not directory.is_dir():
        raise ModelFormatError(f"{directory}: no such model folder (create one with `inspect fit`)")
    if not path.is_file():
        raise ModelFormatError(f"{directory}: not a model folder ({CONFIG_FILE} is missing)")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFormatError(f"{directory}: not a defectkit inspector folder")
    if config.get("format_version") not in READABLE_VERSIONS:
        raise ModelFormatError(
            f"{directory}: format version {config.get('format_version')} is not supported by "
            f"defectkit {__version__} (reads versions {', '.join(map(str, READABLE_VERSIONS))}); "
            "refit with this version"
        )
    tensors = directory / TENSORS_FILE
    if not tensors.is_file():
        raise ModelFormatError(f"{directory}: {TENSORS_FILE} is missing; the folder is incomplete")
    expected = config.get("sha256", {}).get(TENSORS_FILE)
    if expected != sha256_file(tensors):
        raise ModelFormatError(f"{tensors}: checksum mismatch; the file was changed or truncated")
    return config


def load_inspector(directory: str | Path):
    """Rebuild a fitted :class:`~defectkit.inspect.inspector.Inspector` from its folder."""
    from defectkit.inspect.inspector import Inspector

    directory = Path(directory)
    meta = read_config(directory)
    try:
        model = InspectorModel(InspectorConfig.from_dict(meta["config"]))
        model.set_tiles(TileSpec.from_dict(meta["tiles"]))
        found = model.backbone.weights_id
        if found != meta["backbone"]["weights_id"]:
            raise ModelFormatError(
                f"{directory}: fitted with backbone weights {meta['backbone']['weights_id']}, "
                f"but this machine has {found}; install the same weights or refit"
            )
        tensors = load_file(str(directory / TENSORS_FILE))
        expected = set(model.fitted_state())
        if set(tensors) != expected:
            raise ModelFormatError(
                f"{directory}: {TENSORS_FILE} holds {sorted(set(tensors) ^ expected)} "
                "unexpectedly; it does not belong to this configuration"
            )
        model.load_fitted_state(tensors)
        model.classes = tuple(meta["classes"])
        model.thresholds = Thresholds.from_dict(meta["thresholds"])
        model.support_summary = meta.get("support", {})
        model.caption_context = CaptionContext.from_dict(meta.get("captions"))
        model.head = Head.from_dict(meta["head"])
    except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as exc:
        raise ModelFormatError(f"{directory}: {CONFIG_FILE} is incomplete or inconsistent ({exc})") from None
    _check_consistent(model, directory)
    return Inspector.from_model(model)


def _check_consistent(model: InspectorModel, directory: Path) -> None:
    """The loaded buffers and head fit each other and the configuration, or ModelFormatError."""
    head, dim = model.head, model.features.dim
    if tuple(head.classes.classes) != tuple(model.classes):
        raise ModelFormatError(f"{directory}: class list and class head disagree")
    if len(head.classes.center) != 4 * dim + 2:
        raise ModelFormatError(f"{directory}: the class head does not match the backbone layers; refit")
    for name, bank in (("memory bank", model.bank), ("defect bank", model.defect_bank)):
        if bank.shape[0] and bank.shape[1] != dim:
            raise ModelFormatError(f"{directory}: {name} dimension does not match the backbone layers")
    if (head.scoring is None) == model.has_verdict:
        raise ModelFormatError(f"{directory}: the memory bank and the head's scoring disagree")
    context, n_prototypes = model.caption_context, len(head.classes.labels)
    if context.shot_labels and len(context.shot_labels) != n_prototypes:
        raise ModelFormatError(f"{directory}: {len(context.shot_labels)} shots for {n_prototypes} prototypes")
