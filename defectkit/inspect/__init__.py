"""The model layer: backbones, patch features, the exported InspectorModel, fitting,
the user-facing Inspector, saved model folders, evaluation and the HTML report.

:mod:`.backbones` (one-way lazy registry), :mod:`.features`, :mod:`.model`
(``InspectorModel.forward -> RawOutputs``), :mod:`.fit` (``fit(model, support)``),
:mod:`.inspector` (``Inspector``: model + Predictor), :mod:`.feature_cache` (raw grids
kept between fits: incremental refits), :mod:`.saved`, :mod:`.config`,
:mod:`.evaluate`, :mod:`.metrics`, :mod:`.report`. Nothing is imported here, so
``defectkit.inspect.config`` (the CLI's flags) stays torch-free.
"""
