"""Fixtures of the archive-run tests: a LocalCluster of 2 worker processes, synthetic
archives, and a real small exported bundle (fitted and exported once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def dask_client():
    """A LocalCluster of 2 single-threaded worker processes on 127.0.0.1, shared by the
    archive tests (starting one costs seconds)."""
    pytest.importorskip(
        "distributed", reason="dask/distributed not installed: pip install 'defectkit[batch]'"
    )
    from defectkit.apps.batch.cluster import open_client

    with open_client(workers=2, dashboard="127.0.0.1:0") as client:
        yield client


@pytest.fixture(scope="session")
def real_bundle(tmp_path_factory) -> Path:
    """An ONNX bundle of the embedded backbone fitted on 6 synthetic shots at a small
    input size (quick to fit, export and run; the path is the same at any size)."""
    from defectkit.datasets import make_synthetic
    from defectkit.exporters.export import export_bundle
    from defectkit.inspect.inspector import Inspector, InspectorConfig

    samples = make_synthetic(n_good=2, defects={"scratch": 2, "spot": 2}, size=(128, 128), seed=0)
    inspector = Inspector(InspectorConfig(augmentations=1, bank_size=256, input_size=(96, 96)))
    inspector.fit(samples)
    folder = tmp_path_factory.mktemp("batch-bundle") / "bundle"
    return export_bundle(
        inspector, folder, target="onnx", check_images=[s.load_image() for s in samples]
    )


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
