"""Tiling: every patch of an image's grid comes from exactly one tile, aspect and ROI kept."""

from __future__ import annotations

import numpy as np
import pytest

from defectkit.core.tiling import (
    TileSpec,
    choose_tile_size,
    clip_box,
    cut_tiles,
    grid_to_image,
    mask_to_grid,
    plan_tiles,
    stitch,
)
from defectkit.errors import ConfigError, ImageError

SIZES = [(1130, 460), (460, 1130), (4096, 256), (64, 64), (257, 129)]
SPECS = [
    TileSpec(size=(128, 128), stride=8, margin=32),
    TileSpec(size=(224, 224), stride=8, margin=32),
    TileSpec(size=(256, 512), stride=8, margin=16),
    TileSpec(size=(96, 160), stride=16, margin=32),
    TileSpec(size=(64, 64), stride=8, margin=0),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.size[0]}x{s.size[1]}m{s.margin}s{s.stride}")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_grid_cell_comes_from_exactly_one_tile_inside_its_margin(size, spec):
    plan = plan_tiles(spec, size)
    s, (th, tw) = spec.stride, spec.size
    assert plan.grid == (-(-size[0] // s), -(-size[1] // s))  # scale 1: one cell per stride
    hits = np.zeros(plan.grid, dtype=int)
    for (oy, ox), ((gy0, gy1), (gx0, gx1)) in zip(plan.origins, plan.cores, strict=True):
        assert oy % s == 0 and ox % s == 0
        hits[gy0:gy1, gx0:gx1] += 1
        # The core lies inside the tile, and at least a margin from any edge of the
        # tile that is not the image's own edge (zero padding never reaches it).
        assert oy <= gy0 * s and gy1 * s <= oy + th and ox <= gx0 * s and gx1 * s <= ox + tw
        assert gy0 == 0 or gy0 * s - oy >= spec.margin
        assert gx0 == 0 or gx0 * s - ox >= spec.margin
        assert gy1 == plan.grid[0] or oy + th - gy1 * s >= spec.margin
        assert gx1 == plan.grid[1] or ox + tw - gx1 * s >= spec.margin
    np.testing.assert_array_equal(hits, 1)


@pytest.mark.parametrize("spec", SPECS[:4], ids=lambda s: f"{s.size[0]}x{s.size[1]}")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_stitching_tile_coordinates_reproduces_the_global_grid(size, spec):
    plan = plan_tiles(spec, size)
    gh, gw = spec.grid
    maps = []
    for oy, ox in plan.origins:  # each tile says which global cell each of its cells is
        ys, xs = np.mgrid[0:gh, 0:gw]
        maps.append(np.stack([ys + oy // spec.stride, xs + ox // spec.stride]))
    stitched = stitch(np.stack(maps), spec, plan)
    ys, xs = np.mgrid[0 : plan.grid[0], 0 : plan.grid[1]]
    np.testing.assert_array_equal(stitched[0], ys)
    np.testing.assert_array_equal(stitched[1], xs)
    with pytest.raises(ValueError, match="tiles"):
        stitch(np.stack(maps)[:-1] if len(maps) > 1 else np.zeros((2, 2, gh, gw)), spec, plan)


def test_cut_tiles_are_the_image_pixels_at_their_origins():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)
    spec = TileSpec(size=(128, 128), stride=8, margin=32)
    tiles, plan = cut_tiles(image, spec)
    assert tiles.shape == (plan.n_tiles, 3, 128, 128) and tiles.dtype == np.float32
    for tile, (oy, ox) in zip(tiles, plan.origins, strict=True):
        part = image[oy : oy + 128, ox : ox + 128]
        h, w = part.shape[:2]  # the last tiles may reach into the reflected padding
        np.testing.assert_array_equal(tile[:, :h, :w], part.transpose(2, 0, 1) / np.float32(255))


def test_scale_keeps_the_aspect_ratio():
    spec = TileSpec(size=(128, 128), stride=8, margin=32, scale=0.5)
    for h, w in [(1130, 460), (460, 1130), (4096, 256)]:
        plan = plan_tiles(spec, (h, w))
        assert plan.scaled == (round(h * 0.5), round(w * 0.5))
        assert abs(plan.scaled[0] / plan.scaled[1] - h / w) < 0.01 * h / w
        tiles, _ = cut_tiles(np.zeros((h, w, 3), np.uint8), spec, plan)
        assert tiles.shape[1:] == (3, 128, 128)
    # A small image is padded up to one tile, never stretched.
    small = plan_tiles(TileSpec(size=(128, 128), stride=8, margin=32), (40, 90))
    assert small.scaled == (40, 90) and small.grid == (5, 12) and small.n_tiles == 1


def test_roi_is_clipped_to_the_image_and_grid_to_image_fills_outside_it():
    spec = TileSpec(size=(64, 64), stride=8, margin=16, roi=(16, 8, 1000, 40))
    assert clip_box(spec, (64, 80)) == (16, 8, 80, 40)
    plan = plan_tiles(spec, (64, 80))
    assert plan.box == (16, 8, 80, 40) and plan.scaled == (32, 64) and plan.grid == (4, 8)
    image = np.zeros((64, 80, 3), np.uint8)
    image[8:40, 16:80] = 200  # the region of interest is bright, the rest dark
    tiles, _ = cut_tiles(image, spec, plan)
    assert np.allclose(tiles[:, :, :32, :64], 200 / 255)  # only the region is cut
    full = grid_to_image(np.full(plan.grid, 3.0, np.float32), spec, plan, fill=-1.0)
    assert full.shape == (64, 80)
    np.testing.assert_allclose(full[8:40, 16:80], 3.0)
    assert (full[:8] == -1).all() and (full[40:] == -1).all() and (full[:, :16] == -1).all()
    with pytest.raises(ImageError, match="region of interest"):
        clip_box(spec, (64, 20))  # the region lies outside this narrow image


def test_grid_to_image_puts_each_cell_where_its_pixels_are():
    spec = TileSpec(size=(64, 64), stride=8, margin=16)
    plan = plan_tiles(spec, (96, 320))
    grid = np.zeros(plan.grid, np.float32)
    grid[5, 30] = 1.0  # the cell over pixels y 40..48, x 240..248
    full = grid_to_image(grid, spec, plan)
    assert full.shape == (96, 320)
    y, x = np.unravel_index(np.argmax(full), full.shape)
    assert 40 <= y < 48 and 240 <= x < 248


def test_mask_to_grid_gives_the_share_of_each_patch_covered():
    spec = TileSpec(size=(64, 64), stride=8, margin=16)
    plan = plan_tiles(spec, (64, 96))
    mask = np.zeros((64, 96), bool)
    mask[16:24, 40:48] = True  # exactly cell (2, 5)
    mask[0:4, 0:8] = True  # half of cell (0, 0)
    cells = mask_to_grid(mask, spec, plan)
    assert cells.shape == plan.grid == (8, 12)
    assert cells[2, 5] == pytest.approx(1.0) and cells[0, 0] == pytest.approx(0.5)
    assert cells.sum() == pytest.approx(1.5)
    # With a scale, the covered share follows the resampled mask.
    half = TileSpec(size=(64, 64), stride=8, margin=16, scale=0.5)
    full = mask_to_grid(np.ones((64, 96), bool), half, plan_tiles(half, (64, 96)))
    assert full.shape == (4, 6) and np.allclose(full, 1.0)


def test_gray_and_16_bit_images_become_three_channels_in_0_1():
    spec = TileSpec(size=(64, 64), stride=8, margin=16)
    rng = np.random.default_rng(1)
    gray8 = rng.integers(0, 256, (70, 50), dtype=np.uint8)
    tiles8, _ = cut_tiles(gray8, spec)
    assert tiles8.shape[1] == 3 and tiles8.dtype == np.float32
    assert 0.0 <= tiles8.min() and tiles8.max() <= 1.0
    np.testing.assert_array_equal(tiles8[:, 0], tiles8[:, 2])
    gray16 = gray8.astype(np.uint16) * 257  # the same picture on the 16-bit scale
    tiles16, _ = cut_tiles(gray16, spec)
    np.testing.assert_allclose(tiles16, tiles8, atol=1 / 255)
    rgb16 = np.repeat(gray16[:, :, None], 3, axis=2)
    np.testing.assert_allclose(cut_tiles(rgb16, spec)[0], tiles8, atol=1 / 255)


def test_choose_tile_size_fits_the_shots_up_to_a_limit():
    assert choose_tile_size([(128, 128)], 1.0, stride=8) == (128, 128)
    assert choose_tile_size([(100, 50), (90, 70)], 1.0, stride=8) == (128, 96)
    assert choose_tile_size([(460, 1130)], 1.0, stride=8) == (480, 1152)  # one tile, no overlap
    assert choose_tile_size([(4096, 256)], 1.0, stride=8) == (4096, 256)  # a megapixel: still one
    assert choose_tile_size([(4096, 512)], 1.0, stride=8) == (512, 512)  # beyond it: tiled
    assert choose_tile_size([(4096, 256)], 1.0, stride=8, whole=0) == (512, 256)
    assert choose_tile_size([(20, 20)], 1.0, stride=8) == (64, 64)  # at least two units
    assert choose_tile_size([(1000, 300)], 0.5, stride=8) == (512, 160)
    with pytest.raises(ConfigError, match="no images"):
        choose_tile_size([], 1.0, stride=8)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": (100, 128)}, "multiple of the stride"),
        ({"size": (128, 128), "margin": 12}, "margin"),
        ({"size": (64, 64), "margin": 32}, "no core"),
        ({"size": (128, 128), "scale": 10.0}, "scale"),
        ({"size": (128, 128), "roi": (50, 0, 10, 10)}, "region of interest"),
    ],
)
def test_bad_specs_are_refused_with_a_reason(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TileSpec(**kwargs)


def test_spec_round_trips_through_json():
    spec = TileSpec(size=(96, 160), stride=16, margin=32, scale=0.75, roi=(1, 2, 300, 400))
    assert TileSpec.from_dict(spec.to_dict()) == spec
    assert TileSpec.from_dict(TileSpec(size=(128, 128)).to_dict()).roi is None
