"""Export a fitted model to OpenVINO IR (``model.xml`` + ``model.bin``).

Converted from our ONNX export rather than from the torch module: OpenVINO's PyTorch
frontend traces with TorchScript, which trips over the same Python shape arithmetic the
ONNX exporter avoids (see :mod:`.onnx_export`), and going through one ONNX graph means
both targets run the very same operations, so a parity bug shows up in both or neither.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from defectkit.exporters.onnx_export import export_onnx


def convert_onnx_to_openvino(
    onnx_path: str | Path, xml_path: str | Path, *, precision: str = "fp32"
) -> Path:
    """Convert an ONNX file to IR; ``precision="fp16"`` stores the weights as fp16.

    ``openvino.save_model`` compresses weights to fp16 *by default*; we always pass
    ``compress_to_fp16`` explicitly so an fp32 bundle really holds fp32 weights. The
    precision the CPU computes in is a separate, runtime setting (see
    :class:`~defectkit.exporters.runtime.OpenVinoEngine`).
    """
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    ov.save_model(model, str(xml_path), compress_to_fp16=(precision == "fp16"))
    return Path(xml_path)


def export_openvino(
    inspector,
    path: str | Path,
    *,
    precision: str = "fp32",
) -> Path:
    """Write ``inspector``'s forward graph as OpenVINO IR at ``path`` (``.xml``; ``.bin`` beside).

    Same inputs and outputs as :func:`~defectkit.exporters.onnx_export.export_onnx`.
    """
    with tempfile.TemporaryDirectory(prefix="defectkit-ov-") as work:
        onnx_path = export_onnx(inspector, Path(work) / "model.onnx")
        return convert_onnx_to_openvino(onnx_path, path, precision=precision)
