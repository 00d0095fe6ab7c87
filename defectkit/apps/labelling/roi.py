"""The project's region of interest: one box, drawn once in the app, used by every fit.

The box is ``(x0, y0, x1, y1)`` in image pixels, exactly what
:attr:`~defectkit.inspect.config.InspectorConfig.roi` and ``inspect fit --roi`` take:
the engineer draws it on one image, and it applies in those same pixels to every image
(an image smaller than the box is clipped to it, as tiling does). Outside it nothing
is learned or scored, so a fixture, a background or a frame can be left out on purpose.

Why the project keeps it in its settings rather than in the fit: a fit is replaced by
the next one, and the region must survive refits, restarts and a copied project
folder. The fit records the region it used (its config), so the page can say which
one a model has and when the saved region differs from it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from defectkit.apps.labelling.records import ProjectError

if TYPE_CHECKING:
    from defectkit.apps.labelling.project import Project
    from defectkit.apps.labelling.records import FitRecord

#: The project setting that holds the region (a list of four ints, or absent).
ROI_SETTING = "roi"
#: The smallest region tiling accepts in an image (:func:`defectkit.core.tiling.clip_box`).
MIN_SIDE = 8
#: Outline colour of the region on the page's pictures; outside it is dimmed.
OUTLINE = np.array([255, 200, 0], np.uint8)


class RoiError(ProjectError):
    """A region the engineer drew or typed cannot be used (empty, inverted, off the image)."""


class Roi(NamedTuple):
    """A region of interest in image pixels: x0 <= x < x1, y0 <= y < y1."""

    x0: int
    y0: int
    x1: int
    y1: int

    def clipped(self, width: int, height: int) -> Roi:
        """The part of the region inside a ``width`` x ``height`` image (may be empty)."""
        return Roi(
            min(self.x0, width), min(self.y0, height), min(self.x1, width), min(self.y1, height)
        )

    def scaled(self, factor: float) -> Roi:
        """The region on a copy of the image resized by ``factor`` (display, thumbnail)."""
        return Roi(*(int(round(v * factor)) for v in self))

    def words(self) -> str:
        return f"x {self.x0}-{self.x1}, y {self.y0}-{self.y1} px ({self.x1 - self.x0} x {self.y1 - self.y0})"


def check_roi(values: Any, width: int, height: int) -> Roi:
    """The typed or clicked ``values`` (x0, y0, x1, y1) as a :class:`Roi`, checked against
    the ``width`` x ``height`` image it was drawn on.

    Raises:
        RoiError: a missing or non-integer number, a negative one, an empty or inverted
            box, or a box that leaves less than :data:`MIN_SIDE` px of that image.
    """
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        raise RoiError(f"the region needs four numbers X0 Y0 X1 Y1, got {values!r}") from None
    if len(numbers) != 4 or not all(np.isfinite(numbers)) or any(v != int(v) for v in numbers):
        raise RoiError(f"the region needs four whole numbers X0 Y0 X1 Y1, got {values!r}")
    roi = Roi(*(int(v) for v in numbers))
    if min(roi) < 0:
        raise RoiError(f"the region {roi.words()} has a negative corner; pixels start at 0")
    if roi.x1 == roi.x0 or roi.y1 == roi.y0:
        raise RoiError(
            f"the region x {roi.x0}-{roi.x1}, y {roi.y0}-{roi.y1} is empty: click two opposite "
            "corners of the part (or type X1 > X0 and Y1 > Y0)"
        )
    if roi.x1 < roi.x0 or roi.y1 < roi.y0:
        raise RoiError(
            f"the region x {roi.x0}-{roi.x1}, y {roi.y0}-{roi.y1} is inverted: X1 must be "
            "greater than X0 and Y1 greater than Y0"
        )
    inside = roi.clipped(width, height)
    if inside.x1 - inside.x0 < MIN_SIDE or inside.y1 - inside.y0 < MIN_SIDE:
        raise RoiError(
            f"the region {roi.words()} leaves less than {MIN_SIDE} x {MIN_SIDE} px of this "
            f"{width} x {height} image; draw it over the part"
        )
    return roi


def corners_roi(first: tuple[int, int], second: tuple[int, int], width: int, height: int) -> Roi:
    """The region with two clicked opposite corners (in either order), checked."""
    (ax, ay), (bx, by) = first, second
    return check_roi((min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)), width, height)


def click_to_pixel(index: Any, shown: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """A click on the page's copy (``shown`` = its H, W) as a pixel of the image (``size``
    = its H, W): the page shows a display-sized copy of large images."""
    x, y = (float(v) for v in index)
    return (
        min(size[1], max(0, int(round(x * size[1] / shown[1])))),
        min(size[0], max(0, int(round(y * size[0] / shown[0])))),
    )


# ------------------------------------------------------------------ the project's region
def project_roi(project: Project) -> Roi | None:
    """The saved region, or None (the whole image)."""
    value = project.setting(ROI_SETTING)
    return Roi(*(int(v) for v in value)) if value else None


def save_roi(project: Project, roi: Roi | None) -> None:
    """Keep ``roi`` (None clears it) for every later fit; takes effect at the next fit."""
    project.remember(ROI_SETTING, None if roi is None else [int(v) for v in roi])


def with_project_roi(config, project: Project):
    """``config`` with the project's saved region, when one is saved (else unchanged)."""
    roi = project_roi(project)
    return config if roi is None else replace(config, roi=tuple(roi))


def fitted_roi(record: FitRecord | None) -> Roi | None:
    """The region a fit used (from its recorded config), or None."""
    value = (record.config or {}).get("roi") if record is not None else None
    return Roi(*(int(v) for v in value)) if value else None


def fit_roi_words(record: FitRecord) -> str:
    """What the status line adds after a fit: the region it used, when it had one."""
    roi = fitted_roi(record)
    return f"; region of interest {roi.words()}" if roi else ""


def roi_markdown(project: Project) -> str:
    """The fit summary's sentence on the region, and a warning when the saved region
    is not the one the fitted model uses."""
    record = project.fit_record
    if record is None:
        return ""
    used, saved = fitted_roi(record), project_roi(project)
    text = (
        f" Region of interest: {used.words()}." if used else " Region of interest: the whole image."
    )
    if used != saved:
        now = saved.words() if saved else "the whole image"
        text += f"\n\n⚠ The region of interest is now {now}: click **Fit** to use it."
    return text


# ------------------------------------------------------------------ pictures
def draw_roi(image: np.ndarray, roi: Roi | None, *, scale: float = 1.0) -> np.ndarray:
    """``image`` (H x W x 3 uint8, a copy of the original resized by ``scale``) with the
    region outlined and the rest dimmed; unchanged when there is no region."""
    if roi is None:
        return image
    h, w = image.shape[:2]
    box = roi.scaled(scale).clipped(w, h)
    out = (image.astype(np.uint16) * 2 // 5).astype(np.uint8)
    out[box.y0 : box.y1, box.x0 : box.x1] = image[box.y0 : box.y1, box.x0 : box.x1]
    t = max(2, round(max(h, w) / 200))  # visible on a thumbnail and on a display copy
    for y0, y1, x0, x1 in (
        (box.y0, box.y0 + t, box.x0, box.x1), (box.y1 - t, box.y1, box.x0, box.x1),
        (box.y0, box.y1, box.x0, box.x0 + t), (box.y0, box.y1, box.x1 - t, box.x1),
    ):  # fmt: skip
        out[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = OUTLINE
    return out


def draw_corner(image: np.ndarray, corner: tuple[int, int], *, scale: float = 1.0) -> np.ndarray:
    """``image`` with a cross at the first clicked corner (image pixels), so the engineer
    sees where the box will start."""
    out = image.copy()
    h, w = out.shape[:2]
    x, y = min(w - 1, int(round(corner[0] * scale))), min(h - 1, int(round(corner[1] * scale)))
    arm, t = max(4, max(h, w) // 40), max(1, round(max(h, w) / 300))
    out[max(0, y - t) : y + t + 1, max(0, x - arm) : x + arm + 1] = OUTLINE
    out[max(0, y - arm) : y + arm + 1, max(0, x - t) : x + t + 1] = OUTLINE
    return out
