"""Patch maps onto the grid: plain pooling where it equals adaptive pooling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from defectkit.inspect.features import _to_grid, _uniform_windows


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
