"""Which unlabelled image to label next (issue 16 item 4): the rule, its reasons, and the
type-only display (issue 16 item 3) wherever a verdict would be shown."""

from __future__ import annotations

import math

import numpy as np
import pytest

from defectkit.apps.labelling import views
from defectkit.apps.labelling.next_label import label_next, lesson
from defectkit.apps.labelling.review import LABEL_NEXT, SORTS, rethreshold, slim, sort_reviewed
from defectkit.core.predictor import inspection_result
from defectkit.core.results import RawOutputs, Thresholds

VERDICT = ("good", "scratch", "stain")
TYPES = ("scratch", "stain")


# --------------------------------------------------------------------------- the rule
def test_closest_to_the_threshold_first_on_a_log_scale():
    sure = {"good": 0.95, "scratch": 0.04, "stain": 0.01}
    scores = [6.0, 0.97, 0.5, 1.3, 0.2, 1.8]
    lessons = [lesson(s, 1.0, sure) for s in scores]
    # |log ratio|: 0.5 and 2.0 are equally far from the threshold (factor 2 either way)
    assert [scores[i] for i in label_next(lessons)] == [0.97, 1.3, 1.8, 0.5, 0.2, 6.0]
    assert lessons[1].reason == "score 0.97 x threshold: borderline"
    assert lessons[5].reason == "score 1.80 x threshold: clearly defect; class head sure: good 95 %"
    # neither measure in doubt: both are said, the class head's first (it decided the place)
    assert lessons[0].reason == "class head sure: good 95 %; score 6.00 x threshold: clearly defect"
    assert lessons[4].reason.endswith("score 0.20 x threshold: clearly good")
    # the threshold, not the raw score, is the reference
    assert lesson(1.94, 2.0, sure).reason == "score 0.97 x threshold: borderline"


def test_an_unsure_class_head_comes_before_a_clear_score():
    unsure = {"good": 0.11, "scratch": 0.48, "stain": 0.41}
    clear = lesson(3.0, 1.0, unsure)  # far above the threshold, but the type is a coin toss
    borderline = lesson(1.02, 1.0, {"good": 0.9, "scratch": 0.1, "stain": 0.0})
    assert clear.reason == "class head unsure: scratch 48 % vs stain 41 %"
    assert label_next([clear, borderline]) == [1, 0]  # 0.03 from the threshold beats margin 0.07
    far = lesson(8.0, 1.0, {"good": 0.9, "scratch": 0.1, "stain": 0.0})
    assert label_next([far, clear]) == [1, 0]


def test_a_type_only_model_is_ordered_by_the_class_head_alone():
    lessons = [
        lesson(math.nan, math.inf, {"scratch": 0.9, "stain": 0.1}, has_verdict=False),
        lesson(math.nan, math.inf, {"scratch": 0.52, "stain": 0.48}, has_verdict=False),
        lesson(math.nan, math.inf, {"scratch": 0.3, "stain": 0.7}, has_verdict=False),
    ]
    assert label_next(lessons) == [1, 2, 0]
    assert lessons[1].reason == "class head unsure: scratch 52 % vs stain 48 %"
    assert lessons[0].reason == "class head sure: scratch 90 %"
    assert all("threshold" not in x.reason for x in lessons)


def test_images_the_fit_learned_as_good_come_last():
    """Their score is against a bank holding their own patches: ~0 by construction."""
    head = {"good": 0.6, "scratch": 0.4, "stain": 0.0}
    learned = lesson(0.001, 1.0, head, learned=True)
    far = lesson(9.0, 1.0, {"good": 0.0, "scratch": 1.0, "stain": 0.0})
    assert label_next([learned, far]) == [1, 0]
    assert learned.reason.startswith("learned as good by this fit; class head unsure")


def test_ties_keep_the_given_order():
    same = {"good": 1.0, "scratch": 0.0, "stain": 0.0}
    assert label_next([lesson(2.0, 1.0, same), lesson(0.5, 1.0, same)]) == [0, 1]


# --------------------------------------------------------------------------- on results
def _result(score, probs, *, classes=VERDICT, has_verdict=True):
    amap = np.zeros((32, 32), np.float32)
    amap[4:8, 4:8] = score if math.isfinite(score) else 0.0
    raw = RawOutputs(score, amap, np.log(np.asarray(probs)), np.zeros(0))
    thresholds = Thresholds(1.0, 1.0, 1) if has_verdict else Thresholds(math.inf, math.inf)
    return inspection_result(
        raw, classes=classes, thresholds=thresholds, image_size=(32, 32), has_verdict=has_verdict
    )


def test_label_next_is_the_review_default_and_each_row_says_why():
    items = [
        slim("a", "a.png", _result(4.0, (0.01, 0.98, 0.01))),
        slim("b", "b.png", _result(0.95, (0.9, 0.05, 0.05))),
        slim("c", "c.png", _result(0.3, (0.5, 0.3, 0.2))),
    ]
    assert next(iter(SORTS)) == LABEL_NEXT
    ordered = sort_reviewed(items, LABEL_NEXT)
    assert [i.name for i in ordered] == ["b.png", "c.png", "a.png"]
    rows = views.review_rows(ordered)
    assert views.REVIEW_COLUMNS[-1] == "label next: why"
    assert rows[0][-1] == "score 0.95 x threshold: borderline"
    assert rows[1][-1] == "class head unsure: good 50 % vs scratch 30 %"
    assert "Label next: score 0.95 x threshold: borderline" in views.describe(ordered[0])
    learned = sort_reviewed(items, LABEL_NEXT, learned={"b"})
    assert [i.name for i in learned][-1] == "b.png"  # in the bank: its score says nothing


# --------------------------------------------------------------------------- type-only
def test_a_type_only_result_says_no_verdict_everywhere():
    result = _result(math.nan, (0.8, 0.2), classes=TYPES, has_verdict=False)
    assert result.verdict is None and result.mode == "type_only"
    item = slim("t", "t.png", result)
    (row,) = views.review_rows([item])
    assert row[:4] == ["t.png", "defect sorting: no verdict", "scratch", "-"]
    assert row[-1] == "class head sure: scratch 80 %"
    text = views.describe(item)
    assert "Verdict: **defect sorting: no verdict**" in text
    assert "Type: **scratch**. Class head: scratch 80%, stain 20%" in text
    assert "**good**" not in text and "**DEFECT**" not in text and "Score" not in text
    caption = views.review_caption(item)
    assert caption == "t.png · type scratch · no verdict"
    # no score to sort by: type-only items sort by name after any scored ones
    other = slim("u", "a.png", result)
    assert [i.id for i in sort_reviewed([item, other], "score, highest first")] == ["u", "t"]


def test_a_type_only_result_stays_type_only_when_decided_again():
    """The review decides kept results again at the project's thresholds: that must not
    turn a type-only result into a verdict."""
    result = _result(math.nan, (0.3, 0.7), classes=TYPES, has_verdict=False)
    again = rethreshold(result, TYPES, Thresholds(math.inf, math.inf))
    assert (again.verdict, again.mode, again.label) == (None, "type_only", "stain")


@pytest.mark.parametrize("mode", ["type_only", "inspect"])
def test_the_threshold_words_follow_the_mode(mode):
    from defectkit.apps.labelling.records import FitRecord

    record = FitRecord(
        id="f", created="now", backbone="b", fingerprint="x", classes=list(TYPES),
        shots={"scratch": 2, "stain": 2}, good_scores=[], defect_scores={},
        fitted_thresholds={"image": math.inf if mode == "type_only" else 1.2, "pixel": 1.0},
        mode=mode,
    )  # fmt: skip
    words = views.refit_words(None, record) + views.fit_status(record)
    assert ("no verdict" in words) == (mode == "type_only")
