"""``export_bundle``: model files + manifest, self-checked, written atomically.

Order of work: export the graph into a temporary folder beside the target, hash the
files and write the manifest, load that folder with the real runtime and compare it with
PyTorch (:mod:`.selfcheck`), record what was measured, and only then rename the folder
into place. A failed export leaves nothing behind (and an older bundle at the same path
untouched).
"""

from __future__ import annotations

import datetime as _dt
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from defectkit.core.files import atomic_directory
from defectkit.errors import ConfigError
from defectkit.exporters import selfcheck as sc
from defectkit.exporters.bundle import (
    ENTRY_FILES,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    PRECISIONS,
    TARGETS,
    hash_files,
    write_manifest,
)
from defectkit.exporters.onnx_export import (
    DYNAMIC_BATCH_LIMIT,
    INPUT_NAME,
    convert_onnx_to_fp16,
    export_onnx,
    model_of,
)
from defectkit.exporters.openvino_export import convert_onnx_to_openvino
from defectkit.inspect.model import InspectorModel
from defectkit.inspect.saved import package_versions


def build_manifest(model: InspectorModel, *, target: str, precision: str, files: dict) -> dict[str, Any]:
    """Everything a line-side PC needs to run and trust the model, as plain JSON."""
    pre = model.backbone.preprocessing
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "target": target,
        "precision": precision,
        # "inspect": a verdict from the anomaly score; "type_only": fitted without good
        # shots, the model sorts defects into types and judges nothing good or defective.
        "mode": "inspect" if model.has_verdict else "type_only",
        "input_size": list(model.input_size),
        "tiles": model.tiles.to_dict(),
        "input_name": INPUT_NAME,
        "input": {
            "layout": "NCHW",
            "dtype": "float32",
            "range": [0.0, 1.0],
            "batch": f"dynamic, 1..{DYNAMIC_BATCH_LIMIT}",
        },
        "preprocessing": {
            "function": "defectkit.core.tiling.cut_tiles",
            "resize": "region of interest, Pillow bilinear by tiles.scale keeping the aspect, "
            "reflect-padded, cut into input_size tiles, then /255",
            "interpolation": pre.interpolation,
            # Applied inside the graph (buffers of the model), listed for reference.
            "normalisation": "in_graph",
            "mean": [float(v) for v in model.mean.flatten().tolist()],
            "std": [float(v) for v in model.std.flatten().tolist()],
        },
        "output_names": list(model.output_names),
        "classes": list(model.classes),
        "thresholds": model.thresholds.to_dict(),
        # The numpy head after the graph (core.head): evidence, references, prototypes.
        "head": model.head.to_dict(),
        # Caption context: the vocabulary in the order of ``vocab_scores`` (its text
        # embeddings are in the head) and the shots in the order of
        # ``prototype_similarity``, with their notes.
        **model.caption_context.to_dict(),
        "backbone": {"name": model.backbone.name, "weights_id": model.backbone.weights_id},
        "inspector_config": model.config.to_dict(),
        "support": model.support_summary,
        "versions": package_versions(),
        "files": files,
    }


def _write_model(model, folder: Path, *, target: str, precision: str) -> None:
    with tempfile.TemporaryDirectory(prefix="defectkit-export-") as work:
        fp32 = export_onnx(model, Path(work) / "model.onnx")
        entry = folder / ENTRY_FILES[target]
        if target == "openvino":
            convert_onnx_to_openvino(fp32, entry, precision=precision)
        elif precision == "fp16":
            convert_onnx_to_fp16(fp32, entry)
        else:
            # The dynamo exporter may write weights beside the graph (huge models only).
            for file in Path(work).iterdir():
                file.replace(folder / file.name)


def export_bundle(
    inspector,
    out_dir: str | Path,
    *,
    target: str,
    precision: str = "fp32",
    check_images: Sequence[np.ndarray] | None = None,
    device: str = "CPU",
) -> Path:
    """Export a fitted inspector to a verified bundle folder.

    Args:
        inspector: a fitted :class:`~defectkit.inspect.inspector.Inspector` (or its
            InspectorModel).
        out_dir: the bundle folder to write (replaced if it holds an older bundle).
        target: ``"openvino"`` or ``"onnx"``.
        precision: ``"fp32"`` or ``"fp16"`` (weights and arithmetic; see the tolerances
            in :mod:`.selfcheck`).
        check_images: H x W x 3 images for the self-check, ideally the support images;
            flipped, rotated and noised copies are added. Default: generated textures.
        device: where the self-check runs the exported model.

    Returns:
        ``out_dir``.

    Raises:
        NotFittedError: the inspector was never fitted.
        BundleError: the exported model disagrees with PyTorch (nothing is written).
    """
    if target not in TARGETS:
        raise ConfigError(f"unknown export target {target!r}; use one of: {', '.join(TARGETS)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of: {', '.join(PRECISIONS)}")
    model = model_of(inspector)
    base = list(check_images) if check_images else sc.default_check_images(model.input_size)
    images = sc.check_images(base)

    from defectkit.exporters.runtime import load_bundle
    from defectkit.inspect.inspector import Inspector

    with atomic_directory(out_dir, marker=MANIFEST) as tmp:
        _write_model(model, tmp, target=target, precision=precision)
        manifest = build_manifest(model, target=target, precision=precision, files=hash_files(tmp))
        write_manifest(tmp, manifest)
        check = sc.run_selfcheck(
            Inspector.from_model(model), load_bundle(tmp, device=device), images,
            precision=precision,
        )
        manifest["selfcheck"] = check.to_dict()
        write_manifest(tmp, manifest)
    return Path(out_dir)
