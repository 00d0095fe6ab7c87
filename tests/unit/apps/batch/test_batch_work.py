"""The Dask task, run in this process: one outcome per file, in order, whatever the file."""

import pytest

from defectkit.apps.batch import work
from defectkit.apps.batch.work import UNREAD_PREFIX, ChunkJob, inspect_chunk, prepare_worker
from defectkit.core.files import sha256_bytes
from defectkit.errors import BundleError
from defectkit.testing.batch import FAKE_LOADER
from defectkit.testing.daemon import load_fake_bundle, png_bytes, write_fake_bundle


@pytest.fixture
def bundle(tmp_path):
    # brighter than 0.9 makes the double raise: an inference failure of one image
    return write_fake_bundle(tmp_path / "bundle", raise_above=0.9)


@pytest.fixture
def job(bundle):
    def make(locations, **kw):
        bundle_id = load_fake_bundle(bundle).id
        return ChunkJob(
            str(bundle), bundle_id, tuple(map(str, locations)), loader=FAKE_LOADER, **kw
        )

    return make


def test_every_file_gets_one_outcome_in_order(tmp_path, job):
    files = {"dark.png": png_bytes(20), "bright.png": png_bytes(200), "junk.png": b"junk",
             "white.png": png_bytes(250), "big.png": png_bytes(100, size=256)}  # fmt: skip
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    locations = [
        tmp_path / n
        for n in ("dark.png", "gone.png", "bright.png", "junk.png", "white.png", "big.png")
    ]
    result = inspect_chunk(job(locations, max_bytes=len(files["big.png"]) - 1))
    out = {o.location.rsplit("/", 1)[-1]: o for o in result.outcomes}
    assert [o.location for o in result.outcomes] == [str(p) for p in locations]
    assert (out["dark.png"].status, out["dark.png"].verdict) == ("ok", "good")
    assert (out["bright.png"].verdict, out["bright.png"].label) == ("defect", "scratch")
    assert (
        out["dark.png"].sha256 == sha256_bytes(files["dark.png"])
        and "path" not in out["dark.png"].result
    )
    assert out["dark.png"].result["caption"] and out["dark.png"].score == pytest.approx(
        20 / 255, abs=0.01
    )
    gone = out["gone.png"]
    assert (
        gone.status == "rejected"
        and "cannot read" in gone.error
        and gone.sha256.startswith(UNREAD_PREFIX)
    )
    assert out["junk.png"].status == "rejected" and out["junk.png"].sha256 == sha256_bytes(b"junk")
    assert "<bytes>" not in out["junk.png"].error
    assert out["white.png"].status == "error" and "too bright" in out["white.png"].error, "isolated"
    assert out["big.png"].status == "rejected" and "--max-file-mb" in out["big.png"].error
    assert out["big.png"].sha256 == sha256_bytes(files["big.png"]), "hashed although not kept"
    assert result.timings.inspect > 0 and result.timings.read > 0


def test_the_bundle_is_loaded_once_per_process(tmp_path, job, monkeypatch):
    (tmp_path / "a.png").write_bytes(png_bytes(20))
    monkeypatch.setattr(work, "_cached", None)
    first = inspect_chunk(job([tmp_path / "a.png"]))
    second = inspect_chunk(job([tmp_path / "a.png"]))
    assert first.timings.load > 0 and second.timings.load == 0
    info = prepare_worker(job([]))
    assert info.load_seconds < first.timings.load + 1 and info.engine == "FakeBundle"


def test_a_worker_with_another_bundle_refuses_to_work(tmp_path, job, monkeypatch):
    monkeypatch.setattr(work, "_cached", None)
    wrong = job([]).__class__(**{**vars(job([])), "bundle_id": "000000000000"})
    with pytest.raises(BundleError, match="copy the same bundle folder to every worker"):
        inspect_chunk(wrong)
