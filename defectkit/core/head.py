"""The head after the graph: one image's stitched patch grids -> :class:`RawOutputs`.

The exported graph runs fixed-size tiles and returns, per patch, the distance to the
good shots' memory bank, the distance to the labelled defects' patches, and the
standardised features (:class:`~defectkit.core.results.TileOutputs`). Once the tiles
of an image are stitched (:mod:`defectkit.core.tiling`), everything that needs the
whole image is here, in numpy, shared by the PyTorch path and the torch-free runtime:

* :class:`AnomalyScoring`: the evidence map (smoothed, calibrated so 1.0 = the most
  unusual good shot's patch), the image score, and which evidence a fit chose;
* :class:`ClassHead`: a descriptor of the image (its most anomalous region and its
  overall texture) against one prototype per labelled shot;
* the caption's vocabulary scores for text-aligned backbones.

Every number here is state the fit computed (:mod:`defectkit.inspect.fit`), stored as
plain JSON in a model folder and a bundle manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from defectkit.core.labels import GOOD
from defectkit.core.results import RawOutputs

#: Evidence kinds a fit chooses between (see :class:`AnomalyScoring`).
DISTANCE, CONTRAST = "distance", "contrast"
EVIDENCE = (DISTANCE, CONTRAST)
_EPS = 1e-6


def smooth(grid: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of an h x w patch map, edges replicated (radius 2 sigma)."""
    if sigma <= 0:
        return grid.astype(np.float32, copy=False)
    return ndimage.gaussian_filter(grid.astype(np.float32), sigma, mode="nearest", truncate=2.0)


def top_mean(values: np.ndarray, fraction: float) -> float:
    """Mean of the largest ``fraction`` of ``values`` (at least one)."""
    flat = np.asarray(values, dtype=np.float32).ravel()
    if flat.size == 0:
        return 0.0
    k = max(1, int(round(flat.size * fraction)))
    return float(np.partition(flat, flat.size - k)[flat.size - k :].mean())


#: Rings of patches along each side of a map that get their own distance scale (see
#: :func:`edge_factors`): about the reach of the backbone's zero padding into the map.
EDGE_RINGS = 2


def edge_cells(shape: tuple[int, int], rings: int = EDGE_RINGS) -> np.ndarray:
    """Each cell's ring (h x w ints): how many cells lie between it and the map's nearest
    side (0 on the side), ``rings`` for the cells further inside."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]
    ring = np.minimum(np.minimum(ys, h - 1 - ys), np.minimum(xs, w - 1 - xs))
    return np.minimum(ring, rings)


def edge_factors(maps: Sequence[np.ndarray], rings: int = EDGE_RINGS) -> tuple[float, ...]:
    """How much larger good patches' distances run along the sides of a map than inside
    it: per ring of :func:`edge_cells` (``rings`` values, the outermost first), the
    median distance of the good maps' cells there over the median of the cells inside.

    A patch at the edge of an image sees the backbone's zero padding, and in a memory
    bank of a few shots only other edge patches resemble it, so its distance to the
    nearest one is larger than an inner patch's even on a good part: an image frame, a
    fixture's border or the plain image edge then sets every good image's score.
    Dividing each ring by its factor, learned on the left-out good shots, makes an edge
    patch as unusual as an inner one that lies as far from the bank. The four sides
    share a ring's factor: a handful of shots gives a few dozen cells per side, too few
    for a median to hold on a small map. A ring without cells (or with a zero median)
    gets 1.0; no inner cells: no factors.
    """
    return _factors([_ring_values(m, rings) for m in maps], rings)


def edge_factors_left_out(maps: Sequence[np.ndarray], rings: int = EDGE_RINGS) -> list[tuple[float, ...]]:
    """Per map, :func:`edge_factors` of the *other* maps (each map's cells split once)."""
    split = [_ring_values(m, rings) for m in maps]
    return [_factors(split[:i] + split[i + 1 :], rings) for i in range(len(split))]


def _ring_values(grid: np.ndarray, rings: int) -> list[np.ndarray]:
    """One map's cell values per ring (``rings + 1`` arrays, the inside last)."""
    cells = edge_cells(grid.shape, rings).ravel()
    flat = np.asarray(grid, dtype=np.float64).ravel()
    return [flat[cells == k] for k in range(rings + 1)]


def _factors(split: Sequence[list[np.ndarray]], rings: int) -> tuple[float, ...]:
    pooled = [np.concatenate([v[k] for v in split]) if split else np.zeros(0) for k in range(rings + 1)]
    inner = float(np.median(pooled[rings])) if pooled[rings].size else 0.0
    if inner <= _EPS:
        return ()
    medians = [float(np.median(v)) if v.size else 0.0 for v in pooled[:rings]]
    return tuple(m / inner if m > _EPS else 1.0 for m in medians)


def edge_scaled(grid: np.ndarray | None, factors: Sequence[float]) -> np.ndarray | None:
    """A distance map with each ring divided by its factor (see :func:`edge_factors`; no
    factors: the map as it is)."""
    if grid is None or not len(factors):
        return grid
    scale = np.append(np.asarray(factors, dtype=np.float32), np.float32(1.0))
    return (grid / scale[edge_cells(grid.shape, len(factors))]).astype(np.float32)


def evidence_map(
    kind: str,
    distance: np.ndarray,
    defect_distance: np.ndarray | None,
    sigma: float,
    edges: Sequence[float] = (),
    defect_edges: Sequence[float] = (),
) -> np.ndarray:
    """Uncalibrated, smoothed evidence of one image (h x w); ``edges`` and
    ``defect_edges``: the distance maps' edge factors (:func:`edge_factors`).

    ``distance``: how far each patch lies from every good patch (PatchCore). ``contrast``:
    the share of that distance in the distances to the good *and* the labelled-defect
    patches, d_good / (d_good + d_defect): near 1 where a patch looks like a labelled
    defect rather than anything good, near 0 where it looks good, and 1/2 where it is
    unlike both. It ignores good variation the shots did not show (soiling, lighting)
    as long as it is no more like a defect than like a good part.
    """
    distance = edge_scaled(distance, edges)
    defect_distance = edge_scaled(defect_distance, defect_edges)
    if kind == DISTANCE or defect_distance is None:
        raw = distance
    elif kind == CONTRAST:
        raw = distance / (distance + defect_distance + _EPS)
    else:
        raise ValueError(f"unknown evidence {kind!r}")
    return smooth(raw, sigma)


def overall_look(descriptor: np.ndarray) -> np.ndarray:
    """The overall half of a :func:`describe_image` descriptor (the mean and spread of
    the patch features over the cells inside, 2 x D values): how the whole part looks."""
    d = (descriptor.shape[-1] - 2) // 4
    return np.asarray(descriptor[..., 2 * d : 4 * d], dtype=np.float64)


@dataclass(frozen=True)
class Look:
    """How far an image's overall look (:func:`overall_look`) lies from every good
    image's, over the reference: the largest such distance of a good image left out, so
    1.0 = as unusual a look as the most unusual good image's.

    The patch map asks whether some patch is unlike every good patch; a defect that
    changes the whole part a little (another weave, a finish, a colour) can leave every
    patch near some good patch while the part's mean and spread move. The look sees
    that, but its reference is one distance per good image: it means something only with
    enough of them (:data:`defectkit.inspect.calibrate.LOOK_MIN_GOOD`).

    Attributes:
        looks: N x 2D overall looks of the good images.
        ref: the largest left-out nearest distance among them.
    """

    looks: np.ndarray = field(repr=False, compare=False)
    ref: float = 1.0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Look) and self.ref == other.ref and np.array_equal(self.looks, other.looks)

    @classmethod
    def fit(cls, looks: np.ndarray) -> Look:
        """The look of N >= 2 good images (N x 2D)."""
        looks = np.asarray(looks, dtype=np.float64)
        if looks.ndim != 2 or len(looks) < 2:
            raise ValueError(f"a look needs at least two good images, got {len(looks)}")
        return cls(looks=looks, ref=float(_nearest_other(looks).max()) or 1.0)

    def left_out(self) -> list[float]:
        """Each good image's calibrated score against the others (the largest is 1.0)."""
        return [float(v) / self.ref for v in _nearest_other(self.looks)]

    def score(self, look: np.ndarray) -> float:
        """One image's overall look (2D values) -> its calibrated distance."""
        return float(_distances(np.asarray(look, dtype=np.float64)[None], self.looks).min()) / self.ref

    def to_dict(self) -> dict[str, Any]:
        return {"looks": self.looks.tolist(), "ref": self.ref}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Look:
        looks = np.asarray(data["looks"], dtype=np.float64)
        ref = float(data["ref"])
        if looks.ndim != 2 or len(looks) < 2 or not np.isfinite(looks).all():
            raise ValueError("look: looks must be finite numbers, one row per good image (two or more)")
        if not np.isfinite(ref) or ref <= 0:
            raise ValueError(f"look: ref must be a positive number, got {data['ref']!r}")
        return cls(looks=looks, ref=ref)


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``a`` and of ``b``."""
    return np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1), 0.0))


def _nearest_other(rows: np.ndarray) -> np.ndarray:
    """Each row's distance to the nearest other row."""
    d = _distances(rows, rows)
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


@dataclass(frozen=True)
class AnomalyScoring:
    """From evidence to a calibrated map and an image score.

    Attributes:
        evidence: ``"distance"`` or ``"contrast"`` (see :func:`evidence_map`), chosen by
            the fit as the one that best separates the labelled defects from the good
            shots left out one at a time.
        sigma: smoothing of the patch maps, in patches.
        top_fraction: the image score averages this fraction of the region's patches.
        pixel_ref: the largest evidence of any good shot's patch (left out); the map is
            divided by it, so 1.0 = as unusual as the most unusual good patch.
        image_ref: the largest local statistic (top mean) of the good shots (left out).
        global_ref: the largest global statistic (mean over the whole map) of the good
            shots (left out), or None when the fit found that the mean does not help.
            With it, the score is the larger of the two statistics, each divided by its
            reference: a local defect raises the top of the map, a defect spread over
            the whole part (a wrong texture, noise, a colour shift) raises its mean.
        edges, defect_edges: the good and defect distance maps' edge factors, learned on
            the left-out good shots (:func:`edge_factors`); empty: none (a model saved
            before they existed scores as it did).
        look: the good images' overall looks (:class:`Look`), or None (fewer good
            images than it needs, or a model saved before it existed). With it, the score
            is the larger of the map's statistic and the look's (:meth:`with_look`).
    """

    evidence: str = DISTANCE
    sigma: float = 1.0
    top_fraction: float = 0.002
    pixel_ref: float = 1.0
    image_ref: float = 1.0
    global_ref: float | None = None
    edges: tuple[float, ...] = ()
    defect_edges: tuple[float, ...] = ()
    look: Look | None = None

    def statistic(self, emap: np.ndarray, inside: np.ndarray | None = None) -> float:
        """Calibrated image score of an evidence map (cells ``inside`` only)."""
        values = emap if inside is None else emap[inside]
        local = top_mean(values, self.top_fraction) / self.image_ref
        if self.global_ref is None or values.size == 0:
            return local
        return max(local, float(np.mean(values)) / self.global_ref)

    def apply(
        self, distance: np.ndarray, defect_distance: np.ndarray | None, inside: np.ndarray | None = None
    ) -> tuple[np.ndarray, float]:
        """One image's grids -> (calibrated map h x w, calibrated score)."""
        emap = evidence_map(self.evidence, distance, defect_distance, self.sigma, self.edges, self.defect_edges)
        score = self.statistic(emap, inside)
        amap = emap / self.pixel_ref
        if inside is not None:
            amap = np.where(inside, amap, 0.0).astype(np.float32)
        return amap, float(score)

    def with_look(self, score: float, look: np.ndarray) -> float:
        """An image's calibrated map score joined by its overall look's (2D values, see
        :func:`overall_look`): the larger of the two; the score as it is without a look."""
        return score if self.look is None else max(score, self.look.score(look))

    def to_dict(self) -> dict[str, Any]:
        return {
            "look": None if self.look is None else self.look.to_dict(),
            "evidence": self.evidence, "sigma": self.sigma, "top_fraction": self.top_fraction,
            "pixel_ref": self.pixel_ref, "image_ref": self.image_ref, "global_ref": self.global_ref,
            "edges": list(self.edges), "defect_edges": list(self.defect_edges),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnomalyScoring:
        evidence = str(data["evidence"])
        if evidence not in EVIDENCE:
            raise ValueError(f"unknown evidence {evidence!r}")
        return cls(
            evidence=evidence, sigma=float(data["sigma"]), top_fraction=float(data["top_fraction"]),
            pixel_ref=float(data["pixel_ref"]), image_ref=float(data["image_ref"]),
            global_ref=None if data.get("global_ref") is None else float(data["global_ref"]),
            edges=_edge_factors(data.get("edges"), "edges"),
            defect_edges=_edge_factors(data.get("defect_edges"), "defect_edges"),
            look=None if data.get("look") is None else Look.from_dict(data["look"]),
        )  # fmt: skip


def _edge_factors(values: Any, name: str) -> tuple[float, ...]:
    """Stored edge factors, checked: one positive number per ring, or none."""
    factors = tuple(float(v) for v in (values or ()))
    if any(not np.isfinite(f) or f <= 0 for f in factors):
        raise ValueError(f"{name} must be positive numbers, one per ring, got {list(factors)}")
    return factors


#: Smallest spread of a calibrated map that region pooling standardises by: a nearly
#: flat map (a good part, or an image the bank was built from, whose distances are
#: rounding noise around 0) pools nearly uniformly instead of amplifying that noise.
MIN_MAP_SPREAD = 0.05


def region_weights(emap: np.ndarray | None, shape: tuple[int, int], sharpness: float, inside: np.ndarray | None = None) -> np.ndarray:
    """Softmax weights over patches concentrating on the most anomalous ones (h x w,
    summing to 1); uniform without an evidence map. The calibrated map is standardised
    per image first (spread at least :data:`MIN_MAP_SPREAD`), so ``sharpness`` means the
    same whatever the image."""
    mask = np.ones(shape, dtype=bool) if inside is None else inside
    if emap is None or not mask.any():
        w = mask.astype(np.float64)
        return (w / max(w.sum(), 1.0)).astype(np.float32)
    values = emap[mask].astype(np.float64)
    z = (emap.astype(np.float64) - values.mean()) / max(values.std(), MIN_MAP_SPREAD)
    z = np.where(mask, z * sharpness, -np.inf)
    e = np.exp(z - z[mask].max())
    return (e / e.sum()).astype(np.float32)


def region_shape(weights: np.ndarray) -> np.ndarray:
    """Log spread of a weighted region along its major and minor axes (2 values, grid
    units; see the caption's use of length and width)."""
    h, w = weights.shape
    p = weights / max(float(weights.sum()), 1e-12)
    ys, xs = np.mgrid[0:h, 0:w]
    mx, my = float((p * xs).sum()), float((p * ys).sum())
    dx, dy = xs - mx, ys - my
    sxx, syy, sxy = float((p * dx * dx).sum()), float((p * dy * dy).sum()), float((p * dx * dy).sum())
    half, diff = (sxx + syy) / 2, np.sqrt(((sxx - syy) / 2) ** 2 + sxy**2 + 1e-12)
    major, minor = half + diff + 1 / 12, max(half - diff, 0.0) + 1 / 12
    return 0.5 * np.log(np.array([major, minor], dtype=np.float64))


def describe_image(features: np.ndarray, weights: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
    """Descriptor of one image: D x h x w standardised features and region weights ->
    [weighted mean, weighted spread, overall mean, overall spread (D each), shape (2)].

    The weighted half says what the most anomalous region looks like (a scratch, a
    stain); the overall half says what the whole surface looks like (a changed weave, a
    different steel finish), which is what tells apart defects that cover the image.
    """
    d = features.shape[0]
    flat = features.reshape(d, -1).astype(np.float32, copy=False)
    cells = np.ones(flat.shape[1], np.float32) if inside is None else inside.reshape(-1).astype(np.float32)
    # Both halves as weighted moments (the region's weights; uniform weights over the
    # cells inside), in float32 and two passes: no float64 copy of the map (a 4096 x 256
    # scan's 179 x 16384 values took ~10 ms of ~12), and each spread about its own mean.
    columns = np.stack([weights.reshape(-1).astype(np.float32), cells / max(float(cells.sum()), 1.0)], axis=1)
    mean = flat @ columns
    spread = np.empty_like(mean)
    centered = np.empty_like(flat)
    for k in range(2):
        np.subtract(flat, mean[:, k : k + 1], out=centered)
        np.multiply(centered, centered, out=centered)
        spread[:, k] = centered @ columns[:, k]
    mean, spread = mean.astype(np.float64), np.sqrt(np.maximum(spread.astype(np.float64), 0.0))
    return np.concatenate([mean[:, 0], spread[:, 0], mean[:, 1], spread[:, 1], region_shape(weights)])


@dataclass(frozen=True)
class ClassHead:
    """The class head in a standardised descriptor space: one prototype per shot, and a
    linear classifier fitted on them.

    The prototypes say which labelled shot an image is nearest (the caption's evidence).
    The class logits come from ``weights`` and ``bias``, a ridge classifier on the
    prototypes (:func:`defectkit.inspect.calibrate.build_class_head`): it learns which
    descriptor dimensions tell the classes apart, where the nearest prototype weighs
    every dimension alike, including those in which two shots of one class differ.
    A head without them (saved before they existed, or with a single class) takes
    each class's nearest prototype, as before.

    Attributes:
        classes: class names in logit order (``good`` first when there is a good class).
        prototypes: P x E unit descriptors of the labelled shots, in shot order.
        labels: each prototype's class index.
        center, scale: descriptor standardisation, fitted on the shots (E each).
        temperature: logits are 2 x the linear score (about a cosine) over it; or, by
            nearest prototype, minus squared distances (0..4) over it: the same scale.
        sharpness: how strongly region pooling concentrates on anomalous patches.
        weights, bias: K x E and K, the linear classifier (None: nearest prototype).
        margin_weight: how much the classifier's word counts in the image score (see
            :meth:`score_factor`); 0: not at all (a head saved before it existed).
    """

    classes: tuple[str, ...]
    prototypes: np.ndarray = field(repr=False)
    labels: tuple[int, ...]
    center: np.ndarray = field(repr=False)
    scale: np.ndarray = field(repr=False)
    temperature: float = 0.05
    sharpness: float = 2.0
    weights: np.ndarray | None = field(default=None, repr=False)
    bias: np.ndarray | None = field(default=None, repr=False)
    margin_weight: float = 0.0

    def embed(self, descriptor: np.ndarray) -> np.ndarray:
        """Raw descriptor(s) (..., E) -> unit vectors in the standardised space."""
        z = (np.asarray(descriptor, dtype=np.float64) - self.center) * self.scale
        return z / np.maximum(np.linalg.norm(z, axis=-1, keepdims=True), 1e-12)

    def similarity(self, descriptor: np.ndarray) -> np.ndarray:
        """P values, minus squared distance to each prototype over the temperature
        (larger = nearer)."""
        z = self.embed(descriptor)
        d2 = np.sum((self.prototypes - z) ** 2, axis=1)
        return (-d2 / self.temperature).astype(np.float32)

    def linear(self, descriptor: np.ndarray) -> np.ndarray | None:
        """A raw descriptor (E) -> the linear classifier's K scores (about +1 for a
        class's own shots, -1 for the others'); None without a classifier."""
        if self.weights is None or self.bias is None:
            return None
        return self.weights @ self.embed(descriptor) + self.bias

    def logits(self, descriptor: np.ndarray, similarity: np.ndarray) -> np.ndarray:
        """A raw descriptor (E) and its P similarities -> K logits: the linear
        classifier's scores, or each class's nearest prototype without one."""
        labels = np.asarray(self.labels)
        linear = self.linear(descriptor)
        if linear is not None:
            return (2.0 * linear / self.temperature).astype(np.float32)
        return np.array(
            [similarity[labels == k].max() if (labels == k).any() else -1e6 for k in range(len(self.classes))],
            dtype=np.float32,
        )

    def score_factor(self, descriptor: np.ndarray) -> float:
        """What the classifier's word multiplies an image's anomaly score by:
        ``exp(margin_weight * margin)``, the margin being how far its likeliest defect
        class's score stands above ``good``'s (about -2 on a good shot, +2 on a defect
        shot). An image the labelled shots say is a defect scores higher, one they say
        is good lower; the threshold stays where the anomaly scores put it, which the
        image reaches on the anomaly evidence alone when the classifier is undecided
        (margin 0). 1.0 without a classifier, a ``good`` class or a defect class."""
        linear = self.linear(descriptor)
        if not self.margin_weight or linear is None or GOOD not in self.classes or len(self.classes) < 2:
            return 1.0
        return float(np.exp(self.margin_weight * defect_margin(linear, self.classes.index(GOOD))))

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes), "labels": list(self.labels),
            "prototypes": self.prototypes.tolist(), "center": self.center.tolist(),
            "scale": self.scale.tolist(), "temperature": self.temperature, "sharpness": self.sharpness,
            "weights": None if self.weights is None else self.weights.tolist(),
            "bias": None if self.bias is None else self.bias.tolist(),
            "margin_weight": self.margin_weight,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassHead:
        return cls(
            classes=tuple(data["classes"]), labels=tuple(int(v) for v in data["labels"]),
            prototypes=np.asarray(data["prototypes"], dtype=np.float64),
            center=np.asarray(data["center"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            temperature=float(data["temperature"]), sharpness=float(data["sharpness"]),
            **_linear(data, len(data["classes"]), len(data["center"])),
            margin_weight=check_margin_weight(data.get("margin_weight", 0.0)),
        )  # fmt: skip


def defect_margin(linear: np.ndarray, good: int) -> float:
    """How far a classifier's K scores put the likeliest defect class above ``good``
    (index ``good``; K >= 2): > 0 calls the image a defect."""
    return float(np.max(np.delete(linear, good)) - linear[good])


def check_margin_weight(value: Any) -> float:
    """A class head's margin weight as a float: a finite number >= 0 (ValueError else)."""
    weight = float(value or 0.0)
    if not np.isfinite(weight) or weight < 0:
        raise ValueError(f"class head: margin_weight must be a number >= 0, got {value!r}")
    return weight


def _linear(data: dict[str, Any], classes: int, dims: int) -> dict[str, np.ndarray | None]:
    """A stored head's linear classifier, checked (K x E weights, K biases), or none."""
    if data.get("weights") is None or data.get("bias") is None:
        return {"weights": None, "bias": None}
    weights = np.asarray(data["weights"], dtype=np.float64)
    bias = np.asarray(data["bias"], dtype=np.float64)
    if weights.shape != (classes, dims) or bias.shape != (classes,):
        raise ValueError(
            f"class head: weights {weights.shape} and bias {bias.shape} do not fit "
            f"{classes} classes of {dims}-value descriptors"
        )
    if not (np.isfinite(weights).all() and np.isfinite(bias).all()):
        raise ValueError("class head: weights and bias must be finite numbers")
    return {"weights": weights, "bias": bias}


@dataclass(frozen=True)
class Head:
    """Everything after the graph, for one fitted model (JSON-serialisable).

    ``scoring`` is None for a type-only model (no ``good`` shots: no verdict);
    ``vocabulary`` holds V x C unit text embeddings for text-aligned backbones.
    """

    classes: ClassHead
    scoring: AnomalyScoring | None = None
    vocabulary: np.ndarray | None = field(default=None, repr=False)

    @property
    def has_verdict(self) -> bool:
        return self.scoring is not None

    def grids(self, distance, defect_distance, inside) -> tuple[np.ndarray | None, float]:
        """Calibrated grid map and score, or (None, nan) for a type-only model."""
        if self.scoring is None or distance is None:
            return None, float("nan")
        return self.scoring.apply(distance, defect_distance, inside)

    def outputs(
        self,
        *,
        features: np.ndarray,
        distance: np.ndarray | None = None,
        defect_distance: np.ndarray | None = None,
        embed: np.ndarray | None = None,
        inside: np.ndarray | None = None,
    ) -> tuple[RawOutputs, np.ndarray | None]:
        """One image's stitched grids -> (RawOutputs with the map at grid resolution,
        the calibrated grid map or None)."""
        amap, score = self.grids(distance, defect_distance, inside)
        weights = region_weights(amap, features.shape[1:], self.classes.sharpness, inside)
        descriptor = describe_image(features, weights, inside)
        if self.scoring is not None:
            score = self.scoring.with_look(score, overall_look(descriptor))
        similarity = self.classes.similarity(descriptor)
        score *= self.classes.score_factor(descriptor)  # (nan stays nan: type-only)
        vocab = None
        if self.vocabulary is not None and embed is not None and len(self.vocabulary):
            vocab = vocabulary_scores(embed, weights, self.vocabulary)
        grid = amap if amap is not None else np.zeros(features.shape[1:], np.float32)
        raw = RawOutputs(
            score=np.float32(score), anomaly_map=grid, class_logits=self.classes.logits(descriptor, similarity),
            prototype_similarity=similarity, vocab_scores=vocab,
        )  # fmt: skip
        return raw, amap

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": self.classes.to_dict(),
            "scoring": None if self.scoring is None else self.scoring.to_dict(),
            "vocabulary": None if self.vocabulary is None else self.vocabulary.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Head:
        vocab = data.get("vocabulary")
        return cls(
            classes=ClassHead.from_dict(data["classes"]),
            scoring=None if data.get("scoring") is None else AnomalyScoring.from_dict(data["scoring"]),
            vocabulary=None if vocab is None else np.asarray(vocab, dtype=np.float32).reshape(len(vocab), -1),
        )


def vocabulary_scores(embed: np.ndarray, weights: np.ndarray, vocabulary: np.ndarray) -> np.ndarray:
    """C x h x w text-space patch embeddings, region weights (on the feature grid) and
    V x C unit text embeddings -> V cosines of the region's pooled embedding."""
    c = embed.shape[0]
    if tuple(weights.shape) != tuple(embed.shape[1:]):
        zoom = (embed.shape[1] / weights.shape[0], embed.shape[2] / weights.shape[1])
        weights = np.maximum(ndimage.zoom(weights, zoom, order=1), 0.0)
        weights = weights / max(float(weights.sum()), 1e-12)
    patches = embed.reshape(c, -1).astype(np.float64)
    patches = patches / np.maximum(np.linalg.norm(patches, axis=0, keepdims=True), 1e-12)
    pooled = patches @ weights.reshape(-1)
    pooled = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
    return (vocabulary.astype(np.float64) @ pooled).astype(np.float32)
