"""Serve the labelling app: build the page for a project and launch Gradio."""

from __future__ import annotations

import inspect
from pathlib import Path

DEFAULT_PROJECT = "inspection-project"
#: Largest upload the page accepts; a 16-bit 12 MP TIFF is ~72 MB.
MAX_FILE_SIZE = "200mb"


def launch(
    project: str | Path, *, host: str = "127.0.0.1", port: int | None = None, block: bool = True
):
    """Build the page for ``project`` and serve it; returns the Gradio Blocks.

    With ``block=False`` the server runs in a background thread (tests, notebooks).
    """
    from defectkit.apps.labelling.ui import CSS, create_app
    from defectkit.apps.labelling.workspace import Workspace

    workspace = Workspace(project)
    demo = create_app(workspace)
    demo.queue(default_concurrency_limit=1)
    options = {}
    if "css" in inspect.signature(demo.launch).parameters:  # Gradio 6 takes CSS at launch
        options["css"] = CSS
    demo.launch(
        server_name=host, server_port=port, inbrowser=False, share=False, quiet=False,
        allowed_paths=[str(workspace.default)], max_file_size=MAX_FILE_SIZE,
        prevent_thread_lock=not block, **options,
    )  # fmt: skip
    return demo
