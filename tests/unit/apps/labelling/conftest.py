"""Fixtures for the labelling app's unit tests (helpers live in :mod:`defectkit.testing.labelling`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from defectkit.apps.labelling.project import Project  # noqa: E402
from defectkit.testing.labelling import fast_config, label_shots, truth_masks, write_synthetic  # noqa: E402


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    return write_synthetic(tmp_path / "incoming")


@pytest.fixture
def project(tmp_path) -> Project:
    return Project.open(tmp_path / "project")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """(project root, {key: image id}) of a project fitted once per test module.

    Tests that change it must work on a copy (``shutil.copytree``).
    """
    root = tmp_path_factory.mktemp("fitted") / "project"
    files = write_synthetic(root.parent / "incoming")
    project = Project.open(root)
    ids = label_shots(project, files)
    project.set_mask(ids["scratch_000"], truth_masks()["scratch_000"])
    project.set_note(ids["scratch_001"], "hairline from the guide rail")
    project.fit(config=fast_config())
    return root, ids
