"""Every export checks itself: the exported graph must match PyTorch, or there is no bundle.

The check runs the *written* bundle through the runtime (manifest parse, hashes, engine,
``preprocess``), on the support images plus flipped, rotated and noised copies, and
compares every raw output with the PyTorch inspector's ``raw`` on the same images. The exported graph
runs once batched and once at batch 1, so dynamic batch is checked too.

Tolerances, per image, as ``|exported - pytorch| <= allowed``:

- ``score``: ``max(score_rtol * |s|, score_atol)``: relative, with a floor for scores
  near 0. Distances are written ``sqrt(|a|^2 - 2 a.b + |b|^2)``; when a patch matches a
  bank entry the large terms cancel and float32 rounding (~1e-7 of them) becomes
  ~1e-4..1e-3 after the square root, so a near-zero score carries that absolute noise.
  (Distances below ``defectkit.fewshot.anomaly.FLOOR`` are the floor: the contrast
  evidence divides by the distance to the defect bank, which is near zero on the
  defect shots among the check images, and carried that noise into scores near 2.)
- ``anomaly_map``: ``map_atol + map_rtol * max|map|`` of that image: the same absolute
  noise next to near-zero patches, plus a part that scales with the map, because the
  feature scale (and so the map's) is the inspector's business and changes with it.
- class probabilities (``softmax(class_logits)``, what every decision reads: the label,
  the caption's type and the uncertainty band): ``prob_atol``, in probability. The
  logits themselves are *not* held to a tolerance: they are minus squared descriptor
  distances over a temperature of 0.05, so float noise in the pooled descriptor is
  amplified x20 there (the packaged textile set, seed 0, 2 shots per class: OpenVINO
  fp32 logits 0.051 off, probabilities 4.4e-4 off) and a bound on logits refused
  faithful exports. Their differences are still measured and recorded. The predicted
  class must agree unless the reference's top two probabilities are within twice the
  tolerance of each other (either may then legitimately come first).
- ``prototype_similarity`` (caption evidence: which labelled shot is nearest): the same
  quantity per shot before the per-class maximum, so the same measure: its softmax over
  the shots within ``prob_atol``, and the nearest shot must agree where the top two are
  clear of the tolerance.
- ``vocab_scores`` (text-aligned backbones): ``vocab_atol`` on the cosines, which lie in
  [-1, 1] whatever the model.

Measured on the textile benchmark (default config, support images + variants and 20
test images), worst of ONNX Runtime and OpenVINO; "rel" is relative to the image's
largest value, as in the tolerances:

=========  ===========  ==============  ==============
precision  score (rel)  map (abs; rel)  logits (rel)
=========  ===========  ==============  ==============
fp32       4e-7         4e-4; 6e-4      1e-5
fp16       8e-3         2.5e-2; 3.4e-2  2.2e-2
=========  ===========  ==============  ==============

The fp32 bounds sit about 10x above that (yet a wrong normalisation, a stale bank or a
swapped output moves these numbers by orders of magnitude); the fp16 bounds 3-4x,
covering fp16 weights computed in f32 (OpenVINO on CPUs without f16 arithmetic) and
fp16 arithmetic (ONNX Runtime's fp16 graph). The probability bounds follow from the
logits' noise through the softmax's largest slope (1/4 of a change in the difference of
two logits, at p = 0.5): fp32 0.02 (logits up to 0.051 off, measured 4.4e-4 in
probability on the textile case above, whose images sit far from p = 0.5), fp16 0.1.
No verdict depends on them (the score alone decides it); a label can move only between
classes that close, which the argmax rule exempts; a class head that differs in earnest
(prototype labels mixed up, a wrong standardisation) moves probabilities by tenths. bf16 is not covered and never used: with 8
mantissa bits it moved maps by 13% and logits by 9% of their scale (see the runtime).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from defectkit.core.decide import softmax
from defectkit.core.predictor import BATCH_SIZE
from defectkit.core.results import RawOutputs
from defectkit.errors import BundleError


@dataclass(frozen=True)
class Tolerance:
    """Largest differences from PyTorch an export may show (see the module docstring)."""

    score_rtol: float
    score_atol: float
    map_rtol: float
    map_atol: float
    prob_atol: float
    vocab_atol: float


TOLERANCES = {
    "fp32": Tolerance(
        # Tiled graphs stitch many tiles whose distances each carry that rounding; a
        # 4-good-shot synthetic fit differed by 2.3-3.3e-4 on scores near 1 (browser test).
        # 1e-3 cannot flip a verdict unless the score is within 0.1 % of the threshold.
        score_rtol=1e-3,
        score_atol=1e-3,
        map_rtol=1e-3,
        map_atol=2e-3,
        # softmax moves a probability by at most 1/4 of the change in a logit difference
        # (at p = 0.5); faithful fp32 exports moved logits by up to 0.051, so differences
        # by up to ~0.08: 0.02 covers that on the worst-conditioned image.
        prob_atol=2e-2,
        vocab_atol=1e-3,
    ),
    "fp16": Tolerance(
        score_rtol=3e-2,
        # Calibrated tile scores (1.0 = the most unusual good shot): OpenVINO f16 moved
        # a synthetic check image's 0.3 by 0.011, 1 % of a typical threshold.
        score_atol=2e-2,
        map_rtol=0.1,
        map_atol=2e-2,
        prob_atol=0.1,
        vocab_atol=3e-2,
    ),
}


MEASURES = (
    "score_max_abs", "score_max_rel", "map_max_abs", "map_max_rel", "logit_max_abs", "logit_max_rel",
    "prob_max_abs", "similarity_max_abs", "similarity_max_rel", "shot_prob_max_abs", "vocab_max_abs",
)  # fmt: skip


@dataclass
class SelfCheck:
    """What the check measured; stored in the manifest under ``selfcheck``."""

    engine: str
    device: str
    inference_precision: str
    images: int
    batch_sizes: list[int]
    tolerance: dict[str, float]
    score_max_abs: float
    score_max_rel: float
    map_max_abs: float
    map_max_rel: float
    logit_max_abs: float
    logit_max_rel: float
    argmax_checked: int
    argmax_agree: int
    verdicts_agree: int
    passed: bool
    failures: list[str] = field(default_factory=list)
    #: Largest difference of a class probability (what the check bounds; 0.0 in a
    #: bundle's record from before it did).
    prob_max_abs: float = 0.0
    #: Caption evidence; None when the graph has no such output.
    similarity_max_abs: float | None = None
    similarity_max_rel: float | None = None
    shot_prob_max_abs: float | None = None
    nearest_shot_checked: int = 0
    nearest_shot_agree: int = 0
    vocab_max_abs: float | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in MEASURES:
            if out[key] is not None:
                out[key] = float(f"{out[key]:.3g}")
        return out


def check_images(images: list[np.ndarray], *, limit: int = 24, seed: int = 0) -> list[np.ndarray]:
    """The support images plus variants the model has not seen exactly: flipped,
    rotated by 90 degrees and noised copies (up to ``limit`` images in all)."""
    base = [np.asarray(im) for im in images][:limit]
    rng = np.random.default_rng(seed)
    variants: list[np.ndarray] = []
    for image in base:
        noisy = image.astype(np.float32) + rng.normal(0.0, 6.0, image.shape)
        variants += [
            np.ascontiguousarray(image[:, ::-1]),
            np.ascontiguousarray(np.rot90(image)),
            np.clip(noisy, 0, 255).astype(image.dtype) if image.dtype == np.uint8 else image,
        ]
    return base + variants[: max(0, limit - len(base))]


def default_check_images(size: tuple[int, int], *, seed: int = 0) -> list[np.ndarray]:
    """Generated textures with defects, for exports whose support images are not at hand.

    Parity does not need realistic parts, only inputs that exercise every operation
    (both heads, near and far from the bank).
    """
    from defectkit.datasets import make_synthetic

    samples = make_synthetic(n_good=3, defects=("scratch", "spot", "hole"), size=size, seed=seed)
    return [s.load_image() for s in samples]


def _per_image_max(a: np.ndarray) -> np.ndarray:
    return np.abs(a).reshape(len(a), -1).max(axis=1, initial=0.0)


def _probabilities(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax (N x K, K may be 0), as :func:`~defectkit.core.decide.decide` takes it."""
    return softmax(logits) if logits.shape[1] else logits


def _compare_probabilities(ref_logits: np.ndarray, exp_logits: np.ndarray, atol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(largest |probability difference| per image, clear, agree) from N x K logits.

    ``clear``: the reference's top two probabilities lie more than ``2 * atol`` apart,
    so no difference within the tolerance can reorder them; ``agree``: both argmaxes match.
    """
    ref, exp = _probabilities(ref_logits), _probabilities(exp_logits)
    n = len(ref)
    diff = _per_image_max(exp - ref)
    if ref.shape[1] < 2:
        return diff, np.zeros(n, bool), np.ones(n, bool)
    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * atol
    return diff, clear, ref.argmax(axis=1) == exp.argmax(axis=1)


def _compare_extras(reference: dict, exported: dict, tol: Tolerance) -> dict:
    """The caption outputs (present in both, by name): measures and failures."""
    found: dict = {"failures": []}
    if "prototype_similarity" in reference:
        ref = np.asarray(reference["prototype_similarity"], dtype=np.float64)
        exp = np.asarray(exported["prototype_similarity"], dtype=np.float64)
        diff, scale = _per_image_max(exp - ref), _per_image_max(ref)
        shot_diff, clear, agree = _compare_probabilities(ref, exp, tol.prob_atol)
        found.update(
            similarity_max_abs=float(diff.max(initial=0.0)),
            similarity_max_rel=float((diff / np.maximum(scale, 1e-12)).max(initial=0.0)),
            shot_prob_max_abs=float(shot_diff.max(initial=0.0)),
            nearest_shot_checked=int(clear.sum()),
            nearest_shot_agree=int((clear & agree).sum()),
        )
        if (shot_diff > tol.prob_atol).any():
            i = int(np.argmax(shot_diff))
            found["failures"].append(
                f"nearest-shot probabilities differ by up to {shot_diff[i]:.3g} on check "
                f"image {i} (allowed {tol.prob_atol:.3g})"
            )
        if (clear & ~agree).any():
            found["failures"].append(
                f"nearest labelled shot differs on {int((clear & ~agree).sum())} clear-cut images"
            )
    if "vocab_scores" in reference:
        diff = _per_image_max(
            np.asarray(exported["vocab_scores"], np.float64) - np.asarray(reference["vocab_scores"], np.float64)
        )
        found["vocab_max_abs"] = float(diff.max(initial=0.0))
        if (diff > tol.vocab_atol).any():
            i = int(np.argmax(diff))
            found["failures"].append(
                f"vocabulary scores differ by up to {diff[i]:.3g} on check image {i} "
                f"(allowed {tol.vocab_atol:.3g})"
            )
    return found


def _per_image_map_diff(reference: Sequence[RawOutputs], exported: Sequence[RawOutputs]) -> tuple[np.ndarray, np.ndarray]:
    """Largest |difference| of each image's anomaly map (inf on a shape mismatch), and
    the reference map's largest |value|."""
    diff, scale = [], []
    for r, e in zip(reference, exported, strict=True):
        rm, em = np.asarray(r.anomaly_map, np.float64), np.asarray(e.anomaly_map, np.float64)
        diff.append(np.abs(em - rm).max(initial=0.0) if rm.shape == em.shape else np.inf)
        scale.append(np.abs(rm).max(initial=0.0))
    return np.array(diff), np.array(scale)


def compare(
    reference: Sequence[RawOutputs], exported: Sequence[RawOutputs], tol: Tolerance, *, threshold: float
) -> dict:
    """Differences between two lists of per-image raw outputs, and which tolerances
    they break (images may differ in size; each map is compared at its own).

    Args:
        reference, exported: raw outputs of the same images, one per image; both must
            hold the same outputs (``vocab_scores`` in both or in neither). A type-only
            model's scores are NaN in both, which counts as agreement.
    """
    names = {r.names for r in reference} | {e.names for e in exported}
    if len(names) > 1 or len(reference) != len(exported):
        return {key: 0.0 for key in MEASURES[:7]} | {
            "argmax_checked": 0, "argmax_agree": 0, "verdicts_agree": 0,
            "failures": [f"the exported model gives outputs {sorted(names)} for {len(exported)} "
                         f"images, PyTorch for {len(reference)}"],
        }  # fmt: skip
    s_ref = np.array([float(r.score) for r in reference])
    s_exp = np.array([float(e.score) for e in exported])
    both_nan = np.isnan(s_ref) & np.isnan(s_exp)
    ds = np.where(both_nan, 0.0, np.nan_to_num(np.abs(s_exp - s_ref), nan=np.inf))
    dm, m_scale = _per_image_map_diff(reference, exported)
    l_ref = np.stack([np.asarray(r.class_logits, np.float64) for r in reference])
    l_exp = np.stack([np.asarray(e.class_logits, np.float64) for e in exported])
    dl, l_scale = _per_image_max(l_exp - l_ref), _per_image_max(l_ref)  # measured, not bounded
    dp, clear, agree = _compare_probabilities(l_ref, l_exp, tol.prob_atol)
    s_abs = np.nan_to_num(np.abs(s_ref))
    allowed = {
        "score": np.maximum(tol.score_rtol * s_abs, tol.score_atol),
        "anomaly map": tol.map_atol + tol.map_rtol * m_scale,
        "class probabilities": np.full(len(dp), tol.prob_atol),
    }
    failures = []
    for what, diff in (("score", ds), ("anomaly map", dm), ("class probabilities", dp)):
        if (diff > allowed[what]).any():
            i = int(np.argmax(diff / allowed[what]))
            failures.append(
                f"{what} differ{'s' if what != 'class probabilities' else ''} by up to "
                f"{diff[i]:.3g} on check image {i} (allowed {allowed[what][i]:.3g})"
            )
    if (clear & ~agree).any():
        failures.append(
            f"predicted class differs on {int((clear & ~agree).sum())} clear-cut images"
        )
    stacked = {
        name: (np.stack([np.asarray(getattr(r, name)) for r in reference]),
               np.stack([np.asarray(getattr(e, name)) for e in exported]))
        for name in reference[0].names[3:]
    } if reference else {}  # fmt: skip
    extras = _compare_extras({k: v[0] for k, v in stacked.items()}, {k: v[1] for k, v in stacked.items()}, tol)
    failures += extras.pop("failures")
    return extras | {
        "score_max_abs": float(ds.max(initial=0.0)),
        "score_max_rel": float((ds / np.maximum(s_abs, 1e-12)).max(initial=0.0)),
        "map_max_abs": float(dm.max(initial=0.0)),
        "map_max_rel": float((dm / np.maximum(m_scale, 1e-12)).max(initial=0.0)),
        "logit_max_abs": float(dl.max(initial=0.0)),
        "logit_max_rel": float((dl / np.maximum(l_scale, 1e-12)).max(initial=0.0)),
        "prob_max_abs": float(dp.max(initial=0.0)),
        "argmax_checked": int(clear.sum()),
        "argmax_agree": int((clear & agree).sum()),
        "verdicts_agree": int((both_nan | ((s_ref >= threshold) == (s_exp >= threshold))).sum()),
        "failures": failures,
    }


def _batch_sizes(n: int) -> list[int]:
    return sorted({min(BATCH_SIZE, n - i) for i in range(0, n, BATCH_SIZE)} | {1})


def run_selfcheck(inspector, bundle, images: list[np.ndarray], *, precision: str) -> SelfCheck:
    """Compare a loaded bundle with the inspector it came from on ``images``.

    Args:
        inspector: the PyTorch inspector that was exported (at the exported input size).
        bundle: the written bundle, loaded with :func:`~defectkit.exporters.runtime.load_bundle`.
        images: H x W x 3 images, e.g. :func:`check_images` of the support set.
        precision: ``"fp32"`` or ``"fp16"``, which picks the tolerance.

    Raises:
        BundleError: the exported model disagrees with PyTorch, saying by how much.
    """
    tol = TOLERANCES[precision]
    names = tuple(inspector.output_names)
    if tuple(bundle.output_names) != names:
        raise BundleError(
            f"export self-check failed: the bundle's outputs {list(bundle.output_names)} are "
            f"not the inspector's {list(names)}. No bundle was written."
        )
    reference = inspector.raw_each(images)
    found = compare(reference, bundle.raw_each(images), tol, threshold=bundle.thresholds.image)
    # The first image again on its own: a graph whose batch dimension was frozen to the
    # batched size, or that mixes tiles across the batch, fails here.
    alone = compare(reference[:1], bundle.raw_each(images[:1]), tol, threshold=bundle.thresholds.image)
    for key in MEASURES:
        if found.get(key) is not None:
            found[key] = max(found[key], alone[key])
    found["failures"] += [f"at batch 1: {f}" for f in alone["failures"]]
    engine = bundle.engine
    check = SelfCheck(
        engine=engine.name, device=engine.device, inference_precision=engine.precision,
        images=len(images), batch_sizes=_batch_sizes(len(images)),
        tolerance=asdict(tol), passed=not found["failures"], **found,
    )  # fmt: skip
    if not check.passed:
        raise BundleError(
            f"export self-check failed: the {engine.name} model ({engine.precision} on "
            f"{engine.device}) disagrees with PyTorch on {len(images)} check images: "
            + "; ".join(check.failures)
            + ". No bundle was written."
        )
    return check
