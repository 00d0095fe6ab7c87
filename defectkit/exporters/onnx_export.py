"""Export ``Inspector.forward`` to ONNX: one input ``image``, named outputs, dynamic batch.

The exported graph is the Inspector itself - normalisation (mean/std buffers), backbone,
patch features, both heads - so PyTorch and the bundle compute the same thing; only
preprocessing (resize, [0, 1]) and post-processing (thresholds, regions) stay outside,
in numpy code both paths share.

We use the ``torch.export``-based exporter (``dynamo=True``, needs ``onnxscript``), not
the TorchScript tracer: the tracer records every ``x.shape[i]`` as a tensor, so Python
arithmetic on sizes breaks (``round(flat.shape[1] * top_fraction)`` in the anomaly
head), and the TensorFlow "SAME" padding of the embedded EfficientNet becomes a
data-dependent ``Pad`` whose output size ONNX cannot infer, which ``adaptive_avg_pool2d``
then refuses. ``torch.export`` keeps H and W static (only the batch is symbolic), so all
of that folds to constants.
"""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path

import torch

from defectkit.errors import ConfigError, NotFittedError

INPUT_NAME = "image"
OPSET = 18
#: Largest batch the exported graph accepts (a bound torch.export wants; not a cost).
MAX_BATCH = 1024


def output_names(inspector) -> tuple[str, ...]:
    """The graph's output names: ``score, anomaly_map, class_logits``, then the caption
    evidence (``prototype_similarity``; ``vocab_scores`` with a vocabulary)."""
    return tuple(inspector.output_names)


def require_fitted(inspector) -> None:
    """Raise :class:`NotFittedError` for an unfitted inspector (nothing to export yet)."""
    if not getattr(inspector, "fitted", False):
        raise NotFittedError(
            "this inspector is not fitted, so there is nothing to export: run `inspect fit` "
            "(or Inspector.fit) first"
        )


def at_input_size(inspector, input_size: tuple[int, int] | None):
    """The inspector itself, or a copy that runs at ``input_size`` = (H, W).

    The memory bank and prototypes are per-patch features, so they carry over to another
    resolution; but thresholds were calibrated at the fitted size, which is why the
    manifest records both sizes. (Relies on ``Inspector.input_size`` and ``.grid``.)
    """
    if input_size is None or tuple(input_size) == tuple(inspector.input_size):
        return inspector
    h, w = (int(v) for v in input_size)
    if min(h, w) < 32:
        raise ConfigError(f"--input-size must be at least 32 x 32, got {h} x {w}")
    resized = copy.deepcopy(inspector)
    resized.input_size = (h, w)
    resized.grid = resized.features.grid_size((h, w))
    return resized


def export_onnx(inspector, path: str | Path, *, input_size: tuple[int, int] | None = None) -> Path:
    """Write ``inspector``'s forward graph to ``path`` (fp32 ONNX, opset 18).

    Args:
        inspector: a fitted :class:`~defectkit.inspect.inspector.Inspector`.
        path: the ``.onnx`` file to write.
        input_size: (H, W) of the graph's input; default: the inspector's.

    Returns:
        ``path``. Input ``image``: batch x 3 x H x W float32 in [0, 1]; outputs ``score``
        (batch), ``anomaly_map`` (batch x H x W), ``class_logits`` (batch x K),
        ``prototype_similarity`` (batch x P shots) and, when the inspector embedded a
        vocabulary, ``vocab_scores`` (batch x V): :attr:`Inspector.output_names`.
    """
    require_fitted(inspector)
    model = at_input_size(inspector, input_size).eval()
    h, w = model.input_size
    # Batch 2, not 1: torch.export specialises a dimension it sees as 1 to a constant.
    example = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    path = Path(path)
    chatter = io.StringIO()  # the exporter prints progress lines; keep them for errors only
    try:
        with torch.no_grad(), contextlib.redirect_stdout(chatter):
            program = torch.onnx.export(
                model, (example,), dynamo=True, input_names=[INPUT_NAME],
                output_names=list(output_names(model)), dynamic_shapes=({0: batch},),
                opset_version=OPSET, optimize=True, verbose=False, report=False,
            )  # fmt: skip
            program.save(str(path), external_data=_needs_external_data(model))
    except ImportError as exc:
        raise ConfigError(
            f"ONNX export needs onnx and onnxscript ({exc}): pip install onnx onnxscript"
        ) from None
    return path


def _needs_external_data(model: torch.nn.Module) -> bool:
    """ONNX protobufs stop at 2 GB; bigger graphs keep weights in a side file."""
    size = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    return size > 1_800_000_000


def convert_onnx_to_fp16(src: str | Path, dst: str | Path) -> Path:
    """Convert an fp32 ONNX file to fp16 weights and arithmetic, keeping fp32 inputs/outputs.

    Inputs and outputs stay float32 (``keep_io_types``) so the runtime feeds and reads
    every bundle the same way; ONNX Runtime's converter leaves ops it has no fp16 CPU
    kernel for (TopK, Resize, ...) in fp32 behind casts.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return Path(dst)
