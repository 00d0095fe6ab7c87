"""A frame every image shares is found, and nothing else is taken for one."""

from __future__ import annotations

import numpy as np

from defectkit.core.frame import OPEN, Frame, find_frame, frame_roi


def _texture(seed: int, shape=(120, 160)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gray = np.clip(rng.normal(120, 30, shape), 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def _framed(image: np.ndarray, *, right: int = 0, bottom: int = 0, left: int = 0, value: int = 252) -> np.ndarray:
    out = image.copy()
    if right:
        out[:, -right:] = value
    if bottom:
        out[-bottom:, :] = value
    if left:
        out[:, :left] = value
    return out


def test_a_one_pixel_frame_on_two_edges_is_found_and_left_out():
    images = [_framed(_texture(s), right=1, bottom=1) for s in range(3)]
    assert find_frame(images) == Frame(right=1, bottom=1)
    roi, frame = frame_roi(images)
    assert roi == (0, 0, 159, 119)  # x1, y1 exclusive: the last column and row are out
    assert frame.describe() == "1 px on the right and bottom edges"


def test_a_dark_frame_of_two_lines_on_one_edge():
    images = [_framed(_texture(s), left=2, value=0) for s in range(2)]
    roi, frame = frame_roi(images)
    assert frame == Frame(left=2) and frame.describe() == "2 px on the left edge"
    assert roi == (2, 0, OPEN, OPEN)  # the other edges are not bounded: clipped per image


def test_plain_texture_and_a_uniform_background_have_no_frame():
    assert not find_frame([_texture(s) for s in range(3)])
    # A part on a flat background: the edge lines are uniform, but so are the lines next
    # to them (a background, not a frame).
    part = np.full((120, 160, 3), 30, np.uint8)
    part[40:80, 50:110] = _texture(0)[40:80, 50:110]
    assert not find_frame([part])
    assert frame_roi([part]) == (None, Frame())


def test_only_lines_every_image_has_count():
    images = [_framed(_texture(0), right=1, bottom=1), _texture(1)]
    assert not find_frame(images)
    images = [_framed(_texture(0), right=2), _framed(_texture(1), right=1)]
    assert find_frame(images) == Frame(right=1)


def test_mixed_sizes_keep_only_the_top_and_left_edges():
    images = [_framed(_texture(0, (120, 160)), right=1, left=1), _framed(_texture(1, (100, 200)), right=1, left=1)]
    assert find_frame(images) == Frame(left=1)  # the right edge lies at different places


def test_a_bright_band_wider_than_a_frame_is_not_cut():
    # 10 bright lines on a 120-line image: more than a frame (2 %), so part of the scene.
    images = [_framed(_texture(s), bottom=10) for s in range(2)]
    assert not find_frame(images)
