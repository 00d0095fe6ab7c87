"""The bounded queue: back-pressure, the hot folder's share, draining on close."""

import threading
import time

import pytest

from defectkit.apps.daemon.errors import QueueClosed, QueueFull
from defectkit.apps.daemon.jobs import FOLDER, HTTP, Job, JobQueue


def _job(source=HTTP, data=b"x"):
    return Job(source=source, name=None, data=data)


def test_offer_refuses_when_full_and_when_closed():
    q = JobQueue(2)
    q.offer(_job())
    q.offer(_job())
    with pytest.raises(QueueFull):
        q.offer(_job())
    assert len(q) == 2
    q.close()
    with pytest.raises(QueueClosed):
        q.offer(_job())


def test_take_batches_only_what_is_queued():
    q = JobQueue(10)
    jobs = [_job(data=bytes([i])) for i in range(3)]
    for j in jobs:
        q.offer(j)
    assert q.take(2, timeout=0.1) == jobs[:2]
    assert q.take(8, timeout=0.1) == jobs[2:]
    assert q.take(8, timeout=0.01) == []


def test_the_hot_folder_never_takes_more_than_its_share():
    q = JobQueue(4)  # share: 2
    assert q.reserve_folder_slot(0.01) and q.reserve_folder_slot(0.01)
    assert not q.reserve_folder_slot(0.05)
    q.put_reserved(_job(FOLDER))
    q.put_reserved(_job(FOLDER))
    q.offer(_job())
    q.offer(_job())  # HTTP still has its half
    with pytest.raises(QueueFull):
        q.offer(_job())
    q.take(1, 0.1)
    assert not q.reserve_folder_slot(0.05), "slots are held until the job is finished"
    q.release_folder_slot()
    assert q.reserve_folder_slot(0.05)


def test_a_reservation_waits_for_a_finished_job():
    q = JobQueue(2)  # share: 1
    assert q.reserve_folder_slot(0.01)
    threading.Timer(0.1, q.release_folder_slot).start()
    t0 = time.monotonic()
    assert q.reserve_folder_slot(2.0)
    assert 0.05 < time.monotonic() - t0 < 1.5


def test_close_drains_queued_and_reserved_jobs_before_workers_stop():
    q = JobQueue(4)
    q.offer(_job())
    assert q.reserve_folder_slot(0.01)
    q.close()
    assert not q.reserve_folder_slot(0.01), "nothing new after close"
    assert len(q.take(4, 0.01)) == 1
    assert q.take(4, 0.01) == [], "a reserved slot is still coming: keep the worker"
    q.put_reserved(_job(FOLDER))
    assert len(q.take(4, 0.01)) == 1
    assert q.take(4, 0.01) is None, "closed and drained: the worker exits"


def test_job_hash_is_the_content_sha256():
    import hashlib

    assert _job(data=b"abc").sha256 == hashlib.sha256(b"abc").hexdigest()
