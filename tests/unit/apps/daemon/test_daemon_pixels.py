"""Memory bounded by pixels: a per-image cap refused before decoding, a budget shared by
the workers (the OOM cases of issue 17, with a budget of a few thousand pixels)."""

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from defectkit.apps.daemon import worker
from defectkit.apps.daemon.api import create_app
from defectkit.apps.daemon.pixels import PixelBudget, chunks_within
from defectkit.apps.daemon.store import ResultQuery
from defectkit.testing.daemon import load_fake_bundle, png_bytes
from defectkit.testing.processes import wait_until

PNG = {"Content-Type": "image/png"}


def tiff32(side: int, value: int = 30000) -> bytes:
    """A 32-bit integer TIFF (mode I): the heaviest decode path, as in the issue."""
    buf = io.BytesIO()
    Image.fromarray(np.full((side, side), value, np.int32)).save(buf, "TIFF")
    return buf.getvalue()


def test_the_budget_never_holds_more_than_its_capacity_and_serves_in_order():
    budget = PixelBudget(100)
    order, inside = [], []

    def use(name: str, pixels: int) -> None:
        with budget.hold(pixels):
            order.append(name)
            inside.append(budget.in_use)
            time.sleep(0.05)

    with budget.hold(60):  # a big holder arrives first; the rest queue behind it
        threads = [threading.Thread(target=use, args=(n, p)) for n, p in
                   (("big", 90), ("small1", 10), ("small2", 10))]  # fmt: skip
        for t in threads:
            t.start()
            time.sleep(0.02)
    for t in threads:
        t.join(5)
    assert order[0] == "big", "a large request is not overtaken by small ones"
    assert budget.peak <= 100 and max(inside) <= 100 and budget.in_use == 0


def test_a_hold_larger_than_the_budget_takes_the_whole_budget():
    budget = PixelBudget(10)
    with budget.hold(1000):
        assert budget.in_use == 10


def test_batches_are_split_into_runs_that_fit():
    items = [("a", 40), ("b", 40), ("c", 40), ("d", 100)]
    runs = chunks_within(items, 100)
    assert [[name for name, _ in run] for run in runs] == [["a", "b"], ["c"], ["d"]]


def test_an_image_over_the_pixel_cap_is_refused_before_decoding(make_service, watch, monkeypatch):
    service = make_service(watch=watch, max_image_mp=0.01, pixel_budget_mp=0.01)

    def no_decoding(*args, **kwargs):
        raise AssertionError("an image over the cap must not be decoded")

    monkeypatch.setattr(worker, "read_image", no_decoding)
    with TestClient(create_app(service)) as client:
        r = client.post("/v1/inspect", content=png_bytes(50, size=200), headers=PNG)
    assert r.status_code == 413
    message = r.json()["error"]
    assert "200x200" in message and "--max-image-mp" in message and "0.01 MP" in message
    assert service.metrics.rejected.value(source="http", reason="too_many_pixels") == 1

    (watch / "huge.png").write_bytes(png_bytes(50, size=200))
    wait_until(lambda: (watch / "rejected" / "huge.png.reason.txt").exists(), 10, message="quarantine")
    assert "--max-image-mp" in (watch / "rejected" / "huge.png.reason.txt").read_text()
    (row,) = service.store.query(ResultQuery())
    assert row["status"] == "rejected" and "200x200" in row["error"]


def concurrency_tracking_loader(record: dict):
    """The test double, counting how many ``inspect`` calls run at once."""
    lock = threading.Lock()

    def load(path, device="CPU", streams=1):
        bundle = load_fake_bundle(path, device, streams)
        inspect = bundle.inspect

        def tracked(images, paths=None):
            with lock:
                record["now"] += 1
                record["max"] = max(record["max"], record["now"])
            try:
                time.sleep(0.3)  # long enough that two images would overlap if allowed
                return inspect(images, paths)
            finally:
                with lock:
                    record["now"] -= 1

        bundle.inspect = tracked
        return bundle

    return load


def test_two_large_images_at_once_are_inspected_one_after_the_other(make_service):
    record = {"now": 0, "max": 0}
    # 40,000-pixel images, a budget of 60,000: like two 79 MP TIFFs under a 100 MP budget.
    service = make_service(
        workers=2, max_image_mp=0.05, pixel_budget_mp=0.06,
        loader=concurrency_tracking_loader(record),
    )  # fmt: skip
    record["max"] = 0  # the warm-up inference does not count
    with TestClient(create_app(service)) as client, ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(
            lambda v: client.post("/v1/inspect", content=tiff32(200, v), headers={"Content-Type": "image/tiff"}),
            (30000, 40000),
        ))  # fmt: skip
        metrics = client.get("/metrics").text
    assert [a.status_code for a in answers] == [200, 200]
    assert record["max"] == 1, "the second image waited for the first one's pixels"
    assert service.pixels.peak == 40_000 and service.pixels.in_use == 0
    assert "defectkit_pixel_budget 60000" in metrics


def test_small_images_still_run_side_by_side(make_service):
    record = {"now": 0, "max": 0}
    service = make_service(workers=2, loader=concurrency_tracking_loader(record))
    record["max"] = 0
    with TestClient(create_app(service)) as client, ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(
            lambda v: client.post("/v1/inspect", content=png_bytes(v, size=64), headers=PNG), (10, 20)
        ))  # fmt: skip
    assert [a.status_code for a in answers] == [200, 200]
    assert record["max"] == 2 and service.pixels.peak == 2 * 64 * 64


@pytest.mark.parametrize(
    "overrides, message",
    [({"max_image_mp": 0}, "--max-image-mp"),
     ({"max_image_mp": 50, "pixel_budget_mp": 40}, "--pixel-budget-mp")],
)  # fmt: skip
def test_a_budget_that_cannot_hold_one_image_is_refused(make_service, overrides, message):
    from defectkit.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        make_service(**overrides)
