"""Shared fixtures: synthetic defects with exact masks, a small fitted inspector, and an
empty Hugging Face cache."""

from __future__ import annotations

import pytest

from defectkit.datasets import make_synthetic


@pytest.fixture(scope="session")
def synthetic():
    """(support, held-out) synthetic samples: good + scratch + spot on fabric, 128 px."""
    samples = make_synthetic(
        n_good=8, defects={"scratch": 5, "spot": 5}, size=(128, 128), seed=3, texture="fabric"
    )
    from defectkit.fewshot.support import pick_shots

    return pick_shots(samples, 2, seed=0)


@pytest.fixture(scope="session")
def fitted(synthetic):
    """An inspector on the embedded backbone fitted from 2 shots per class (fast config)."""
    import torch

    from defectkit.inspect.config import InspectorConfig
    from defectkit.inspect.inspector import Inspector

    torch.manual_seed(0)
    inspector = Inspector(InspectorConfig(augmentations=2, bank_size=512, seed=0))
    report = inspector.fit(synthetic[0])
    return inspector, report


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache of the test's own and an unreachable Hub."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # discard port: refused
    return tmp_path / "hf-cache"
