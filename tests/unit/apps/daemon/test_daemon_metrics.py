"""Prometheus text format: HELP/TYPE, label escaping, cumulative histogram buckets."""

import math
import re

from defectkit.apps.daemon.metrics import (
    Counter,
    DaemonMetrics,
    Histogram,
    Registry,
    escape_label_value,
)

# One sample line of the text exposition format 0.0.4.
SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*",?)*\})? '
    r"(-?[0-9.e+-]+|\+Inf|-Inf|NaN)$"
)


def assert_valid_exposition(text: str) -> None:
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        assert SAMPLE.match(line), f"not a valid sample line: {line!r}"


def test_label_values_are_escaped():
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    c = Counter("x_total", "help", ("label",))
    c.inc(label='evil"class\nname')
    (line,) = c.samples()
    assert line == 'x_total{label="evil\\"class\\nname"} 1'


def test_histogram_buckets_are_cumulative_and_end_with_inf():
    h = Histogram("lat_seconds", "h", ("source",), buckets=(0.1, 1.0))
    for v in (0.05, 0.5, 0.5, 5.0):
        h.observe(v, source="http")
    lines = h.samples()
    assert lines[:3] == [
        'lat_seconds_bucket{source="http",le="0.1"} 1',
        'lat_seconds_bucket{source="http",le="1"} 3',
        'lat_seconds_bucket{source="http",le="+Inf"} 4',
    ]
    assert lines[3].startswith('lat_seconds_sum{source="http"} 6.05')
    assert lines[4] == 'lat_seconds_count{source="http"} 4'


def test_registry_renders_help_and_type_once_per_metric():
    r = Registry()
    r.add(Counter("a_total", "A things.")).inc()
    text = r.render()
    assert text == "# HELP a_total A things.\n# TYPE a_total counter\na_total 1\n"


def test_daemon_metrics_page_is_valid():
    m = DaemonMetrics(queue_depth=lambda: 3, queue_capacity=8, bundle_id=lambda: "abc123")
    m.inspections.inc(source="http", verdict="defect", label='scr"atch')
    m.latency.observe(0.02, source="folder")
    m.errors.inc(kind="queue_full")
    text = m.render()
    assert_valid_exposition(text)
    assert "defectkit_queue_depth 3" in text and "defectkit_queue_capacity 8" in text
    assert 'defectkit_bundle_info{bundle_id="abc123"} 1' in text
    assert 'defectkit_errors_total{kind="queue_full"} 1' in text
    rss = [line for line in text.splitlines() if line.startswith("process_resident_memory_bytes")]
    assert rss and (math.isnan(float(rss[0].split()[1])) or float(rss[0].split()[1]) > 1e6)
