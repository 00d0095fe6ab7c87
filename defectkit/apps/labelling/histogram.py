"""The threshold chart: scores of good shots vs defect shots, and where the threshold is.

Drawn with Pillow (no matplotlib in the app's dependencies, no figure state shared
between the server's threads). The good shots' scores are leave-one-out scores, i.e.
how a *new* good part scores; a threshold between the two groups separates them.
Unlabelled images' scores, when given, appear as grey ticks under the axis, so the
engineer sees which of them a move of the threshold flips.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

GOOD_COLOUR = (46, 160, 67)
DEFECT_COLOUR = (214, 48, 49)
THRESHOLD_COLOUR = (20, 20, 20)
TICK_COLOUR = (140, 140, 140)


def score_range(scores: Sequence[float], threshold: float) -> float:
    """Upper end of the axis (and of the slider): all scores and the threshold fit."""
    top = max([threshold, *scores]) if scores else threshold
    return float(max(top * 1.15, 1e-3))


def render_histogram(
    good: Sequence[float],
    defect: Sequence[float],
    threshold: float,
    *,
    unlabelled: Sequence[float] = (),
    size: tuple[int, int] = (520, 220),
    bins: int = 24,
) -> np.ndarray:
    """H x W x 3 uint8 chart of the good and defect scores with the threshold line."""
    width, height = size
    top = score_range([*good, *defect, *unlabelled], threshold)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    left, right, axis_y, roof = 10, width - 10, height - 42, 28
    edges = np.linspace(0.0, top, bins + 1)
    counts = [np.histogram(np.asarray(v, float), edges)[0] for v in (good, defect)]
    tallest = max(1, *(int(c.max()) for c in counts if c.size))
    bin_w = (right - left) / bins

    def x_of(value: float) -> float:
        return left + (right - left) * min(max(value / top, 0.0), 1.0)

    for offset, (count, colour) in enumerate(
        zip(counts, (GOOD_COLOUR, DEFECT_COLOUR), strict=True)
    ):
        for i, n in enumerate(count):
            if n:
                x0 = left + i * bin_w + offset * bin_w / 2
                y0 = axis_y - (axis_y - roof) * n / tallest
                draw.rectangle([x0 + 1, y0, x0 + bin_w / 2 - 1, axis_y], fill=colour)
    draw.line([left, axis_y, right, axis_y], fill=(90, 90, 90), width=1)
    for value in unlabelled:
        x = x_of(value)
        draw.line([x, axis_y + 3, x, axis_y + 11], fill=TICK_COLOUR, width=1)
    for value in np.linspace(0, top, 5):
        x = x_of(value)
        draw.text((min(x, right - 24), axis_y + 14), f"{value:.2f}", fill=(60, 60, 60), font=font)
    tx = x_of(threshold)
    draw.line([tx, roof - 6, tx, axis_y + 12], fill=THRESHOLD_COLOUR, width=2)
    draw.text(
        (min(tx + 4, right - 90), roof - 8),
        f"threshold {threshold:.3f}",
        fill=THRESHOLD_COLOUR,
        font=font,
    )
    draw.rectangle([left, 6, left + 10, 16], fill=GOOD_COLOUR)
    draw.text((left + 14, 6), f"good shots ({len(good)})", fill=(40, 40, 40), font=font)
    draw.rectangle([left + 140, 6, left + 150, 16], fill=DEFECT_COLOUR)
    draw.text((left + 154, 6), f"defect shots ({len(defect)})", fill=(40, 40, 40), font=font)
    if unlabelled:
        draw.text((left + 290, 6), f"| unlabelled ({len(unlabelled)})", fill=TICK_COLOUR, font=font)
    return np.asarray(image)
