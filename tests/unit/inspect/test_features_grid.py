"""Patch maps onto the grid: plain pooling where it equals adaptive pooling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from defectkit.inspect.features import _to_grid, _uniform_windows, detail_map


@pytest.mark.parametrize("size", [63, 64, 100, 248, 249, 250, 57])
@pytest.mark.parametrize("out", [31, 19, 7])
def test_grid_pooling_equals_adaptive_pooling(size, out):
    if size <= out:
        pytest.skip("upsampling path")
    x = torch.randn(2, 3, size, size + 1)
    torch.testing.assert_close(_to_grid(x, (out, out)), F.adaptive_avg_pool2d(x, (out, out)))


def test_uniform_windows_of_the_default_grid():
    # efficientnet_lite0 at 249 px, stride-8 grid of 31: every map is a plain pooling
    assert _uniform_windows(63, 31) == (3, 2)
    assert _uniform_windows(32, 31) == (2, 1)
    assert _uniform_windows(249, 31) == (9, 8)
    assert _uniform_windows(64, 31) is None  # windows of 3 and 4: adaptive pooling stays


def test_the_detail_map_is_each_channel_of_each_image_on_its_own():
    # channels folded into the batch (one-channel maps export without layout copies):
    # the same high-pass energy, bit for bit, as each image's channel alone
    image = torch.rand(2, 3, 17, 29)
    alone = [
        (c - F.avg_pool2d(F.pad(c, (1, 1, 1, 1), mode="replicate"), 3, stride=1)).abs()
        for c in image.reshape(6, 1, 17, 29).split(1)
    ]
    assert torch.equal(detail_map(image), torch.cat(alone).reshape(2, 3, 17, 29))
