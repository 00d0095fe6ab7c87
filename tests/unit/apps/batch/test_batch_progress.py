"""Progress: files/s and ETA count inspected files only; a line now and then in a log."""

import io

from defectkit.apps.batch.progress import LOG_INTERVAL_S, Progress, Tally


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_log_line_gives_rate_and_eta_of_the_files_really_inspected():
    clock, out = Clock(), io.StringIO()
    progress = Progress(1000, stream=out, bar=False, clock=clock)
    clock.now = 10.0
    line = progress.line(Tally(skipped=500, inspected=90, rejected=10))
    assert "600/1,000 files (60.0 %)" in line and "10.0 files/s" in line
    assert "ETA 0m40s" in line and "500 already done" in line and "10 rejected" in line


def test_without_a_terminal_a_line_comes_every_interval():
    clock, out = Clock(), io.StringIO()
    progress = Progress(10, stream=out, bar=False, clock=clock)
    progress.update(Tally(inspected=1))
    assert out.getvalue() == ""
    clock.now = LOG_INTERVAL_S + 1
    progress.update(Tally(inspected=2))
    assert out.getvalue().count("\n") == 1 and "2/10 files" in out.getvalue()


def test_the_bar_takes_skipped_files_off_its_total():
    out = io.StringIO()
    progress = Progress(100, stream=out, bar=True)
    progress.update(Tally(skipped=60))
    progress.update(Tally(skipped=60, inspected=10))
    assert (progress._tqdm.total, progress._tqdm.n) == (40, 10)
    progress.close()
    assert "10/40" in out.getvalue() and "60 already done" in out.getvalue()
