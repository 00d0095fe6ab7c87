"""``inspect batch`` and ``inspect compare``: registered, flags onto BatchConfig, user
errors in one line with exit 2 before any cluster starts."""

from __future__ import annotations

import time

from defectkit.cli import build_parser, main
from defectkit.testing import batch as testing_batch
from defectkit.testing.daemon import write_fake_bundle


def test_batch_flags_map_onto_the_config(monkeypatch, tmp_path):
    from defectkit.apps.batch import job
    from defectkit.cli import batch as cli

    seen = []
    monkeypatch.setattr(job, "run", lambda config: seen.append(config) or _summary())
    argv = ["batch", "b", "s1", "s2", "--store", "postgresql://x/y", "--scheduler", "tcp://h:8786",
            "--workers", "3", "--station", "L2", "--chunk-size", "8", "--retry-failed", "--max-file-mb", "5"]  # fmt: skip
    args = build_parser().parse_args(argv)
    assert args.func is cli.cmd_batch and cli.cmd_batch(args) == 0
    (c,) = seen
    assert (str(c.bundle), c.sources, c.store, c.scheduler) == (
        "b",
        ("s1", "s2"),
        "postgresql://x/y",
        "tcp://h:8786",
    )
    assert (c.workers, c.station, c.chunk_size, c.retry_failed, c.max_file_mb) == (
        3,
        "L2",
        8,
        True,
        5.0,
    )
    assert c.loader == "defectkit.exporters.runtime:load_bundle"


def _summary():
    from defectkit.apps.batch.job import BatchSummary
    from defectkit.apps.batch.progress import Tally

    return BatchSummary("abc", 3, Tally(inspected=2, rejected=1), 1.0)


def test_a_missing_source_is_one_line_before_a_cluster_starts(tmp_path, capsys):
    bundle = write_fake_bundle(tmp_path / "bundle")
    t0 = time.monotonic()
    assert (
        testing_batch.main(
            [str(bundle), str(tmp_path / "nowhere"), "--store", str(tmp_path / "r.db")]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere: no such folder, list file or glob" in err
    assert time.monotonic() - t0 < 5, "refused before starting Dask"


def test_a_bundle_that_is_not_one_is_refused(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    assert (
        main(["batch", str(tmp_path), str(tmp_path / "images"), "--store", str(tmp_path / "r.db")])
        == 2
    )
    assert "manifest.json" in capsys.readouterr().err


def test_bad_numbers_are_refused(tmp_path, capsys):
    assert main(["batch", "b", "s", "--store", "x", "--chunk-size", "0"]) == 2
    assert "--chunk-size must be at least 1" in capsys.readouterr().err


def test_compare_wants_two_bundles(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "r.db"), "--bundle", "abc"]) == 2
    assert "give --bundle twice" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "r.db"), "--bundle", "a", "--bundle", "b"]) == 2
    assert "no rows of bundle 'a'" in capsys.readouterr().err


def test_both_commands_are_listed_in_the_help(capsys):
    text = build_parser().format_help()
    assert "batch" in text and "compare" in text
