"""The labelling app: label a few shots, fit, review, move the threshold, export.

Modules: :mod:`.project` (the on-disk project), :mod:`.records` (its JSON records),
:mod:`.importing` and :mod:`.exporting` (images in, bundles out), :mod:`.reviewer` (the
unlabelled images, inspected in the background), :mod:`.review` (one reviewed result,
re-decided at any threshold), :mod:`.display` (pictures drawn on display-sized copies),
:mod:`.histogram` (the threshold chart), :mod:`.views` (the page's words and tables),
:mod:`.status` (the status line's words), :mod:`.ui` (the page's shell) and
:mod:`.tabs` (one module per tab), :mod:`.workspace` (the projects a server has open),
:mod:`.server` (serve the page; ``inspect app`` is :mod:`defectkit.cli.app`).
Nothing is imported here: ``inspect --help`` must not load Gradio.
"""
