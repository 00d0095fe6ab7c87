"""Thresholds from the shots alone.

With two good shots the honest estimate of how a *new* good part scores is
leave-one-out: each good shot scored against a bank built without it. Defect shots,
when present, bound the threshold from above.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: With no defect shots, the threshold sits this far above the highest leave-one-out
#: good score (relative). Few shots under-estimate the spread of good parts; a margin
#: trades a little sensitivity for far fewer false alarms on the line.
NO_DEFECT_MARGIN = 0.15


def calibrate_threshold(good: Sequence[float], defect: Sequence[float] = ()) -> float:
    """Image threshold separating leave-one-out good scores from defect scores.

    * Separable: the midpoint between the highest good and the lowest defect score.
    * Overlapping: the cut that maximises balanced accuracy on the shots; of equally
      good cuts the highest: when the shots cannot tell good from defect, a line that is
      mostly good loses less by passing a doubtful part than by rejecting every good one
      (with the lowest, two defect shots scoring among the good ones put the threshold
      under every good part).
    * No defect shots: the highest good score plus :data:`NO_DEFECT_MARGIN`.
    """
    g = np.asarray(good, dtype=np.float64)
    d = np.asarray(defect, dtype=np.float64)
    if g.size == 0:
        raise ValueError("calibration needs at least one good score")
    if d.size == 0:
        return float(g.max() * (1.0 + NO_DEFECT_MARGIN))
    if d.min() > g.max():
        return float((g.max() + d.min()) / 2.0)
    values = np.unique(np.concatenate([g, d]))
    cuts = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2.0, [values[-1] + 1e-6]])
    best, best_cut = -1.0, float(cuts[0])
    for cut in cuts:
        bacc = ((g < cut).mean() + (d >= cut).mean()) / 2.0
        if bacc >= best - 1e-12:
            best, best_cut = bacc, float(cut)
    return best_cut
