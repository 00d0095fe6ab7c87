"""Prototype head: region-pooled features against class prototypes, by distance with a temperature.

Each labelled shot becomes one prototype of its class - nearest-prototype
classification is the right estimator with two shots per class, where a mean would blur
two different-looking examples of one defect type together. ``good`` is a class too.

A region descriptor concatenates two pooled vectors: one weighted towards the most
anomalous patches (or the painted mask at fit time) - *what the defect looks like* -
and the plain mean over the image - *what the texture looks like*, which is what
separates global defects (a changed weave) from local ones (a spot).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def region_descriptor(
    features: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Pool features over a region.

    Args:
        features: N x D x H x W patch features.
        weights: N x H x W non-negative weights (need not be normalised).

    Returns:
        N x 2D: [weighted mean, plain mean] of the (standardised) patch features.
    """
    flat = features.flatten(2)  # N x D x HW
    w = weights.flatten(1)
    w = w / torch.clamp(w.sum(dim=1, keepdim=True), min=1e-12)
    region = torch.einsum("ndp,np->nd", flat, w)
    whole = flat.mean(dim=2)
    return torch.cat([region, whole], dim=1)


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

    Buffers: ``prototypes`` P x 2D (and their squared norms), ``membership`` K x P (1 where prototype p belongs
    to class k), ``temperature`` scalar. Written without gather/scatter so it exports.
    """

    def __init__(self, dim: int, *, temperature: float = 0.05, sharpness: float = 2.0) -> None:
        super().__init__()
        self.register_buffer("prototypes", torch.zeros(0, 2 * dim))
        self.register_buffer("prototype_sqnorm", torch.zeros(0))
        self.register_buffer("membership", torch.zeros(0, 0))
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        self.register_buffer("sharpness", torch.tensor(float(sharpness)))

    @property
    def fitted(self) -> bool:
        return self.prototypes.shape[0] > 0

    def set_prototypes(self, prototypes: torch.Tensor, labels: torch.Tensor, n_classes: int) -> None:
        """Store P prototypes with their class indices (P,) among ``n_classes``."""
        self.prototypes = prototypes.detach().float().contiguous()
        self.prototype_sqnorm = (self.prototypes * self.prototypes).sum(dim=1)
        self.membership = F.one_hot(labels.long(), n_classes).t().float().contiguous()

    def forward(self, descriptors: torch.Tensor) -> torch.Tensor:
        """N x 2D descriptors -> N x K logits."""
        # Squared distances as one matmul (no cdist, exports cleanly); features are
        # standardised, so magnitudes carry meaning and cosine would discard them.
        sq = (descriptors * descriptors).sum(dim=1, keepdim=True)
        dist = sq + self.prototype_sqnorm[None] - 2.0 * descriptors @ self.prototypes.t()  # N x P
        # Per class, the nearest prototype: push other classes' prototypes out of reach
        # with a large constant instead of indexing.
        masked = dist[:, None, :] + 1e6 * (1.0 - self.membership[None])
        return -masked.amin(dim=-1) / self.temperature
