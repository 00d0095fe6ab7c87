"""``inspect backbones`` and ``inspect weights fetch``: the table, and offline errors
that say what to copy where. No test downloads anything."""

from __future__ import annotations

import argparse
import time

import pytest

from defectkit.cli import backbones as cli_backbones
from defectkit.errors import DefectkitError
from defectkit.inspect.backbones.registry import _REGISTRY

# Every test sees an empty Hugging Face cache of its own and an unreachable Hub.
pytestmark = pytest.mark.usefixtures("empty_hf_cache")


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="inspect")
    cli_backbones.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_backbones_table(capsys):
    assert run_cli("backbones") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "NAME",
        "FAMILY",
        "DEFAULT",
        "WEIGHTS",
        "OFFLINE",
        "TEXT-ALIGNED",
    ]
    assert "efficientnet_lite0" in out and "inspect weights fetch" in out
    row = next(line.split() for line in out.splitlines() if line.startswith("efficientnet_lite0"))
    assert row[-2:] == ["yes", "no"]


def test_cli_fetch_embedded_needs_nothing(capsys):
    assert run_cli("weights", "fetch", "efficientnet_lite0") == 0
    assert "embedded" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["ViT-B-16", "dinov2_vits14"])
def test_cli_fetch_fails_fast_when_the_hub_is_unreachable(name, tmp_path, monkeypatch):
    def no_download(*args):  # the probe must stop it first; never download in a test
        raise AssertionError("tried to download")

    monkeypatch.setattr(cli_backbones, "_download", no_download)
    start = time.monotonic()
    with pytest.raises(DefectkitError, match="network is unreachable") as err:
        run_cli("weights", "fetch", name, "--dest", str(tmp_path))
    assert time.monotonic() - start < 10
    hub = _REGISTRY[name].hub
    message = str(err.value)
    assert (
        f"{hub.repo_id}/resolve/main/{hub.filenames[0]}" in message and "--weights DIR" in message
    )


def test_cli_fetch_respects_hf_hub_offline(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DefectkitError, match="HF_HUB_OFFLINE"):
        run_cli("weights", "fetch", "ViT-L-14")
