"""Region descriptors: pooled features, their spread, and the region's shape."""

from __future__ import annotations

import math

import pytest
import torch

from defectkit.fewshot.prototypes import (
    SHAPE_WEIGHT,
    PrototypeHead,
    descriptor_dim,
    region_descriptor,
    region_shape,
)


def test_shape_is_long_and_thin_for_a_line_and_round_for_a_blob():
    line = torch.zeros(1, 32, 32)
    line[0, 16, 4:28] = 1.0  # 24 patches long, one wide
    blob = torch.zeros(1, 32, 32)
    blob[0, 14:18, 14:18] = 1.0
    (major, minor), (b_major, b_minor) = region_shape(line)[0], region_shape(blob)[0]
    # Spread of a uniform segment of length L is L / sqrt(12) (plus a pixel's own).
    assert math.exp(float(major)) == pytest.approx(math.sqrt((24**2 - 1) / 12 + 1 / 12), rel=1e-4)
    assert math.exp(float(minor)) == pytest.approx(math.sqrt(1 / 12), rel=1e-4)
    assert float(b_major - b_minor) < 1e-4 and float(major - minor) > 2.0
    # Turning the line by 90 degrees leaves its shape alone.
    torch.testing.assert_close(region_shape(line.transpose(1, 2)), region_shape(line))


def test_descriptor_layout_and_the_head_that_reads_it():
    torch.manual_seed(0)
    feats = torch.randn(2, 5, 8, 8)
    weights = torch.rand(2, 8, 8)
    desc = region_descriptor(feats, weights)
    assert desc.shape == (2, descriptor_dim(5)) == (2, 17)
    w = (weights / weights.sum(dim=(1, 2), keepdim=True)).flatten(1)
    flat = feats.flatten(2)
    mean = torch.einsum("ndp,np->nd", flat, w)
    std = torch.sqrt(torch.einsum("ndp,np->nd", (flat - mean[..., None]) ** 2, w))
    torch.testing.assert_close(desc[:, :5], mean)
    torch.testing.assert_close(desc[:, 5:10], std, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(desc[:, 10:15], flat.mean(dim=2))
    torch.testing.assert_close(desc[:, 15:], SHAPE_WEIGHT * region_shape(weights))
    head = PrototypeHead(5)
    assert head.prototypes.shape == (0, 17)
    head.set_prototypes(desc, torch.tensor([0, 1]), 2)
    assert head(desc).argmax(dim=1).tolist() == [0, 1]


def test_prototype_similarity_agrees_with_the_class_logits():
    torch.manual_seed(2)
    proto = PrototypeHead(8, temperature=0.05)
    proto.set_prototypes(torch.randn(5, 16), torch.tensor([0, 1, 1, 2, 2]), 3)
    desc = torch.randn(4, 16)
    sims = proto.similarity(desc)
    assert sims.shape == (4, 5)
    per_class = torch.stack(
        [sims[:, proto.membership[k].bool()].amax(dim=1) for k in range(3)], dim=1
    )
    torch.testing.assert_close(per_class, proto(desc), rtol=1e-5, atol=1e-3)
    # One computation: the logits are exactly the per-class maxima of the similarities.
    torch.testing.assert_close(proto.class_logits(sims), proto(desc), rtol=0, atol=0)
