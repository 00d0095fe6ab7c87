"""Shared fixtures: synthetic defects with exact masks, a small fitted inspector, an
empty Hugging Face cache, and a throw-away PostgreSQL server (started on first use)."""

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


# -- stores -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server():
    """A throw-away PostgreSQL on 127.0.0.1 (:class:`defectkit.testing.processes.PostgresServer`),
    or a skip that says what is missing."""
    import subprocess

    from defectkit.testing import processes as kit

    pytest.importorskip("psycopg", reason="psycopg 3 not installed: pip install 'psycopg[binary]'")
    if not (kit.find_pg_bin("initdb") and kit.find_pg_bin("pg_ctl")):
        pytest.skip(
            "PostgreSQL server not installed (apt-get install postgresql): skipping PostgreSQL tests"
        )
    server = kit.PostgresServer()
    try:
        server.start()
    except subprocess.CalledProcessError as exc:
        server.stop()
        pytest.skip(
            f"could not start a throw-away PostgreSQL: {exc.stderr.decode(errors='replace')[-300:]}"
        )
    yield server
    server.stop()


@pytest.fixture
def pg_review_url(postgres_server):
    """The throw-away server's URL with no review tables (each test starts empty)."""
    import psycopg

    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS review_items, review_evictions")
    return postgres_server.url
