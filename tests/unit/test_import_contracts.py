"""The layers and the torch-free line side, enforced: import-linter runs with the suite.

Contracts in pyproject.toml: ``cli > apps > exporters > inspect > fewshot > datasets >
core``, the daemon and the labelling app independent, and core, the bundle runtime and
the daemon never importing torch, timm or open_clip (imports inside functions count).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))


def lint(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the ``defectkit`` package under ``root`` (its pyproject.toml)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [LINT, "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def lint_available():
    if not Path(LINT).exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")


def test_the_import_contracts_hold(lint_available):
    out = lint(REPO)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "4 kept, 0 broken" in out.stdout


def test_importing_torch_in_core_breaks_the_contract(lint_available, tmp_path):
    """The contract bites: a copy of the package with ``import torch`` in core fails."""
    shutil.copytree(REPO / "defectkit", tmp_path / "defectkit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    labels = tmp_path / "defectkit" / "core" / "labels.py"
    labels.write_text(labels.read_text() + "\nimport torch  # noqa: F401\n")
    out = lint(tmp_path)
    assert out.returncode != 0
    assert "defectkit.core is not allowed to import torch" in out.stdout
