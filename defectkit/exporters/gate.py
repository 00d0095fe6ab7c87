"""The regression gate ("nothing forgotten"): a new bundle against every labelled image.

Small models taught new corner cases forget old ones, so before a bundle is promoted it
runs on every image ever labelled or confirmed in review, beside the bundle it would
replace. Every image whose verdict or class the two bundles answer differently is a
*flip*, listed with both answers and overlays:

- ``regression``: the old bundle was right (by the label) and the new one is wrong -
  something was forgotten. Regressions block promotion unless an engineer accepts them.
- ``fix``: the old bundle was wrong and the new one is right (the point of a refit).
- ``change``: both right (e.g. an anomaly now named) or both wrong.

With no bundle to compare against (the first release), every image the new bundle gets
wrong is a ``miss``, and misses block instead.

Right means: the verdict matches the label (``good`` -> good, any defect class ->
defect) and, for a defect the bundle calls a defect, the class is the labelled one. A
type-only bundle (no verdict) is judged on its class alone. Only the public runtime API
is used (``bundle.inspect`` and the result's verdict, label, score and threshold).

With an :class:`~defectkit.exporters.answers.AnswerStore` (a registry keeps one), every
answer a bundle gives is kept, and a bundle is only asked about images it has not
answered before in the same setting: the current bundle answered the labelled images
when it was itself gated, so a gate runs the new bundle alone (and the new bundle's
answers are ready for the gate after it).
"""

from __future__ import annotations

import html
import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from defectkit.core.files import write_atomic
from defectkit.core.labels import DEFECT, GOOD
from defectkit.core.overlay import overlay
from defectkit.datasets.base import Sample
from defectkit.errors import ConfigError
from defectkit.exporters.answers import AnswerStore, KeptAnswer, image_key, setting_key

REPORT_JSON = "gate.json"
REPORT_HTML = "index.html"
BLOCKING = ("regression", "miss")
#: Images per ``bundle.inspect`` call: large enough to amortise the engine's call cost,
#: small enough that a batch of 5 MP images stays a few hundred MB.
BATCH = 8
#: Overlays are drawn at most this many pixels on the long side (the HTML shows them small).
OVERLAY_SIDE = 512
#: Overlays are JPEG: PNG encoding of textured parts took 24 ms an overlay, 10 s of a
#: 500-image gate with 210 flips (two overlays each); JPEG at this quality takes ~0.3 ms
#: and a fifth of the bytes, and a heat-map picture for a person loses nothing visible.
OVERLAY_QUALITY = 90


@dataclass(frozen=True)
class Answer:
    """A bundle's answer about one image."""

    verdict: str | None
    label: str
    score: float

    @classmethod
    def of(cls, result: Any) -> Answer:
        return cls(result.verdict, str(result.label), round(float(result.score), 6))


@dataclass(frozen=True)
class Flip:
    """One image the new bundle answers differently from the old (or, with no old
    bundle, gets wrong)."""

    image: str
    truth: str
    effect: str  # regression, fix, change or miss
    new: Answer
    old: Answer | None = None
    overlays: tuple[str, ...] = ()  # report-relative JPEGs: new, then old

    @property
    def blocking(self) -> bool:
        return self.effect in BLOCKING


@dataclass
class GateReport:
    """What the gate found; written as ``gate.json`` + ``index.html`` + overlay JPEGs."""

    new_bundle: str
    old_bundle: str | None
    images: int
    flips: list[Flip] = field(default_factory=list)
    seconds: float = 0.0
    created: float = field(default_factory=time.time)
    #: Images each bundle was run on; the rest of ``images`` came from kept answers.
    inspected_new: int = 0
    inspected_old: int = 0

    @property
    def blockers(self) -> list[Flip]:
        return [f for f in self.flips if f.blocking]

    @property
    def passed(self) -> bool:
        return not self.blockers

    def summary(self) -> str:
        counts = {e: sum(f.effect == e for f in self.flips) for e in ("regression", "fix",
                                                                        "change", "miss")}  # fmt: skip
        against = f"against {self.old_bundle}" if self.old_bundle else "against the labels only"
        shown = ", ".join(f"{n} {e}{'es' if e == 'fix' and n != 1 else 's' if n != 1 else ''}"
                          for e, n in counts.items() if n) or "no flips"  # fmt: skip
        verdict = "passed" if self.passed else f"BLOCKED by {len(self.blockers)}"
        kept = self.images - self.inspected_old if self.old_bundle else 0
        reused = f"; {kept} of the old bundle's answers kept from before" if kept else ""
        return (
            f"gate {verdict}: bundle {self.new_bundle} {against} on {self.images} labelled "
            f"images: {shown} ({self.seconds:.1f} s{reused})"
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["passed"] = self.passed
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateReport:
        flips = [
            Flip(
                image=f["image"], truth=f["truth"], effect=f["effect"], new=Answer(**f["new"]),
                old=Answer(**f["old"]) if f.get("old") else None, overlays=tuple(f["overlays"]),
            )  # fmt: skip
            for f in data["flips"]
        ]
        return cls(data["new_bundle"], data["old_bundle"], data["images"], flips,
                   data["seconds"], data["created"],
                   # reports written before answers were kept ran both bundles on every image
                   data.get("inspected_new", data["images"]),
                   data.get("inspected_old", data["images"] if data["old_bundle"] else 0))  # fmt: skip

    @classmethod
    def read(cls, folder: str | Path) -> GateReport:
        return cls.from_dict(json.loads((Path(folder) / REPORT_JSON).read_text()))


def is_right(answer: Answer, truth: str) -> bool:
    """Does ``answer`` agree with the label ``truth`` (see the module docstring)?"""
    if answer.verdict is None:  # type-only: the class is all it says
        return answer.label == truth
    expected = GOOD if truth == GOOD else DEFECT
    if answer.verdict != expected:
        return False
    return truth == GOOD or answer.label == truth


def effect_of(truth: str, new: Answer, old: Answer | None) -> str | None:
    """The flip's effect, or None when the image is not a flip."""
    if old is None:
        return None if is_right(new, truth) else "miss"
    if (new.verdict, new.label) == (old.verdict, old.label):
        return None
    was, now = is_right(old, truth), is_right(new, truth)
    if was and not now:
        return "regression"
    if now and not was:
        return "fix"
    return "change"


def run_gate(
    new: Any,
    samples: Sequence[Sample],
    *,
    old: Any | None = None,
    report_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    answers: AnswerStore | None = None,
    workers: int = 1,
) -> GateReport:
    """Run ``new`` (and ``old``) on every labelled sample; list the flips.

    Args:
        new, old: loaded bundles (``load_bundle(...)``), or anything with ``.id`` and
            ``.inspect(images, paths=)``.
        samples: labelled images (``good`` or a defect class).
        report_dir: when given, ``gate.json``, ``index.html`` and an overlay per flip
            are written there.
        progress: called with (done, total) after each batch.
        answers: kept answers: each bundle is asked only about images it has not
            answered in the same setting, and its new answers are kept.
        workers: batches inspected at once, each in its own thread (load the bundles
            with ``streams=workers`` so each gets its share of the cores).
    """
    if not samples:
        raise ConfigError("the gate needs labelled images; none were given")
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    started = time.perf_counter()
    report = GateReport(new.id, old.id if old is not None else None, len(samples))
    out = Path(report_dir) if report_dir is not None else None
    sides = [("new", new)] + ([("old", old)] if old is not None else [])
    # Batches are read and looked up here, inspected in the pool, and judged here in
    # order; at most 2 x workers batches are in flight, so memory stays a few batches.
    in_flight: deque[_Batch] = deque()
    done = 0

    def judge_oldest() -> None:
        nonlocal done
        batch = in_flight.popleft()
        _judge(batch, report, out, answers)
        done += len(batch.samples)
        if progress is not None:
            progress(done, len(samples))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(samples), BATCH):
            in_flight.append(_Batch.start(list(samples[start : start + BATCH]), sides, answers, pool))
            if len(in_flight) >= 2 * workers:
                judge_oldest()
        while in_flight:
            judge_oldest()
    report.seconds = round(time.perf_counter() - started, 3)
    if out is not None:
        write_report(report, out)
    return report


@dataclass
class _Batch:
    """A few samples on their way through the gate: images read, kept answers looked
    up, the bundles' inspection of the rest running in the pool."""

    samples: list[Sample]
    images: list[np.ndarray]
    names: list[str]
    keys: list[str]
    asks: dict[str, _Ask]

    @classmethod
    def start(cls, samples: list[Sample], sides, answers: AnswerStore | None, pool) -> _Batch:
        images = [s.load_image() for s in samples]
        names = [_name(s) for s in samples]
        keys = [image_key(im) for im in images] if answers is not None else [str(i) for i in range(len(images))]
        asks = {tag: _Ask.start(bundle, images, names, keys, answers, pool) for tag, bundle in sides}
        return cls(samples, images, names, keys, asks)


@dataclass
class _Ask:
    """One bundle's answers for a batch: kept ones, and a future for the images it has
    not answered before in the same setting (all of them without a store)."""

    bundle: Any
    setting: str
    kept: dict[str, Any]
    missing: list[int]
    pending: Future | None

    @classmethod
    def start(cls, bundle, images, names, keys, answers: AnswerStore | None, pool) -> _Ask:
        setting = setting_key(bundle) if answers is not None else ""
        kept: dict[str, Any] = answers.get(setting, keys) if answers is not None else {}
        missing = [i for i, key in enumerate(keys) if key not in kept]
        pending = None
        if missing:
            pending = pool.submit(bundle.inspect, [images[i] for i in missing],
                                  paths=[names[i] for i in missing])  # fmt: skip
        return cls(bundle, setting, kept, missing, pending)

    def results(self, keys: list[str], answers: AnswerStore | None) -> list[Any]:
        """Every image's result, in order; fresh answers are kept (in the caller's thread:
        the store's connection belongs to it)."""
        if self.pending is not None:
            fresh = dict(zip((keys[i] for i in self.missing), self.pending.result(), strict=True))
            if answers is not None:
                answers.put(self.setting, self.bundle.id, {k: KeptAnswer.of(r) for k, r in fresh.items()})
            self.kept.update(fresh)  # the live results: their full-size maps draw sharper
        return [self.kept[key] for key in keys]


def _judge(batch: _Batch, report: GateReport, out: Path | None, answers) -> None:
    """Compare the batch's answers, list its flips (with overlays), count the asks."""
    new_results = batch.asks["new"].results(batch.keys, answers)
    report.inspected_new += len(batch.asks["new"].missing)
    old_results: list[Any] = [None] * len(batch.samples)
    if "old" in batch.asks:
        old_results = batch.asks["old"].results(batch.keys, answers)
        report.inspected_old += len(batch.asks["old"].missing)
    for sample, image, name, nr, orr in zip(batch.samples, batch.images, batch.names, new_results,
                                             old_results, strict=True):  # fmt: skip
        new_answer, old_answer = Answer.of(nr), Answer.of(orr) if orr is not None else None
        effect = effect_of(sample.label, new_answer, old_answer)
        if effect is None:
            continue
        drawn = ()
        if out is not None:
            index = len(report.flips)
            drawn = tuple(
                _write_overlay(out, f"{index:05d}-{tag}.jpg", image, result)
                for tag, result in (("new", nr), ("old", orr)) if result is not None
            )  # fmt: skip
        report.flips.append(Flip(name, sample.label, effect, new_answer, old_answer, drawn))


def write_report(report: GateReport, folder: Path) -> None:
    """``gate.json`` (machine-readable) and ``index.html`` (the flips with overlays)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / REPORT_JSON, (json.dumps(report.to_dict(), indent=1) + "\n").encode())
    write_atomic(folder / REPORT_HTML, render_html(report).encode())


def render_html(report: GateReport) -> str:
    e = html.escape
    rows = []
    for flip in report.flips:
        cells = [flip.effect, flip.image, flip.truth, _answer(flip.old), _answer(flip.new)]
        pictures = "".join(f'<img src="{e(p)}" alt="{e(p)}" height="160">' for p in flip.overlays)
        style = ' class="block"' if flip.blocking else ""
        rows.append(f"<tr{style}>" + "".join(f"<td>{e(c)}</td>" for c in cells)
                    + f"<td>{pictures}</td></tr>")  # fmt: skip
    return (
        "<!doctype html><meta charset=utf-8><title>defectkit regression gate</title>"
        "<style>body{font-family:sans-serif}td{padding:4px 8px;vertical-align:top}"
        ".block{background:#fdd}</style>"
        f"<h1>Regression gate</h1><p>{e(report.summary())}</p>"
        "<p>Overlays: the new bundle's first, the old bundle's second.</p>"
        "<table><tr><th>effect</th><th>image</th><th>label</th><th>old</th><th>new</th>"
        "<th>overlays</th></tr>" + "".join(rows) + "</table>\n"
    )


def _answer(answer: Answer | None) -> str:
    if answer is None:
        return "-"
    return f"{answer.verdict or 'type only'} / {answer.label} ({answer.score:.4g})"


def _name(sample: Sample) -> str:
    return str(sample.meta.get("id") or (sample.path.name if sample.path else sample.key))


def _write_overlay(folder: Path, name: str, image: np.ndarray, result: Any) -> str:
    picture = overlay(image, result.anomaly_map, threshold=float(result.threshold),
                      boxes=result.boxes)  # fmt: skip
    pil = Image.fromarray(picture)
    pil.thumbnail((OVERLAY_SIDE, OVERLAY_SIDE))
    (folder / "overlays").mkdir(parents=True, exist_ok=True)
    pil.save(folder / "overlays" / name, quality=OVERLAY_QUALITY)
    return f"overlays/{name}"
