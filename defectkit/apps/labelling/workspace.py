"""The server side's open projects, shared by every browser tab.

Why shared: two tabs on the same project must see one lock, one loaded inspector and
one review cache, or the second tab's fit would race the first one's writes. A browser
tab keeps only the project's path (and its selection); everything else lives here.
The review of each project's unlabelled images runs in the background
(:class:`~.reviewer.Reviewer`), so it goes on when the tab that started it is closed.
"""

from __future__ import annotations

import threading
from pathlib import Path

from defectkit.apps.labelling.project import Project
from defectkit.apps.labelling.records import ProjectError
from defectkit.apps.labelling.reviewer import Reviewer


class Workspace:
    """Projects opened by this server, by resolved path; the first one is the default."""

    def __init__(self, default: str | Path | None = None) -> None:
        self._lock = threading.Lock()
        self._projects: dict[Path, Project] = {}
        self._reviewers: dict[Path, Reviewer] = {}
        self.default: Path | None = None
        if default is not None:
            self.default = self.open(default).root

    def open(self, path: str | Path | None) -> Project:
        """The project at ``path``, opened (or created) once and then reused."""
        if path is None or not str(path).strip():
            raise ProjectError("type the folder of a project (a new folder creates a project)")
        root = Path(str(path).strip()).expanduser().resolve()
        with self._lock:
            if root not in self._projects:
                self._projects[root] = project = Project.open(root)
                self._reviewers[root] = Reviewer(project)
            return self._projects[root]

    def reviewer(self, project: Project) -> Reviewer:
        """The background review of ``project``'s unlabelled images."""
        with self._lock:
            return self._reviewers.setdefault(project.root, Reviewer(project))

    def recent(self) -> list[str]:
        """Paths of the projects opened so far (for the project dropdown)."""
        with self._lock:
            return [str(p) for p in self._projects]
