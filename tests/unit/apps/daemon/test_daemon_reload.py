"""Reload semantics: no path means ``--bundle`` as given, its symlink resolved again."""

import os
import signal
import time

from fastapi.testclient import TestClient

from defectkit.apps.daemon.api import create_app
from defectkit.apps.daemon.service import _install_signals
from defectkit.testing.daemon import load_fake_bundle, write_fake_bundle
from defectkit.testing.processes import wait_until


def releases(tmp_path):
    """bundles/releases/v1..v3 and bundles/current -> releases/v1; their ids."""
    root = tmp_path / "bundles"
    ids = {}
    for tag in ("v1", "v2", "v3"):
        ids[tag] = load_fake_bundle(write_fake_bundle(root / "releases" / tag, tag=tag)).id
    current = root / "current"
    current.symlink_to(root / "releases" / "v1")
    return current, ids


def switch(current, target) -> None:
    """Point ``current`` at ``target`` atomically, as a deploy script does."""
    tmp = current.with_name("next")
    tmp.symlink_to(target)
    os.replace(tmp, current)


def test_a_no_body_reload_follows_the_symlink_not_the_last_path(make_service, tmp_path):
    current, ids = releases(tmp_path)
    service = make_service(bundle=current)
    with TestClient(create_app(service)) as client:
        r = client.post("/v1/reload", json={"path": "releases/v2"})
        assert r.status_code == 200 and r.json()["bundle_id"] == ids["v2"]
        switch(current, current.parent / "releases" / "v3")
        r = client.post("/v1/reload")
        assert r.status_code == 200
        answer = r.json()
        assert answer["bundle_id"] == ids["v3"] and answer["previous"] == ids["v2"]
        assert answer["path"] == str(current) and answer["resolved"].endswith("releases/v3")
        assert client.get("/healthz").json()["bundle_id"] == ids["v3"]


def test_sighup_reloads_the_bundle_flag_after_a_path_reload(make_service, tmp_path):
    current, ids = releases(tmp_path)
    service = make_service(bundle=current)
    service.reload("releases/v2")
    switch(current, current.parent / "releases" / "v3")

    class Server:
        should_exit = force_exit = False

    previous = _install_signals(service, Server())
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        wait_until(lambda: service.bundles.id == ids["v3"], 10, message="SIGHUP reload")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    time.sleep(0.05)
    assert service.metrics.reloads.value(result="ok") == 2


def test_a_switch_while_loading_cannot_mix_releases(make_service, tmp_path):
    current, ids = releases(tmp_path)
    service = make_service(bundle=current)
    loaded = []
    original = service.bundles.loader

    def loader(path, **kwargs):
        loaded.append(path)
        switch(current, current.parent / "releases" / "v1")  # switched again mid-load
        return original(path, **kwargs)

    service.bundles.loader = loader
    switch(current, current.parent / "releases" / "v2")
    assert service.reload()["bundle_id"] == ids["v2"]
    assert loaded == [(current.parent / "releases" / "v2").resolve()], "the folder, not the link"
