"""The systemd unit stays true to the CLI: real flags, and a MemoryMax= above what they allow."""

import argparse
import re
import shlex

from defectkit.apps.daemon.config import ServeConfig
from defectkit.cli import serve as cli
from defectkit.testing.processes import REPO

UNIT = REPO / "deploy" / "defectkit-serve.service"


def exec_start_args() -> list[str]:
    text = UNIT.read_text()
    command = re.search(r"^ExecStart=(.*?)(?<!\\)$", text, re.S | re.M).group(1)
    words = shlex.split(command.replace("\\\n", " "))
    return words[words.index("serve") + 1 :]


def test_the_units_flags_parse_and_memorymax_covers_their_estimate():
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    config = ServeConfig.from_args(parser.parse_args(exec_start_args()))
    match = re.search(r"^MemoryMax=(\d+)G$", UNIT.read_text(), re.M)
    assert match, "the unit sets MemoryMax= in whole gigabytes"
    assert int(match.group(1)) * 2**30 > config.memory_estimate()
    assert config.pixel_budget_mp == 40 and config.overlays is not None


def test_the_sizing_comment_matches_the_estimate():
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    config = ServeConfig.from_args(parser.parse_args(exec_start_args()))
    stated = re.search(r"= [\d.+ ]+= ([\d.]+) GB with the flags above", UNIT.read_text())
    assert stated and abs(float(stated.group(1)) - config.memory_estimate() / 1e9) < 0.25
