"""Prometheus metrics in the text exposition format (version 0.0.4), without a client library.

Three metric kinds cover what a line needs - counts by verdict and class, a latency
histogram, the queue depth - and writing them is ~100 lines, so the factory PC needs
one package fewer. Label values are escaped as the format requires, since class names
come from whoever labelled the bundle.
"""

from __future__ import annotations

import bisect
import math
import os
import threading
import time
from collections.abc import Callable, Iterable

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

LabelKey = tuple[tuple[str, str], ...]


def escape_label_value(value: str) -> str:
    """Backslash, double quote and newline escaped as the exposition format requires."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(key: LabelKey, extra: Iterable[tuple[str, str]] = ()) -> str:
    pairs = list(key) + list(extra)
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{escape_label_value(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class Counter:
    """A monotonically increasing count per label set."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labelnames: tuple[str, ...] = ()):
        self.name, self.help, self.labelnames = name, help_text, labelnames
        self._values: dict[LabelKey, float] = {}
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple((n, str(labels[n])) for n in self.labelnames)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(tuple((n, str(labels[n])) for n in self.labelnames), 0.0)

    def samples(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(k)} {_number(v)}" for k, v in items]


class Gauge:
    """A value read when scraped (queue depth, memory) from a callback."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], float]):
        self.name, self.help, self.read = name, help_text, read

    def samples(self) -> list[str]:
        return [f"{self.name} {_number(self.read())}"]


class Info:
    """A constant-1 gauge whose labels carry the value (``defectkit_bundle_info{bundle_id=...}``)."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], dict[str, str]]):
        self.name, self.help, self.read = name, help_text, read

    def samples(self) -> list[str]:
        return [f"{self.name}{_labels(tuple(sorted(self.read().items())))} 1"]


class Histogram:
    """Cumulative buckets, sum and count per label set."""

    kind = "histogram"

    def __init__(
        self, name: str, help_text: str, labelnames: tuple[str, ...] = (), buckets=LATENCY_BUCKETS
    ):
        self.name, self.help, self.labelnames = name, help_text, labelnames
        self.buckets = tuple(sorted(buckets))
        self._data: dict[LabelKey, list[float]] = {}  # bucket counts..., sum, count
        self._lock = threading.Lock()

    def observe(self, value: float, **labels: str) -> None:
        key = tuple((n, str(labels[n])) for n in self.labelnames)
        index = bisect.bisect_left(self.buckets, value)
        with self._lock:
            data = self._data.setdefault(key, [0.0] * (len(self.buckets) + 2))
            if index < len(self.buckets):
                data[index] += 1
            data[-2] += value
            data[-1] += 1

    def samples(self) -> list[str]:
        lines = []
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._data.items())
        for key, data in items:
            cumulative = 0.0
            for bound, count in zip(self.buckets, data[: len(self.buckets)], strict=True):
                cumulative += count
                lines.append(
                    f"{self.name}_bucket{_labels(key, [('le', _number(bound))])} {_number(cumulative)}"
                )
            lines.append(f"{self.name}_bucket{_labels(key, [('le', '+Inf')])} {_number(data[-1])}")
            lines.append(f"{self.name}_sum{_labels(key)} {_number(data[-2])}")
            lines.append(f"{self.name}_count{_labels(key)} {_number(data[-1])}")
        return lines


class Registry:
    """Metrics in registration order, rendered as one text page."""

    def __init__(self) -> None:
        self._metrics: list[Counter | Gauge | Info | Histogram] = []

    def add(self, metric):
        self._metrics.append(metric)
        return metric

    def render(self) -> str:
        out = []
        for m in self._metrics:
            out.append(f"# HELP {m.name} {m.help}")
            out.append(f"# TYPE {m.name} {m.kind}")
            out.extend(m.samples())
        return "\n".join(out) + "\n"


def resident_memory_bytes() -> float:
    """RSS of this process from /proc (Linux); NaN elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return float(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return float("nan")


class DaemonMetrics:
    """The daemon's metrics; gauges read live state through callbacks."""

    def __init__(
        self,
        *,
        queue_depth: Callable[[], float],
        queue_capacity: float,
        bundle_id: Callable[[], str] = lambda: "",
        pixels_in_flight: Callable[[], float] = lambda: 0.0,
        pixel_budget: float = 0.0,
        store_up: Callable[[], float] = lambda: 1.0,
        review_queued: Callable[[], float] = lambda: 0.0,
    ):
        r = self.registry = Registry()
        self.inspections = r.add(Counter(
            "defectkit_inspections_total", "Images inspected, by source, verdict and class.",
            ("source", "verdict", "label")))  # fmt: skip
        self.rejected = r.add(Counter(
            "defectkit_rejected_total", "Inputs refused before inference (bad image, too large...).",
            ("source", "reason")))  # fmt: skip
        self.errors = r.add(
            Counter(
                "defectkit_errors_total", "Failures: inference, store, overload, auth.", ("kind",)
            )
        )
        self.duplicates = r.add(
            Counter(
                "defectkit_duplicates_total",
                "Inputs whose content was already inspected.",
                ("source",),
            )
        )
        self.reloads = r.add(
            Counter("defectkit_reloads_total", "Bundle reloads by result.", ("result",))
        )
        self.store_errors = r.add(Counter(
            "defectkit_store_errors_total",
            "Results-store operations that failed (read, write incl. health probes).",
            ("operation",)))  # fmt: skip
        self.skipped = r.add(Counter(
            "defectkit_skipped_total",
            "Hot-folder entries left alone (folders, FIFOs, hidden names...), once per name.",
            ("kind",)))  # fmt: skip
        self.timeouts = r.add(Counter(
            "defectkit_client_timeouts_total",
            "Connections cut for sending headers or a body too slowly.", ("phase",)))  # fmt: skip
        self.reviews = r.add(Counter(
            "defectkit_review_total",
            "Parts in the bundle's uncertainty band, marked for review, by --review-policy.",
            ("policy",)))  # fmt: skip
        self.review_evicted = r.add(Counter(
            "defectkit_review_evicted_total",
            "Review parts evicted (oldest first) to keep the review store within its limits."))  # fmt: skip
        r.add(Gauge("defectkit_review_queued", "Parts in the review store now.", review_queued))
        self.latency = r.add(
            Histogram(
                "defectkit_inspection_seconds", "Time from queueing to committed row.", ("source",)
            )
        )
        self.inference = r.add(
            Histogram("defectkit_inference_seconds", "Time of one bundle.inspect call per image.")
        )
        r.add(
            Info(
                "defectkit_bundle_info",
                "The bundle being served.",
                lambda: {"bundle_id": bundle_id()},
            )
        )
        r.add(Gauge("defectkit_queue_depth", "Jobs waiting for a worker.", queue_depth))
        r.add(Gauge("defectkit_queue_capacity", "Most jobs that may wait.", lambda: queue_capacity))
        r.add(Gauge("defectkit_pixels_in_flight", "Decoded pixels held by the workers now.",
                    pixels_in_flight))  # fmt: skip
        r.add(Gauge("defectkit_pixel_budget", "Most decoded pixels held at once (--pixel-budget-mp).",
                    lambda: pixel_budget))  # fmt: skip
        r.add(Gauge("defectkit_store_up", "1 when a write probe of the results store succeeds.",
                    store_up))  # fmt: skip
        started = time.time()
        r.add(
            Gauge("defectkit_start_time_seconds", "Unix time the daemon started.", lambda: started)
        )
        r.add(
            Gauge(
                "process_resident_memory_bytes",
                "Resident memory of the daemon.",
                resident_memory_bytes,
            )
        )

    def render(self) -> str:
        return self.registry.render()
