"""The caption vocabulary: defaults, extension by list or file, file form round trip."""

from __future__ import annotations

import pytest

from defectkit.core.caption.vocabulary import (
    ATTRIBUTE_TEMPLATES,
    DEFAULT_TERMS,
    TERM_TEMPLATES,
    Vocabulary,
    load_vocabulary,
)
from defectkit.errors import ConfigError


def test_defaults_hold_the_design_terms():
    vocab = load_vocabulary()
    for term in ("scratch", "crack", "dent", "stain", "hole", "contamination", "discolouration",
                 "missing part", "burr", "bubble", "chip", "deformation"):  # fmt: skip
        assert term in vocab.terms
    assert vocab.names == vocab.terms + vocab.attributes
    assert vocab.kinds.count("attribute") == len(vocab.attributes) > 0


def test_extend_with_a_list_and_a_file(tmp_path):
    vocab = load_vocabulary(["weld spatter", "  attribute:   greasy ", "scratch", "# comment", ""])
    assert vocab.terms[: len(DEFAULT_TERMS)] == DEFAULT_TERMS
    assert vocab.terms[-1] == "weld spatter" and vocab.terms.count("scratch") == 1
    assert vocab.attributes[-1] == "greasy"
    path = tmp_path / "terms.txt"
    path.write_text("weld spatter\nattribute: greasy\n", encoding="utf-8")
    assert load_vocabulary(path) == vocab
    only = load_vocabulary(path, defaults=False)
    assert only == Vocabulary(("weld spatter",), ("greasy",))


def test_file_form_round_trip_and_prompts():
    vocab = Vocabulary(("scratch", "missing part"), ("dark",))
    assert list(vocab) == ["scratch", "missing part", "attribute: dark"]
    assert Vocabulary.from_lines(list(vocab)) == vocab
    prompts = vocab.prompts()
    assert len(prompts) == len(vocab) == 3
    assert prompts[1][0] == TERM_TEMPLATES[0].format("missing part")
    assert prompts[2] == [t.format("dark") for t in ATTRIBUTE_TEMPLATES]


def test_errors_say_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="empty"):
        load_vocabulary([], defaults=False)
    with pytest.raises(ConfigError, match="cannot read"):
        load_vocabulary(tmp_path / "missing.txt")
    with pytest.raises(ConfigError, match="twice"):
        Vocabulary(("dent", "dent"), ())
