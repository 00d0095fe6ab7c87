"""inspect compare: two bundles' rows joined by content hash; the table and the page."""

import json

import numpy as np
import pytest
from PIL import Image

from defectkit.apps.batch.compare import compare_bundles, format_comparison, resolve_bundle
from defectkit.apps.batch.page import write_compare_page
from defectkit.apps.daemon.store import Record, open_store
from defectkit.errors import ConfigError


def row(sha, bundle, verdict, label, score, *, status="ok", name=None, boxes=()):
    result = {"defects": [{"box": list(b)} for b in boxes], "caption": f"{label} by {bundle}"}
    return Record(sha256=sha, created_at=1.0, source="batch", name=name or f"{sha}.png", station="s",
                  status=status, verdict=verdict if status == "ok" else None,
                  label=label if status == "ok" else None, score=score, bundle_id=bundle,
                  error=None if status == "ok" else "bad", result=result)  # fmt: skip


@pytest.fixture
def store(tmp_path):
    s = open_store(str(tmp_path / "r.db"))
    s.upsert_many([
        row("a", "old111", "good", "good", 0.1), row("a", "new222", "good", "good", 0.2),
        row("b", "old111", "good", "good", 0.3), row("b", "new222", "defect", "dent", 0.9),
        row("c", "old111", "defect", "dent", 0.8), row("c", "new222", "defect", "scratch", 0.7),
        row("d", "old111", "defect", "dent", 0.9), row("d", "new222", "good", "good", 0.2),
        row("e", "old111", "good", "good", 0.1), row("e", "new222", "x", "x", 0, status="rejected"),
        row("f", "old111", "good", "good", 0.1),  # only old
        row("g", "new222", "good", "good", 0.1), row("h", "new222", "good", "good", 0.1),
        row("i", "other9", "good", "good", 0.1),
    ])  # fmt: skip
    yield s
    s.close()


def test_counts_transitions_and_the_changed_parts_verdict_flips_first(store):
    c = compare_bundles(store, "old", "new2")
    assert (c.old.id, c.new.id) == ("old111", "new222")
    assert (c.both, c.verdict_changed, c.label_changed, c.status_changed) == (4, 2, 1, 1)
    assert (c.only_old, c.only_new) == (1, 2)
    assert c.transitions == {
        ("good", "good"): 1,
        ("good", "dent"): 1,
        ("dent", "scratch"): 1,
        ("dent", "good"): 1,
    }
    assert [p.sha256 for p in c.changed] == [
        "d",
        "b",
        "c",
    ]  # flips by score move, then class changes
    assert c.changed[0].old.caption == "dent by old111" and c.changed[0].verdict_changed
    assert [p.sha256 for p in compare_bundles(store, "old111", "new222", limit=1).changed] == ["d"]
    assert compare_bundles(store, "old111", "new222", limit=0).changed == []
    json.dumps(c.to_dict())


def test_the_text_table(store):
    text = format_comparison(compare_bundles(store, "old111", "new222"))
    assert "verdict changed: 2" in text and "only in new: 2" in text
    assert "dent -> scratch: 1" in text and "good -> good" not in text
    assert "defect/dent  good/good" in text


def test_bundles_are_named_by_an_unambiguous_prefix(store):
    store.upsert(row("z", "old999", "good", "good", 0.1))
    with pytest.raises(ConfigError, match="ambiguous.*old111, old999"):
        resolve_bundle(store, "old")
    with pytest.raises(ConfigError, match=r"no rows of bundle 'nope'.*new222 \(7 rows\)"):
        resolve_bundle(store, "nope")
    with pytest.raises(ConfigError, match="two different bundles"):
        compare_bundles(store, "new222", "new2")


def test_the_page_draws_stored_boxes_on_images_at_hand(tmp_path):
    image = tmp_path / "part.png"
    Image.fromarray(np.full((60, 80, 3), 90, np.uint8)).save(image)
    s = open_store(str(tmp_path / "p.db"))
    s.upsert_many([row("p", "o", "good", "good", 0.1, name=str(image)),
                   row("p", "n", "defect", "dent", 0.9, name=str(image), boxes=[(10, 10, 30, 20)]),
                   row("q", "o", "good", "good", 0.1, name="bare.png"),
                   row("q", "n", "defect", "dent", 0.8, name="bare.png")])  # fmt: skip
    comparison = compare_bundles(s, "o", "n")
    s.close()
    page = write_compare_page(comparison, tmp_path / "page")
    text = page.read_text()
    assert "image not at hand" in text and "bare.png" in text and "dent by n" in text
    new = np.asarray(Image.open(tmp_path / "page" / "overlays" / "p-new.png"))
    old = np.asarray(Image.open(tmp_path / "page" / "overlays" / "p-old.png"))
    assert (new[10, 15] != 90).any() and (old == 90).all(), "the new bundle's box, drawn"
    assert json.loads((tmp_path / "page" / "comparison.json").read_text())["verdict_changed"] == 2
    write_compare_page(comparison, tmp_path / "page")  # a second page replaces the first
