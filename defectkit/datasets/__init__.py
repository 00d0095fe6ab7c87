"""Datasets: the folder layout, MVTec AD / VisA, the textile benchmark, synthetic defects.

Every loader returns a plain ``list[Sample]`` and never imports torch, so the app, the
benchmarks and torch-free tools share them.
"""

from defectkit.core.geometry import angle_difference, mask_geometry
from defectkit.datasets.base import GOOD, Sample, list_formats, load_dataset
from defectkit.datasets.defects import list_defect_types
from defectkit.datasets.folder import load_folder, unlabelled_files, write_folder
from defectkit.datasets.mvtec import load_mvtec
from defectkit.datasets.synthetic import make_synthetic
from defectkit.datasets.textile import TextileSplit, load_textile, textile_protocol_split
from defectkit.datasets.textures import list_textures
from defectkit.datasets.visa import load_visa

__all__ = [
    "GOOD",
    "Sample",
    "TextileSplit",
    "angle_difference",
    "list_defect_types",
    "list_formats",
    "list_textures",
    "load_dataset",
    "load_folder",
    "unlabelled_files",
    "load_mvtec",
    "load_textile",
    "load_visa",
    "make_synthetic",
    "mask_geometry",
    "textile_protocol_split",
    "write_folder",
]
