"""Kept answers: the gate asks a bundle only about images it has not answered, and never
reuses an answer across bundles, settings or changed pixels."""

import numpy as np
import pytest
from PIL import Image

from defectkit.datasets.base import Sample
from defectkit.errors import ConfigError
from defectkit.exporters.answers import (
    AnswerStore,
    AnswerStoreError,
    KeptAnswer,
    image_key,
    setting_key,
)
from defectkit.exporters.gate import GateReport, run_gate
from defectkit.testing.daemon import load_fake_bundle, write_fake_bundle

# The test double's score is the mean brightness; its class head leans to "scratch" above 0.5.


def bundle(tmp_path, name, threshold):
    return load_fake_bundle(write_fake_bundle(tmp_path / name, threshold=threshold, tag=name))


def part(gray: int, label: str, n: int, size=(24, 32)) -> Sample:
    image = np.full((*size, 3), gray, np.uint8)
    image[0, :4] = 255 - gray  # an edge, so the map is not flat
    return Sample(label=label, image_array=image, meta={"id": f"{label}/{n}.png"})


PARTS = [part(115, "good", 0), part(20, "good", 1), part(230, "scratch", 2), part(140, "good", 3)]


@pytest.fixture
def store(tmp_path):
    answers = AnswerStore(tmp_path / "answers.sqlite")
    yield answers
    answers.close()


def test_the_current_bundle_answers_once_and_the_next_gate_runs_the_new_bundle_alone(tmp_path, store):
    old, new = bundle(tmp_path, "old", 0.5), bundle(tmp_path, "new", 0.4)
    first = run_gate(old, PARTS, answers=store)  # the old bundle's own gate (first release)
    assert old.calls and first.inspected_new == len(PARTS)
    old.calls.clear()
    plain = run_gate(new, PARTS, old=bundle(tmp_path, "old", 0.5))  # no store: both run
    report = run_gate(new, PARTS, old=old, answers=store, report_dir=tmp_path / "gate")
    assert old.calls == []  # every old answer was kept
    assert (report.inspected_new, report.inspected_old) == (len(PARTS), 0)
    assert [(f.image, f.effect, f.new, f.old) for f in report.flips] == [
        (f.image, f.effect, f.new, f.old) for f in plain.flips
    ]
    assert "4 of the old bundle's answers kept" in report.summary()
    (flip,) = report.flips  # the old overlay is drawn from the kept map, at the image's size
    assert [Image.open(tmp_path / "gate" / p).size for p in flip.overlays] == [(32, 24), (32, 24)]
    assert GateReport.read(tmp_path / "gate").inspected_old == 0


def test_answers_are_never_shared_between_bundles(tmp_path, store):
    a, b = bundle(tmp_path, "a", 0.5), bundle(tmp_path, "b", 0.5)  # same answers, other ids
    run_gate(a, PARTS, answers=store)
    assert run_gate(b, PARTS, answers=store).inspected_new == len(PARTS)
    assert store.count(a.id) == store.count(b.id) == len(PARTS)


def test_a_changed_pixel_is_asked_again(tmp_path, store):
    old, new = bundle(tmp_path, "old", 0.5), bundle(tmp_path, "new", 0.4)
    run_gate(old, PARTS, answers=store)
    old.calls.clear()
    changed = list(PARTS)
    image = PARTS[0].load_image().copy()
    image[5, 5] += 1
    changed[0] = Sample(label="good", image_array=image, meta={"id": "good/0.png"})
    report = run_gate(new, changed, old=old, answers=store)
    assert old.calls == [1] and report.inspected_old == 1
    assert image_key(image) != image_key(PARTS[0].load_image())
    # the same pixels under another name or file keep their key; another shape does not
    assert image_key(PARTS[0].load_image().copy()) == image_key(PARTS[0].load_image())
    assert image_key(np.zeros((2, 3, 3), np.uint8)) != image_key(np.zeros((3, 2, 3), np.uint8))


def test_moved_thresholds_are_another_setting(tmp_path, store):
    old = bundle(tmp_path, "old", 0.5)
    before = setting_key(old)
    run_gate(old, PARTS, answers=store)
    old.manifest["thresholds"]["image"] = 0.3  # moved in this process: same id, other answers
    assert setting_key(old) != before and setting_key(old).startswith(old.id)
    assert run_gate(old, PARTS, answers=store).inspected_new == len(PARTS)


def test_kept_answers_survive_reopening_and_keep_their_map(tmp_path):
    old = bundle(tmp_path, "old", 0.5)
    big = part(200, "scratch", 9, size=(300, 400))
    (result,) = old.inspect([big.load_image()])
    first = AnswerStore(tmp_path / "a.sqlite")
    first.put(setting_key(old), old.id, {"k": KeptAnswer.of(result)})
    first.close()
    again = AnswerStore(tmp_path / "a.sqlite")
    kept = again.get(setting_key(old), ["k", "unknown"])
    again.close()
    assert list(kept) == ["k"]
    answer = kept["k"]
    assert (answer.verdict, answer.label, answer.score) == (result.verdict, result.label, round(result.score, 6))
    assert answer.small_map.shape == (96, 128) and answer.anomaly_map.shape == (300, 400)
    assert np.abs(answer.anomaly_map - result.anomaly_map).max() < 0.02 * max(1.0, result.anomaly_map.max())
    assert answer.boxes == [list(b) for b in result.boxes]


def test_a_damaged_store_is_a_clear_error(tmp_path):
    (tmp_path / "answers.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(AnswerStoreError, match="delete the file"):
        AnswerStore(tmp_path / "answers.sqlite")


def test_batches_in_parallel_give_the_same_report_in_order(tmp_path, store):
    old, new = bundle(tmp_path, "old", 0.5), bundle(tmp_path, "new", 0.4)
    many = [part(100 + 3 * i, "good" if i % 3 else "scratch", i) for i in range(40)]
    one = run_gate(new, many, old=old)
    seen = []
    four = run_gate(new, many, old=old, workers=4, progress=lambda d, t: seen.append((d, t)))
    assert [(f.image, f.effect) for f in four.flips] == [(f.image, f.effect) for f in one.flips]
    assert len(four.flips) > 3 and seen[-1] == (40, 40) and seen == sorted(seen)
    with pytest.raises(ConfigError, match="workers"):
        run_gate(new, many, workers=0)
