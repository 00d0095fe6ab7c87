"""Archive runs are on the line side of the import contracts: no torch, and nothing of
the daemon but its store. The contracts bite: a copy of the package that breaks both
fails ``lint-imports`` on both."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
LINT = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))


def test_importing_torch_or_the_daemon_worker_in_batch_breaks_the_contracts(tmp_path):
    if not Path(LINT).exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    shutil.copytree(
        REPO / "defectkit", tmp_path / "defectkit", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    work = tmp_path / "defectkit" / "apps" / "batch" / "work.py"
    work.write_text(
        work.read_text() + "\nimport torch  # noqa\nimport defectkit.apps.daemon.worker  # noqa\n"
    )
    out = subprocess.run([LINT, "--no-cache"], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": ""},
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode != 0
    assert "defectkit.apps.batch is not allowed to import torch" in out.stdout
    assert "defectkit.apps.batch is not allowed to import defectkit.apps.daemon" in out.stdout
    assert "2 broken" in out.stdout, out.stdout[-2000:]
