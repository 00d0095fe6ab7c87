"""Notebooks are committed without outputs, so diffs show code and prose only.

Outputs are what CI's execution of the notebooks (tests/integration/test_notebooks.py)
produces; committed ones go stale and bloat the history. To strip before committing:
``nbstripout notebooks/*.ipynb`` (or ``nbstripout --install`` once, as a git filter).
Read as plain JSON so this check needs nothing beyond the standard library.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
FIX = "run `nbstripout notebooks/*.ipynb` before committing"


def test_the_tutorials_are_there():
    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart.ipynb",
        "02_your_own_data.ipynb",
        "03_export_and_deploy.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_has_no_outputs_and_no_execution_counts(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "python3", f"{path.name}: kernel must be python3"
    dirty = [
        i
        for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code"
        and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs or execution counts; {FIX}"
