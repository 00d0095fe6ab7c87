"""Pictures for the page, made on display-sized copies of the images.

Why: line photographs are large (a 6000 x 4000 one is 70 MB of pixels). Blending a
heatmap on the full image and sending it to the browser froze the details view for
~20 s; the page shows at most :data:`DISPLAY_SIDE` px anyway. So every picture the page
shows - the heatmap, the predicted mask, the mask editor - is drawn on a copy at most
that size, and what comes back from the page (a painted mask) is scaled back to the
image's own pixels. Results, boxes and captions stay in the original image's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from defectkit.core.decide import resize_map
from defectkit.core.overlay import overlay

#: Longest side of the copy the page shows and paints on: a pit of a few pixels in a
#: 6000 px photograph is still visible at 1280 px.
DISPLAY_SIDE = 1280


def display_size(height: int, width: int, side: int = DISPLAY_SIDE) -> tuple[int, int]:
    """(H, W) of the display copy: the longest side at most ``side``, aspect ratio kept."""
    scale = min(1.0, side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def shrink(image: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    """``image`` (H x W [x C] uint8) at :func:`display_size`; unchanged when small enough."""
    size = display_size(*image.shape[:2], side)
    if size == image.shape[:2]:
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))


def shrink_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A bool mask at ``size``; a display pixel is set when any pixel under it is, so a
    thin defect does not vanish from the picture."""
    if mask.shape == tuple(size):
        return mask.astype(bool, copy=False)
    small = Image.fromarray(mask.astype(np.uint8) * 255).resize((size[1], size[0]), Image.BOX)
    return np.asarray(small) > 0


@dataclass(frozen=True)
class DisplayMaps:
    """A result's anomaly map and mask at display size (the page's pictures use these)."""

    anomaly_map: np.ndarray  # h x w float32
    mask: np.ndarray  # h x w bool
    image_size: tuple[int, int]  # (H, W) of the original image

    @classmethod
    def of(cls, anomaly_map: np.ndarray, mask: np.ndarray) -> DisplayMaps:
        """Shrink a result's full-size map and mask."""
        size = display_size(*mask.shape)
        return cls(resize_map(anomaly_map, size), shrink_mask(mask, size), tuple(mask.shape))

    def boxes_at(self, shape: tuple[int, ...], boxes: list[list[int]]) -> list[list[int]]:
        """``boxes`` (original pixels) scaled to a picture of ``shape``, at least 1 px wide."""
        sy, sx = shape[0] / self.image_size[0], shape[1] / self.image_size[1]
        return [
            [int(x0 * sx), int(y0 * sy), max(int(x1 * sx), int(x0 * sx) + 1),
             max(int(y1 * sy), int(y0 * sy) + 1)]
            for x0, y0, x1, y1 in boxes
        ]  # fmt: skip


def overlay_image(image: np.ndarray, maps: DisplayMaps, threshold: float, boxes) -> np.ndarray:
    """Heatmap blended on ``image`` (any size, usually the display copy), boxes outlined."""
    amap = resize_map(maps.anomaly_map, image.shape[:2])
    return overlay(image, amap, threshold=threshold, boxes=maps.boxes_at(image.shape, boxes))


def mask_image(image: np.ndarray, mask: np.ndarray | None, colour=(230, 40, 40)) -> np.ndarray:
    """The image dimmed, with ``mask`` (resized to the image) painted in ``colour``."""
    out = (image.astype(np.float32) * 0.6).astype(np.uint8)
    if mask is not None and mask.any():
        mask = shrink_mask(mask, image.shape[:2]) if mask.shape != image.shape[:2] else mask
        out[mask] = (0.35 * image[mask] + 0.65 * np.array(colour)).astype(np.uint8)
    return out


# --------------------------------------------------------------------------- mask editor
#: The colour a region the brush keeps (the model's proposal in the review queue, a
#: shot's saved mask in the Label tab) is tinted in: not the brush's red, so the
#: engineer's strokes stand apart from it.
KEPT_TINT = (255, 200, 0)


def tint(image: np.ndarray, mask: np.ndarray | None, colour=KEPT_TINT) -> np.ndarray:
    """``image`` with ``mask`` (resized to it) half-blended with ``colour``; others unchanged."""
    if mask is None or not mask.any():
        return image
    mask = shrink_mask(mask, image.shape[:2])
    out = image.copy()
    out[mask] = (0.5 * image[mask] + 0.5 * np.array(colour)).astype(np.uint8)
    return out


def editor_value(image: np.ndarray, kept: np.ndarray | None = None) -> dict:
    """What the app's brush opens with: the (display) image, the region it keeps (``kept``,
    any size) tinted in, and no paint layer (the strokes come back as one).

    Why tinted into the picture, not sent as a paint layer: Gradio 6.31's ImageEditor
    neither shows a layer it is sent nor keeps it once the engineer paints (the first
    stroke replaces it; measured in the browser), so a mask sent that way vanished unseen
    and the next Save stored the new stroke alone. The kept region is added back on the
    server (:func:`mask_with_strokes`); a tick box beside the brush keeps or drops it whole.
    """
    return {"background": tint(image, kept), "layers": [], "composite": None}


def mask_with_strokes(value, shape: tuple[int, int], kept: np.ndarray | None) -> np.ndarray | None:
    """The kept region (H x W bool at ``shape``, or None to drop it) plus the strokes
    painted in the brush (:func:`mask_from_editor`); None when neither has a pixel."""
    strokes = mask_from_editor(value, shape)
    if kept is None or not kept.any():
        return strokes
    return kept if strokes is None else kept | strokes


def editor_was_cleared(value) -> bool:
    """True when the editor holds no photograph: its trash icon wiped it (the page
    sends no background then, or a blank one). Nothing painted there means nothing."""
    if not isinstance(value, dict):
        return True
    background = value.get("background")
    if background is None:
        return True
    background = np.asarray(background)
    if background.ndim == 3 and background.shape[2] == 4:
        return not background[..., 3].any()
    return background.size == 0


def mask_from_editor(value, shape: tuple[int, int]) -> np.ndarray | None:
    """The painted region of an ImageEditor value as H x W bool at the image's size.

    Paint lives in the layers (alpha > 0); when a browser sends no layers, the
    difference between composite and background is the paint. The editor shows the
    display copy, so the paint is scaled up to ``shape`` (nearest neighbour).
    """
    if not isinstance(value, dict):
        return None
    painted = None
    for layer in value.get("layers") or []:
        if layer is None:
            continue
        layer = np.asarray(layer)
        alpha = layer[..., 3] > 0 if layer.ndim == 3 and layer.shape[2] == 4 else layer.any(axis=-1)
        painted = alpha if painted is None else (painted | alpha)
    if (
        painted is None
        and value.get("composite") is not None
        and value.get("background") is not None
    ):
        composite, background = np.asarray(value["composite"]), np.asarray(value["background"])
        if composite.shape == background.shape:
            painted = np.any(composite[..., :3] != background[..., :3], axis=-1)
    if painted is None or not painted.any():
        return None
    if painted.shape != tuple(shape):
        resized = Image.fromarray(painted.astype(np.uint8) * 255).resize(
            (shape[1], shape[0]), Image.NEAREST
        )
        painted = np.asarray(resized) > 127
    return painted
