"""Execute every tutorial in notebooks/ from top to bottom, as a reader would.

Each notebook runs in a fresh ``python3`` kernel (ipykernel in this interpreter) with a
temporary working folder, offline (``HF_HUB_OFFLINE=1``: the notebooks use the embedded
backbone and must never download). A failing cell fails the test with that cell's
source and traceback. The notebooks write only to temporary folders; the test checks
that the repository's notebooks/ folder and top level are unchanged afterwards.

The executed copy, with its outputs and pictures, is kept in
``tests/artifacts/notebooks/`` (or ``$DEFECTKIT_ARTIFACTS/notebooks/``; git ignores it),
failed or not, to look at what a reader would see.

Needs nbclient, nbformat and ipykernel (the ``test`` extra); skips with a message
without them.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip(
    "nbformat", reason="nbformat not installed: pip install -e '.[test]'"
)
nbclient = pytest.importorskip(
    "nbclient", reason="nbclient not installed: pip install -e '.[test]'"
)
pytest.importorskip("ipykernel", reason="ipykernel not installed: pip install -e '.[test]'")

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
ARTIFACTS = Path(os.environ.get("DEFECTKIT_ARTIFACTS", REPO / "tests" / "artifacts")) / "notebooks"
#: Longest a single cell may run (fit and export on the real backbone, 2 shared cores).
CELL_TIMEOUT_S = 300
#: Longest a whole notebook may run; each takes 1-2 minutes on 2 cores.
NOTEBOOK_TIMEOUT_S = 600


def _snapshot() -> set[str]:
    """Entries at the repository's top level and in notebooks/ (what a stray write adds)."""
    return {p.name for p in REPO.iterdir()} | {
        f"notebooks/{p.name}" for p in (REPO / "notebooks").iterdir()
    }


def _plain(exc: Exception) -> str:
    """The error with IPython's terminal colours removed, so pytest's report reads cleanly."""
    return re.sub(r"\x1b\[[0-9;]*m", "", str(exc))


@pytest.mark.timeout(NOTEBOOK_TIMEOUT_S)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    # The kernel (and what it starts) inherits the environment: offline, and this checkout
    # first on the path, as the other subprocess tests do.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working folder
    )
    before = _snapshot()
    t0 = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{path.name}: a cell failed\n{_plain(exc)}", pytrace=False)
    except nbclient.exceptions.CellTimeoutError as exc:
        pytest.fail(
            f"{path.name}: a cell ran over {CELL_TIMEOUT_S} s\n{_plain(exc)}", pytrace=False
        )
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, ARTIFACTS / path.name)
    print(f"{path.name}: {time.perf_counter() - t0:.1f} s")
    added = sorted(_snapshot() - before)
    assert not added, f"{path.name} wrote into the repository: {added}; use a temporary folder"
