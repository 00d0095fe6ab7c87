"""Prototype head: region-pooled features against class prototypes, by distance with a temperature.

Each labelled shot becomes one prototype of its class - nearest-prototype
classification is the right estimator with two shots per class, where a mean would blur
two different-looking examples of one defect type together. ``good`` is a class too.

A region descriptor concatenates pooled vectors and the region's shape: the mean and
the spread of the features weighted towards the most anomalous patches - *what the
defect looks like* -, the plain mean over the image - *what the texture looks like*,
which is what separates global defects (a changed weave) from local ones (a spot) -
and how long and wide the weighted region is. On the synthetic caption benchmark's
tuning seeds (6 defect kinds, 2 shots each) the spread and the shape raised type
accuracy from 0.83 to 0.92; on the textile protocol (n = 2, seeds 0-4) 3-class accuracy
went from 0.956 +- 0.039 to 0.975 +- 0.017, binary accuracy (0.979) and AUROC (0.9995)
unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Weight of the region's shape moments in a descriptor (see :func:`region_shape`).
SHAPE_WEIGHT = 2.0
#: Extra entries of a descriptor beyond the feature dimension's multiples.
SHAPE_DIMS = 2


def descriptor_dim(dim: int) -> int:
    """Length of a region descriptor for D-dimensional patch features: 3 D + 2."""
    return 3 * dim + SHAPE_DIMS


def normalised_weights(weights: torch.Tensor) -> torch.Tensor:
    """N x H x W non-negative weights -> N x HW summing to 1 per image (the pooling
    weights of a region; an all-zero map stays zero)."""
    w = weights.flatten(1)
    return w / torch.clamp(w.sum(dim=1, keepdim=True), min=1e-12)


def region_shape(weights: torch.Tensor) -> torch.Tensor:
    """N x H x W region weights -> N x 2: log of the region's spread along its major and
    minor axes (square roots of the weighted covariance's eigenvalues, grid units).

    The features say what a region looks like, not how it is laid out: a scratch and a
    crack, a spot and a hole, look alike patch by patch; length and width tell them
    apart. Closed-form 2 x 2 eigenvalues, so it exports as plain arithmetic.
    """
    n, h, w = weights.shape
    p = weights / torch.clamp(weights.sum(dim=(1, 2), keepdim=True), min=1e-12)
    ys = torch.arange(h, dtype=weights.dtype).view(1, h, 1)
    xs = torch.arange(w, dtype=weights.dtype).view(1, 1, w)
    mx, my = (p * xs).sum(dim=(1, 2)), (p * ys).sum(dim=(1, 2))
    dx, dy = xs - mx.view(n, 1, 1), ys - my.view(n, 1, 1)
    sxx, syy, sxy = (
        (p * dx * dx).sum(dim=(1, 2)),
        (p * dy * dy).sum(dim=(1, 2)),
        (p * dx * dy).sum(dim=(1, 2)),
    )
    half, diff = (sxx + syy) / 2, torch.sqrt(((sxx - syy) / 2) ** 2 + sxy**2 + 1e-12)
    # + 1/12: a single patch is a unit square, so the spread never reaches zero.
    major, minor = half + diff + 1 / 12, torch.clamp(half - diff, min=0.0) + 1 / 12
    return 0.5 * torch.log(torch.stack([major, minor], dim=1))


def region_descriptor(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Pool features over a region.

    Args:
        features: N x D x H x W patch features.
        weights: N x H x W non-negative weights (need not be normalised).

    Returns:
        N x (3D + 2): [weighted mean, weighted standard deviation, plain mean] of the
        (standardised) patch features, then ``SHAPE_WEIGHT`` x :func:`region_shape`.
        The standard deviation says how the region varies (a jagged crack against an
        even scratch); the plain mean is the texture around it.
    """
    flat = features.flatten(2)  # N x D x HW
    w = normalised_weights(weights)
    region = torch.einsum("ndp,np->nd", flat, w)
    second = torch.einsum("ndp,np->nd", flat * flat, w)
    spread = torch.sqrt(torch.clamp(second - region * region, min=0.0) + 1e-12)
    whole = flat.mean(dim=2)
    return torch.cat([region, spread, whole, SHAPE_WEIGHT * region_shape(weights)], dim=1)


def anomaly_weights(patch_map: torch.Tensor, sharpness: torch.Tensor) -> torch.Tensor:
    """N x H x W anomaly map -> softmax weights concentrating on the most anomalous patches.

    The map is standardised per image first so ``sharpness`` means the same on every
    image whatever the absolute distance scale.
    """
    flat = patch_map.flatten(1)
    z = (flat - flat.mean(dim=1, keepdim=True)) / (flat.std(dim=1, keepdim=True) + 1e-6)
    return torch.softmax(z * sharpness, dim=1).reshape(patch_map.shape)


class PrototypeHead(nn.Module):
    """Squared distance to prototypes; a class's logit is minus its nearest prototype's
    distance, divided by the temperature.

    :meth:`similarity` is the per-prototype value (one per labelled shot, which picks
    the nearest shot's note for the caption) and :meth:`class_logits` its per-class
    maximum, so the nearest shot can never disagree with the class and the distances are
    computed once per forward.

    Buffers: ``prototypes`` P x (3D + 2) (and their squared norms), ``membership`` K x P
    (1 where prototype p belongs to class k), ``temperature`` scalar. Written without
    gather/scatter so it exports.
    """

    def __init__(self, dim: int, *, temperature: float = 0.05, sharpness: float = 2.0) -> None:
        super().__init__()
        self.register_buffer("prototypes", torch.zeros(0, descriptor_dim(dim)))
        self.register_buffer("prototype_sqnorm", torch.zeros(0))
        self.register_buffer("membership", torch.zeros(0, 0))
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        self.register_buffer("sharpness", torch.tensor(float(sharpness)))

    @property
    def fitted(self) -> bool:
        return self.prototypes.shape[0] > 0

    def set_prototypes(
        self, prototypes: torch.Tensor, labels: torch.Tensor, n_classes: int
    ) -> None:
        """Store P prototypes with their class indices (P,) among ``n_classes``."""
        self.prototypes = prototypes.detach().float().contiguous()
        self.prototype_sqnorm = (self.prototypes * self.prototypes).sum(dim=1)
        self.membership = F.one_hot(labels.long(), n_classes).t().float().contiguous()

    def similarity(self, descriptors: torch.Tensor) -> torch.Tensor:
        """N x (3D + 2) descriptors -> N x P: ``-squared distance / temperature`` to every
        prototype (larger = nearer)."""
        # Squared distances as one matmul (no cdist, exports cleanly); features are
        # standardised, so magnitudes carry meaning and cosine would discard them.
        sq = (descriptors * descriptors).sum(dim=1, keepdim=True)
        dist = sq + self.prototype_sqnorm[None] - 2.0 * descriptors @ self.prototypes.t()  # N x P
        return -dist / self.temperature

    def class_logits(self, similarity: torch.Tensor) -> torch.Tensor:
        """N x P similarities -> N x K: each class's nearest prototype."""
        # Push other classes' prototypes out of reach with a large constant instead of
        # indexing (exports without gather).
        masked = similarity[:, None, :] - 1e6 * (1.0 - self.membership[None])
        return masked.amax(dim=-1)

    def forward(self, descriptors: torch.Tensor) -> torch.Tensor:
        """N x (3D + 2) descriptors -> N x K logits."""
        return self.class_logits(self.similarity(descriptors))
