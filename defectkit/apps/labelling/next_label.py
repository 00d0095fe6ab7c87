"""Which unlabelled image to label next: the one whose label would teach the model most.

Two things make a label worth an engineer's minute:

- the score is close to the threshold (``|log(score / threshold)|`` small): the verdict
  could go either way, and a label there moves the threshold or the bank where it
  matters; an image at 5 x the threshold is a defect whatever one says about it;
- the class head is unsure (the top two probabilities close): a label there separates
  two types (or good from a type) the shots do not yet tell apart.

Each image gets both measures on one scale, 0 (most to learn) upwards: the log ratio
over ``log(2)`` (a factor 2 from the threshold counts as 1) and the top-2 margin (0..1);
the smaller decides its place (the larger breaks ties) and leads its reason. A
type-only model has no threshold, so only the margin counts. Images the fit learned as good are in its memory bank and score
about 0 against themselves: their score says nothing, so they come after the others,
ordered by the margin alone.

Pure functions on numbers, so the rule is tested without a model or a page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: Ratios score / threshold within [1 / BORDERLINE, BORDERLINE] are called borderline.
BORDERLINE = 1.25
#: A top-2 margin below this is called unsure.
UNSURE = 0.3


@dataclass(frozen=True)
class Lesson:
    """How much labelling one image would teach, and why, in words.

    Attributes:
        rank: sort key, smaller first: (0, the smaller measure, the larger) for scored
            images, (1, margin, margin) for those the fit learned as good.
        reason: e.g. "score 0.97 x threshold: borderline" or
            "class head unsure: scratch 48 % vs stain 41 %".
    """

    rank: tuple[int, float, float]
    reason: str


def lesson(
    score: float,
    threshold: float,
    probabilities: Mapping[str, float],
    *,
    has_verdict: bool = True,
    learned: bool = False,
) -> Lesson:
    """The :class:`Lesson` of one image from its score, threshold and class probabilities.

    Args:
        has_verdict: False for a type-only model (only the class head counts).
        learned: the fit took this image in as good (its score is not informative).
    """
    margin, head = _head(probabilities)
    ratio = score / threshold if _usable(score) and _usable(threshold) else None
    if learned:
        return Lesson((1, margin, margin), f"learned as good by this fit; {head}")
    if not has_verdict or ratio is None:
        return Lesson((0, margin, margin), head)
    distance = abs(math.log(ratio)) / math.log(2.0)
    where = _where(ratio)
    scored = f"score {ratio:.2f} x threshold: {where}"
    rank = (0, min(distance, margin), max(distance, margin))
    # The deciding measure leads; when it is not itself a doubt, the other one follows,
    # so a row far down says that neither the score nor the class head is in doubt.
    if distance <= margin:
        return Lesson(rank, scored if where == "borderline" else f"{scored}; {head}")
    return Lesson(rank, head if margin < UNSURE else f"{head}; {scored}")


def label_next(lessons: Sequence[Lesson]) -> list[int]:
    """Indices of ``lessons`` in the order to label them (most to learn first; stable)."""
    return sorted(range(len(lessons)), key=lambda i: lessons[i].rank)


def _usable(value: float) -> bool:
    return math.isfinite(value) and value > 0


def _where(ratio: float) -> str:
    if 1 / BORDERLINE <= ratio <= BORDERLINE:
        return "borderline"
    return "clearly defect" if ratio > 1 else "clearly good"


def _head(probabilities: Mapping[str, float]) -> tuple[float, str]:
    """(top-2 margin, words) of the class head's probabilities."""
    ranked = sorted(probabilities.items(), key=lambda kv: -kv[1])
    if len(ranked) < 2:
        name = ranked[0][0] if ranked else "?"
        return 1.0, f"class head sure: only {name}"
    (a, pa), (b, pb) = ranked[:2]
    margin = float(pa - pb)
    if margin < UNSURE:
        return margin, f"class head unsure: {a} {pa:.0%} vs {b} {pb:.0%}".replace("%", " %")
    return margin, f"class head sure: {a} {pa:.0%}".replace("%", " %")
