"""Support sets: the labelled shots an inspector is fitted from."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from defectkit.core.labels import GOOD
from defectkit.datasets.base import Sample
from defectkit.errors import SupportSetError


@dataclass(frozen=True)
class SupportSet:
    """Labelled shots and the class order (``good`` first, then defect classes sorted)."""

    shots: tuple[Sample, ...]
    classes: tuple[str, ...]

    @classmethod
    def from_samples(
        cls, samples: Sequence[Sample], classes: Sequence[str] | None = None
    ) -> SupportSet:
        """Validate shots: every declared class has a shot. Shots without a ``good`` class
        (defect sorting) or no shots at all (unlabelled images only) are valid here; the
        fit says what it can make of them."""
        shots = tuple(samples)
        present = {s.label for s in shots}
        declared = list(classes) if classes is not None else sorted(present - {GOOD})
        missing = [c for c in declared if c != GOOD and c not in present]
        if missing:
            raise SupportSetError(
                f"class{'es' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
                "has no labelled shots: label at least one image of each class, or remove it"
            )
        unknown = present - set(declared) - {GOOD}
        if unknown:
            raise SupportSetError(f"shots labelled {sorted(unknown)} are not among the classes")
        defects = tuple(sorted(c for c in declared if c != GOOD))
        return cls(shots=shots, classes=(GOOD, *defects) if GOOD in present else defects)

    def by_class(self) -> dict[str, list[Sample]]:
        groups: dict[str, list[Sample]] = defaultdict(list)
        for s in self.shots:
            groups[s.label].append(s)
        return dict(groups)

    def summary(self) -> dict[str, object]:
        """Counts per class and how many shots carry a mask or a note (for manifests)."""
        groups = self.by_class()
        return {
            "classes": list(self.classes),
            "shots_per_class": {c: len(groups.get(c, [])) for c in self.classes},
            "with_mask": sum(s.mask_path is not None or s.mask_array is not None for s in self.shots),
            "with_note": sum(bool(s.note) for s in self.shots),
            "files": [s.key for s in self.shots],
        }


def pick_shots(
    samples: Sequence[Sample], shots: int, *, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """Pick ``shots`` samples per class, reproducibly; returns (support, the rest).

    Order within the result follows the input order so that the same seed gives the
    same support set whatever Python's hash seed is.
    """
    if shots < 1:
        raise SupportSetError(f"--shots must be at least 1, got {shots}")
    rng = random.Random(seed)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        groups[s.label].append(i)
    chosen: set[int] = set()
    for label in sorted(groups):
        idx = groups[label]
        chosen.update(rng.sample(idx, min(shots, len(idx))))
    support = [s for i, s in enumerate(samples) if i in chosen]
    rest = [s for i, s in enumerate(samples) if i not in chosen]
    return support, rest
