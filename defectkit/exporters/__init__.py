"""Export an Inspector to ONNX or OpenVINO as a verified bundle, and run bundles without torch.

Modules, by side of the factory gate:

- export side (needs torch): :mod:`.onnx_export`, :mod:`.openvino_export`,
  :mod:`.selfcheck`, :mod:`.export` (``export_bundle``), :mod:`.cli`;
- line side (numpy, Pillow and one inference engine): :mod:`.bundle` (manifest,
  hashing, verification, ``set_thresholds``) and :mod:`.runtime` (``load_bundle``).

This ``__init__`` imports nothing, so ``import defectkit.exporters.runtime`` stays
torch-free on a factory PC.
"""
