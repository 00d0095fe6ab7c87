"""The labelling app: label a few shots, fit, review, move the threshold, export.

Modules: :mod:`.project` (the on-disk project), :mod:`.records` (its JSON records),
:mod:`.review` and :mod:`.histogram` (review results,
threshold chart), :mod:`.views` (what the page shows), :mod:`.ui` (Gradio Blocks),
:mod:`.workspace` (open projects), :mod:`.exporting` (the exporter seam), :mod:`.server`
(serve the page; ``inspect app`` is :mod:`defectkit.cli.app`). Nothing is imported here: ``inspect --help`` must not load Gradio.
"""
