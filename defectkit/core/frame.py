"""A frame every image shares: uniform lines along the edges, left out of the inspection.

Scanners, renderers and some cameras write a border into every image they save: a line
or two of one value along an edge (the packaged textile set has a 1-pixel white frame on
its bottom and right edges). It is not the part, yet it sits where the backbone's view
of the image ends, and learned as "normal" from a couple of good shots it still sets the
score of every patch near it: on the textile set's development seeds image AUROC was
0.84 with the frame and 0.96 with it cut off (benchmarks/results/fewshot_suite.md).

So when no region of interest is set, the fit looks for such lines and leaves them out
(:func:`frame_roi`). A line counts as frame when, in *every* image looked at, it is
nearly uniform (its spread along the line under :data:`UNIFORM` of the typical spread of
the lines next to it) and its mean stands apart from theirs (by more than :data:`APART`
robust standard deviations of their means, and by at least :data:`MIN_STEP`). Only runs
of such lines starting at the edge count, at most :data:`MAX_SHARE` of the image's side:
a background that is uniform all the way in is not a frame, and nothing inside the
image is ever cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: A frame is at most this share of the side it runs along (at least one line).
MAX_SHARE = 0.02
#: Lines just inside the widest possible frame that say what the image looks like there.
REFERENCE_LINES = 8
#: A frame line's spread along its length is under this share of the reference lines'.
UNIFORM = 0.25
#: ... and its mean differs from theirs by more than this many robust standard
#: deviations of their means ...
APART = 6.0
#: ... and by at least this much (gray levels of 255): a flat image has no frame.
MIN_STEP = 8.0
#: The region's far corner on an edge without a frame: no bound (clipped to each image).
OPEN = 2**31 - 1
#: What a fit says when it found one (the CLI's summary line, the app's status), with
#: :meth:`Frame.describe`.
LEFT_OUT = "left out the frame every image has ({})"


@dataclass(frozen=True)
class Frame:
    """Lines of a frame on each edge of the images (0: none on that edge)."""

    top: int = 0
    right: int = 0
    bottom: int = 0
    left: int = 0

    def __bool__(self) -> bool:
        return any((self.top, self.right, self.bottom, self.left))

    def describe(self) -> str:
        """``"1 px on the right and bottom edges"``, for a fit's summary line."""
        sides = [(n, getattr(self, n)) for n in ("top", "right", "bottom", "left") if getattr(self, n)]
        widths = {w for _, w in sides}
        names = [n for n, _ in sides]
        where = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        edges = "edge" if len(names) == 1 else "edges"
        if len(widths) == 1:
            return f"{widths.pop()} px on the {where} {edges}"
        return ", ".join(f"{w} px {n}" for n, w in sides)


def _lines(gray: np.ndarray, side: str) -> np.ndarray:
    """The image's lines parallel to ``side``, the edge's own line first (L x length)."""
    return {"top": gray, "bottom": gray[::-1], "left": gray.T, "right": gray.T[::-1]}[side]


def _edge_run(gray: np.ndarray, side: str) -> int:
    """How many lines from ``side``'s edge inward are frame lines in this image."""
    lines = _lines(gray, side)
    widest = max(1, int(MAX_SHARE * lines.shape[0]))
    reference = lines[widest : widest + REFERENCE_LINES]
    if len(reference) < REFERENCE_LINES or lines.shape[1] < 8:
        return 0
    ref_means = reference.mean(axis=1)
    ref_spread = float(np.median(reference.std(axis=1)))
    centre = float(np.median(ref_means))
    mad = 1.4826 * float(np.median(np.abs(ref_means - centre)))
    step = max(APART * mad, MIN_STEP)
    run = 0
    for line in lines[:widest]:
        if float(line.std()) > UNIFORM * ref_spread + 1e-6 or abs(float(line.mean()) - centre) <= step:
            break
        run += 1
    return run


def find_frame(images: Sequence[np.ndarray]) -> Frame:
    """The frame shared by all ``images`` (H x W x 3 uint8): on each edge, the lines
    that are frame lines in every one of them (none when the sizes differ and the
    edge is the bottom or right one, whose lines then lie at different places)."""
    if not images:
        return Frame()
    grays = [np.asarray(image, dtype=np.float32).mean(axis=2) for image in images]
    same_size = len({g.shape for g in grays}) == 1
    runs = {}
    for side in ("top", "right", "bottom", "left"):
        if side in ("right", "bottom") and not same_size:
            runs[side] = 0
            continue
        runs[side] = min(_edge_run(g, side) for g in grays)
    return Frame(**runs)


def frame_roi(images: Sequence[np.ndarray]) -> tuple[tuple[int, int, int, int] | None, Frame]:
    """The region of interest that leaves out the frame all ``images`` share, in image
    pixels (x0, y0, x1, y1), and the frame; (None, empty frame) when there is none."""
    frame = find_frame(images)
    if not frame:
        return None, frame
    h, w = images[0].shape[:2]  # one size for all when the frame has a right or bottom edge
    x1 = w - frame.right if frame.right else OPEN
    y1 = h - frame.bottom if frame.bottom else OPEN
    return (frame.left, frame.top, x1, y1), frame
