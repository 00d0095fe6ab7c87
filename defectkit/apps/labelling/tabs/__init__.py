"""The page's tabs, in order. Each is a class taking the :class:`~..ui.Shell`:

- ``name`` (the tab's id; its button is ``#tab-<name>-button``) and ``title``;
- ``build()`` creates its components (inside its ``gr.Tab``);
- ``outputs()`` lists the components ``show`` fills, and ``show(project)`` fills them
  when a project is opened or the page loads (a reload must show everything again);
- ``wire()`` attaches its events, once every tab is built (a tab may refresh another's
  components through ``shell.tabs[name]``).

A new tab is one more module here and one more entry in :data:`TABS`; the review
queue (:mod:`.review`, a line's escalated parts) was added that way.
"""

from defectkit.apps.labelling.tabs.export import ExportTab
from defectkit.apps.labelling.tabs.fit import FitTab
from defectkit.apps.labelling.tabs.label import LabelTab
from defectkit.apps.labelling.tabs.review import ReviewQueueTab

TABS = (LabelTab, FitTab, ExportTab, ReviewQueueTab)

__all__ = ["TABS", "ExportTab", "FitTab", "LabelTab", "ReviewQueueTab"]
