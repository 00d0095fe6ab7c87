"""``inspect fit`` flags map one to one onto InspectorConfig fields."""

from __future__ import annotations

import argparse

import pytest

from defectkit.cli.models import _add_config_args, config_from_args
from defectkit.errors import ConfigError
from defectkit.inspect.config import InspectorConfig


def _parse(argv):
    parser = argparse.ArgumentParser()
    _add_config_args(parser)
    return config_from_args(parser.parse_args(argv))


def test_vocabulary_flags_map_onto_the_config(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("# line-side terms\nburn mark\nattribute: dull\n\nscratch\n")
    config = _parse(["--vocabulary", "weld spatter", "--vocabulary-file", str(words)])
    assert config.vocabulary == ("weld spatter", "burn mark", "scratch", "attribute: dull")
    assert InspectorConfig.from_dict(config.to_dict()) == config
    assert _parse([]).vocabulary == ()
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ConfigError, match="vocabulary is empty"):
        _parse(["--vocabulary-file", str(tmp_path / "empty.txt")])
    with pytest.raises(ConfigError, match="cannot read"):
        _parse(["--vocabulary-file", str(tmp_path / "missing.txt")])


def test_the_margin_weight_flag_maps_onto_the_config_and_refuses_nonsense():
    assert _parse([]).margin_weight == InspectorConfig().margin_weight == 0.5
    config = _parse(["--margin-weight", "0"])
    assert config.margin_weight == 0.0 and InspectorConfig.from_dict(config.to_dict()) == config
    for bad in ("-1", "nan", "11"):
        with pytest.raises(ConfigError, match="--margin-weight must be between 0 and 10"):
            _parse(["--margin-weight", bad])


def test_the_evidence_flag_maps_onto_the_config():
    assert _parse([]).evidence is None  # auto: the fit chooses on the shots
    for kind in ("distance", "contrast"):
        config = _parse(["--evidence", kind])
        assert config.evidence == kind and InspectorConfig.from_dict(config.to_dict()) == config
    with pytest.raises(SystemExit):
        _parse(["--evidence", "nearest"])
    # the API refuses it too, instead of quietly fitting with distance
    with pytest.raises(ConfigError, match="evidence must be 'distance', 'contrast' or None"):
        InspectorConfig(evidence='"contrast"')
