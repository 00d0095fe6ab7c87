"""The bundle registry: add with parent and support hash, promote through the gate, roll back."""

import os

import pytest

from defectkit.exporters.gate import Answer, Flip, GateReport
from defectkit.exporters.registry import Registry, RegistryError, support_sha256
from defectkit.testing.bundles import write_minimal_bundle


def gate(new, old, *flips):
    return GateReport(new, old, 10, list(flips))


REGRESSION = Flip("good/1.png", "good", "regression", Answer("defect", "x", 0.9),
                  Answer("good", "good", 0.1))  # fmt: skip


@pytest.fixture
def registry(tmp_path):
    return Registry(tmp_path / "registry")


def add(registry, tmp_path, tag, **extra):
    return registry.add(write_minimal_bundle(tmp_path / f"b{tag}", tag=tag, **extra))


def test_add_keeps_parent_and_support_hash(registry, tmp_path):
    v1 = add(registry, tmp_path, "1", support={"good": 2})
    assert v1.parent is None and len(v1.id) == 12
    assert v1.support_sha256 == support_sha256({"support": {"good": 2}})
    registry.record_gate(v1.id, gate(v1.id, None))
    registry.promote(v1.id)
    v2 = add(registry, tmp_path, "2", support={"good": 3})
    assert v2.parent == v1.id and v2.support_sha256 != v1.support_sha256
    assert [e.id for e in registry.entries()] == [v1.id, v2.id]
    with pytest.raises(RegistryError, match="already registered"):
        registry.add(registry.bundle_path(v1.id))


def test_promote_needs_a_gate_against_the_current_version(registry, tmp_path):
    v1 = add(registry, tmp_path, "1")
    with pytest.raises(RegistryError, match="no gate report"):
        registry.promote(v1.id)
    registry.record_gate(v1.id, gate(v1.id, None))
    registry.promote(v1.id)
    assert registry.current_id() == v1.id
    current = registry.root / "current"
    assert os.readlink(current) == f"versions/{v1.id}/bundle"
    assert (current / "manifest.json").is_file()  # the channel a daemon follows
    v2 = add(registry, tmp_path, "2")
    registry.record_gate(v2.id, gate(v2.id, "someother"))
    with pytest.raises(RegistryError, match="run the gate again"):
        registry.promote(v2.id)


def test_blocking_flips_need_a_recorded_acceptance(registry, tmp_path):
    v1 = add(registry, tmp_path, "1")
    registry.record_gate(v1.id, gate(v1.id, None))
    registry.promote(v1.id)
    v2 = add(registry, tmp_path, "2")
    registry.record_gate(v2.id, gate(v2.id, v1.id, REGRESSION))
    with pytest.raises(RegistryError, match="1 blocking flip"):
        registry.promote(v2.id)
    assert registry.current_id() == v1.id
    promoted = registry.promote(v2.id, accept="good/1.png was mislabelled")
    assert registry.current_id() == v2.id
    assert promoted.accepted.note == "good/1.png was mislabelled" and promoted.accepted.flips == 1
    assert registry.entry(v2.id).accepted.by  # recorded on disk, with who
    history = registry.history()
    assert [h["action"] for h in history] == ["promote", "promote"]
    assert history[-1]["note"] == "good/1.png was mislabelled"


def test_rollback_returns_to_the_parent(registry, tmp_path):
    v1 = add(registry, tmp_path, "1")
    registry.record_gate(v1.id, gate(v1.id, None))
    registry.promote(v1.id)
    with pytest.raises(RegistryError, match="no parent"):
        registry.rollback()
    v2 = add(registry, tmp_path, "2")
    registry.record_gate(v2.id, gate(v2.id, v1.id))
    registry.promote(v2.id)
    back = registry.rollback()
    assert back.id == v1.id and registry.current_id() == v1.id
    assert registry.history()[-1] | {"at": 0} == {
        "action": "rollback", "version": v1.id, "previous": v2.id, "at": 0,
        "by": registry.history()[-1]["by"], "note": None,
    }  # fmt: skip
    with pytest.raises(RegistryError, match="no version matches"):
        registry.rollback(to="feedbeef")


def test_cli_lists_versions_and_refuses_in_one_line(registry, tmp_path, capsys):
    from defectkit.cli import main

    v1 = add(registry, tmp_path, "1")
    assert main(["bundles", "promote", str(registry.root), v1.id]) == 2
    assert "no gate report" in capsys.readouterr().err
    registry.record_gate(v1.id, gate(v1.id, None))
    assert main(["bundles", "promote", str(registry.root), v1.id[:6]]) == 0
    assert main(["bundles", "list", str(registry.root)]) == 0
    out = capsys.readouterr().out
    assert f"* {v1.id}" in out and "gate: passed" in out
