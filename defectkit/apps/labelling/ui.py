"""The labelling page: a project bar, a status line, and one tab per step.

Structure, so that a tab can be added without touching the others: :class:`Shell` holds
what every tab shares (the workspace, the project bar and status line, this browser
tab's project path, the error guard, the status words); each tab in :mod:`.tabs` builds
its components, says what it shows for a project (``show``) and wires its events.
Opening a project, or loading the page, asks every tab to show it.

Conventions that keep the page honest and testable:

- every handler returns a ``{component: value}`` dict, so a failing handler can update
  only the status line and leave everything else as it was;
- :meth:`Shell.guard` turns a :class:`~defectkit.errors.DefectkitError` into its message
  in the status line and a toast, and anything else into a one-line message (the
  traceback goes to the server log, never into the page);
- handlers call the project, its reviewer and :mod:`.views`; they hold no state of
  their own (a browser tab keeps only its project path and selections);
- a status line starts with what happened (:mod:`.status`).
"""

from __future__ import annotations

import functools
import logging

import gradio as gr

from defectkit.apps.labelling.status import ok, problem
from defectkit.apps.labelling.tabs import TABS
from defectkit.apps.labelling.workspace import Workspace
from defectkit.errors import DefectkitError

__all__ = ["CSS", "TITLE", "Shell", "create_app"]

log = logging.getLogger(__name__)
TITLE = "defectkit · labelling"
CSS = """
#status { min-height: 1.5em; }
/* A gallery caption lies over the bottom of its thumbnail, which hid the end of a tall
   image: the picture keeps the space above the caption, whole ("contain"). */
#gallery .thumbnail-item:has(.caption-label) img,
#review-gallery .thumbnail-item:has(.caption-label) img {
  height: calc(100% - 26px) !important;
  margin-bottom: 26px;
}
/* The editor's trash icon wipes the photograph itself, not the paint (the eraser and
   undo do that), after which nothing can be painted: hide it. */
#mask-editor button[aria-label='Clear canvas'], #mask-editor button[title='Clear canvas'] {
  display: none;
}
"""


class Shell:
    """What the tabs share: the workspace, the project bar, the status line, the guard.

    Attributes:
        project_state: this browser tab's project path (``gr.State``).
        status: the status line every handler writes.
        tabs: the tabs by name, in page order.
    """

    def __init__(self, workspace: Workspace, demo: gr.Blocks) -> None:
        self.workspace, self.demo = workspace, demo
        self.tabs: dict = {}
        default_path = str(workspace.default) if workspace.default else ""
        self.project_state = gr.State(default_path)
        gr.Markdown(f"## {TITLE}")
        with gr.Row(equal_height=True):
            self.project_box = gr.Dropdown(
                choices=workspace.recent(), value=default_path or None, allow_custom_value=True,
                label="Project folder (a new folder creates a project)", scale=4,
                elem_id="project-path",
            )  # fmt: skip
            self.open_btn = gr.Button("Open", scale=1, elem_id="open-project")
        self.status = gr.Markdown("", elem_id="status")

    def guard(self, fn):
        """Errors become a status line and a toast; the page keeps its other values."""

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except DefectkitError as exc:
                gr.Warning(str(exc))
                return {self.status: problem(str(exc))}
            except Exception as exc:  # never a traceback in the page
                log.exception("labelling app: %s failed", fn.__name__)
                message = (
                    f"unexpected error in {fn.__name__.removeprefix('on_')} "
                    f"({type(exc).__name__}: {exc}); details are in the server log"
                )
                gr.Warning(message)
                return {self.status: problem(message)}

        return wrapper

    def open(self, path):
        """The project at ``path`` (opened once per server), its files servable."""
        project = self.workspace.open(path)
        # Gradio serves files only from allowed folders; the project's thumbnails and
        # export zips live in the project folder, which can be anywhere.
        allowed = getattr(self.demo, "allowed_paths", None)
        if isinstance(allowed, list) and str(project.root) not in allowed:
            allowed.append(str(project.root))
        return project

    def reviewer(self, project):
        return self.workspace.reviewer(project)

    def wire(self) -> None:
        """Open a project (the page's load, the Open button, the dropdown): every tab shows it."""
        outputs = [self.status, self.project_state, self.project_box]
        for tab in self.tabs.values():
            outputs += tab.outputs()
        outputs = list(dict.fromkeys(outputs))

        @self.guard
        def on_open(path, *tab_inputs):
            project = self.open(path)
            out = {
                self.status: ok(f"Project {project.root} · {len(project.images)} images"),
                self.project_state: str(project.root),
                self.project_box: gr.update(
                    choices=self.workspace.recent(), value=str(project.root)
                ),
            }
            for tab in self.tabs.values():
                out.update(tab.show(project))
            return out

        inputs = [self.project_box]
        self.demo.load(on_open, inputs, outputs)
        self.open_btn.click(on_open, inputs, outputs)
        self.project_box.select(on_open, inputs, outputs)


def create_app(workspace: Workspace) -> gr.Blocks:
    """Build the page for ``workspace`` (not launched; see :func:`.server.launch`)."""
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        shell = Shell(workspace, demo)
        with gr.Tabs(elem_id="tabs"):
            for make in TABS:
                tab = make(shell)
                with gr.Tab(tab.title, id=tab.name, elem_id=f"tab-{tab.name}"):
                    tab.build()
                shell.tabs[tab.name] = tab
        for tab in shell.tabs.values():
            tab.wire()
        shell.wire()
    return demo
