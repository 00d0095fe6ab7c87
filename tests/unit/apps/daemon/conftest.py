"""Fixtures for the daemon's unit tests: the test-double bundle and in-process services.

The double itself lives in :mod:`defectkit.testing.daemon`, because daemon
subprocesses and the benchmark load it too (a conftest cannot be imported by them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from defectkit.apps.daemon.config import ServeConfig  # noqa: E402
from defectkit.apps.daemon.service import Service  # noqa: E402
from defectkit.testing.daemon import load_fake_bundle, write_fake_bundle  # noqa: E402


@pytest.fixture
def fake_bundle(tmp_path: Path) -> Path:
    """A verified test-double bundle under ``tmp_path/bundles/v1``."""
    return write_fake_bundle(tmp_path / "bundles" / "v1")


@pytest.fixture
def watch(tmp_path: Path) -> Path:
    folder = tmp_path / "watch"
    folder.mkdir()
    return folder


@pytest.fixture
def make_service(tmp_path: Path, fake_bundle: Path) -> Iterator:
    """``make_service(start=True, **config_overrides) -> Service``; stopped after the test."""
    services: list[Service] = []

    def make(*, start: bool = True, loader=load_fake_bundle, **overrides) -> Service:
        config = ServeConfig(
            bundle=fake_bundle, db=str(tmp_path / "results.db"), poll_interval=0.05,
            settle_time=0.2,
        )  # fmt: skip
        service = Service(replace(config, **overrides), loader=loader)
        services.append(service)
        if start:
            service.start()
        return service

    yield make
    for service in services:
        service.config = replace(service.config, shutdown_timeout=5)
        service.stop()


@pytest.fixture
def client(make_service):
    """A TestClient on a started service without a hot folder."""
    from fastapi.testclient import TestClient

    from defectkit.apps.daemon.api import create_app

    service = make_service()
    with TestClient(create_app(service)) as test_client:
        test_client.service = service
        yield test_client
