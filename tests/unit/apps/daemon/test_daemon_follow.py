"""Following a channel: the daemon reloads when bundles/current moves, once per move."""

import os

from defectkit.apps.daemon.follow import ChannelFollower
from defectkit.testing.daemon import write_fake_bundle


def switch(link, target):
    tmp = link.with_name(link.name + ".tmp")
    os.symlink(target, tmp)
    os.replace(tmp, link)


def test_the_daemon_follows_a_moved_current_link(make_service, tmp_path):
    root = tmp_path / "registry"
    v1 = write_fake_bundle(root / "versions" / "v1")
    v2 = write_fake_bundle(root / "versions" / "v2", tag="2")
    current = root / "current"
    switch(current, v1)
    service = make_service(start=False, bundle=current, follow_interval=60)
    first = service.bundles.id
    assert not service.follower.check()  # nothing moved
    switch(current, v2)
    assert service.follower.check()
    assert service.bundles.id != first and service.bundles.path == v2.resolve()
    assert not service.follower.check()


def test_a_refused_target_is_not_retried_until_the_link_moves_again(tmp_path):
    calls = []
    link = tmp_path / "current"
    bad, good = tmp_path / "bad", tmp_path / "good"
    bad.mkdir(), good.mkdir()
    switch(link, bad)

    def reload():
        calls.append(link.resolve())
        if link.resolve() == bad:
            from defectkit.errors import BundleError

            raise BundleError("refused")

    follower = ChannelFollower(link, serving=lambda: tmp_path, reload=reload, interval=1)
    assert not follower.check() and not follower.check()
    assert calls == [bad]
    switch(link, good)
    assert follower.check() and calls == [bad, good]
