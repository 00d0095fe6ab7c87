"""Export ``InspectorModel.forward`` to ONNX: one input ``image``, named outputs, dynamic batch.

The exported graph is the model itself - normalisation (mean/std buffers), backbone,
patch features, the heads - so PyTorch and the bundle compute the same thing; only
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
import io
from pathlib import Path

import torch
from torch import nn

from defectkit.errors import ConfigError, NotFittedError
from defectkit.inspect.model import InspectorModel

INPUT_NAME = "image"
OPSET = 18
#: Largest batch the exported graph accepts (a bound torch.export wants; not a cost, and
#: not the Predictor's batch size, which is ``defectkit.core.predictor.BATCH_SIZE``).
DYNAMIC_BATCH_LIMIT = 1024


def model_of(inspector) -> InspectorModel:
    """The InspectorModel of an :class:`~defectkit.inspect.inspector.Inspector` (or the
    model itself), refused with :class:`NotFittedError` while there is nothing to export."""
    model = getattr(inspector, "model", inspector)
    if not getattr(model, "fitted", False):
        raise NotFittedError(
            "this inspector is not fitted, so there is nothing to export: run `inspect fit` "
            "(or Inspector.fit) first"
        )
    return model


class _Outputs(nn.Module):
    """The model with its :class:`~defectkit.core.results.TileOutputs` as a plain tuple of
    the outputs present, in ``output_names`` order: what an ONNX graph returns."""

    def __init__(self, model: InspectorModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model(x).present()


def export_onnx(inspector, path: str | Path) -> Path:
    """Write the fitted model's forward graph to ``path`` (fp32 ONNX, opset 18).

    Args:
        inspector: a fitted :class:`~defectkit.inspect.inspector.Inspector` or InspectorModel.
        path: the ``.onnx`` file to write.

    Returns:
        ``path``. Input ``image``: batch x 3 x th x tw float32 tiles in [0, 1]; outputs
        (``InspectorModel.output_names``) ``features`` (batch x D x h x w), and where the
        model has them ``distance`` and ``defect_distance`` (batch x h x w) and ``embed``
        (batch x C x h x w).
    """
    model = model_of(inspector).eval()
    h, w = model.input_size
    # Batch 2, not 1: torch.export specialises a dimension it sees as 1 to a constant.
    example = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1, max=DYNAMIC_BATCH_LIMIT)
    path = Path(path)
    chatter = io.StringIO()  # the exporter prints progress lines; keep them for errors only
    try:
        with torch.no_grad(), contextlib.redirect_stdout(chatter):
            program = torch.onnx.export(
                _Outputs(model).eval(), (example,), dynamo=True, input_names=[INPUT_NAME],
                output_names=list(model.output_names), dynamic_shapes=({0: batch},),
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
