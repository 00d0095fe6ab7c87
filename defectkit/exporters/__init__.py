"""Export a fitted model to ONNX or OpenVINO as a verified bundle, and run bundles without torch.

Modules, by side of the factory gate:

- export side (needs torch): :mod:`.onnx_export`, :mod:`.openvino_export`,
  :mod:`.selfcheck`, :mod:`.export` (``export_bundle``);
- line side (numpy, Pillow and one inference engine; import-linter keeps them torch-free):
  :mod:`.bundle` (manifest, hashing, verification, ``set_thresholds``), :mod:`.engines`
  (OpenVINO, ONNX Runtime) and :mod:`.runtime` (``load_bundle``: a Bundle is the one
  :class:`~defectkit.core.predictor.Predictor` over an engine).

The ``inspect export`` and ``inspect threshold`` commands are :mod:`defectkit.cli.export`.

This ``__init__`` imports nothing, so ``import defectkit.exporters.runtime`` stays
torch-free on a factory PC.
"""
