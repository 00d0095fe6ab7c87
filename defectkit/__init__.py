"""defectkit: few-shot defect inspection for production lines.

The front door::

    from defectkit import Inspector, InspectorConfig, fit, load_bundle, load_dataset
    from defectkit import FeatureCache   # incremental fits: inspector.fit(shots, cache=...)

Those names are imported on first use (PEP 562), so ``import defectkit`` stays cheap and
never imports torch: the factory-side runtime (``defectkit.exporters.runtime``) and the
daemon need only numpy, Pillow and an inference engine.

Layers, each importing only the ones below it (import-linter checks it):
``cli > apps > exporters > inspect > fewshot > datasets > core``.
"""

from __future__ import annotations

import importlib

from defectkit.errors import DefectkitError

__version__ = "0.1.0"

#: Front-door name -> the module that defines it (imported on first use).
_LAZY = {
    "FeatureCache": "defectkit.inspect.feature_cache",
    "Inspector": "defectkit.inspect.inspector",
    "InspectorConfig": "defectkit.inspect.config",
    "fit": "defectkit.inspect.fit",
    "load_bundle": "defectkit.exporters.runtime",
    "load_dataset": "defectkit.datasets.base",
}

__all__ = ["DefectkitError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'defectkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
