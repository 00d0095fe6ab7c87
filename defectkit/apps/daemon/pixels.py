"""The pixel budget: how many decoded pixels the workers may hold at once.

An image's memory cost follows its pixels, not its file size: a 225 KB PNG of 8900 x
8900 pixels decodes to 240 MB, and the steps after decoding (the maps at the image's
size, the overlay) multiply that. So the daemon bounds what it holds in pixels, read
from each file's header before anything is decoded: one image may not exceed
``--max-image-mp`` (refused with 413 and the reason), and all images being decoded,
inspected and drawn at once may not exceed ``--pixel-budget-mp`` (a worker waits for
its share). Memory is then about ``pixel budget x bytes per pixel`` above the
daemon's base, which ``docs/operations.md`` sizes.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


class PixelBudget:
    """A counting semaphore in pixels, first come first served.

    FIFO so that one large image is not starved by a stream of small ones: a waiter
    takes its share only when it is at the head of the line and the share fits.
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("a pixel budget must be positive")
        self.capacity = int(capacity)
        self.in_use = 0
        self.peak = 0  # most pixels ever held at once (for tests and the benchmark)
        self._line: deque[object] = deque()
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        """Hold ``pixels`` (at most the capacity) for the ``with`` block; waits its turn."""
        pixels = min(int(pixels), self.capacity)
        ticket = object()
        with self._cond:
            self._line.append(ticket)
            while self._line[0] is not ticket or self.in_use + pixels > self.capacity:
                self._cond.wait()
            self._line.popleft()
            self.in_use += pixels
            self.peak = max(self.peak, self.in_use)
            self._cond.notify_all()  # the next in line may fit too
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= pixels
                self._cond.notify_all()


def chunks_within(items: Sequence[tuple[T, int]], capacity: int) -> list[list[tuple[T, int]]]:
    """Split ``(item, pixels)`` pairs, in order, into runs whose pixels fit ``capacity``.

    A batch whose images together exceed the budget is inspected in parts, so a worker
    never waits for more than the budget can ever give.
    """
    runs: list[list[tuple[T, int]]] = []
    total = capacity + 1
    for item, pixels in items:
        if total + pixels > capacity:
            runs.append([])
            total = 0
        runs[-1].append((item, pixels))
        total += pixels
    return runs
