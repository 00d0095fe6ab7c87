"""The pipeline: backbones, patch features, the Inspector, results and the CLI.

Submodules that need torch (backbones, features, inspector) are imported on use, so
``defectkit.core.images`` and ``defectkit.inspect.results`` stay usable on a
torch-free factory PC.
"""
