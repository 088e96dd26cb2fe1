"""The trainer's background batch maker (mira.training.prefetch): same batches, same order,
errors surface at the right item, an early stop ends the thread."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from mira.training.prefetch import prefetched


def _batches(count: int, made: list[int] | None = None):
    for index in range(count):
        if made is not None:
            made.append(index)
        yield {"index": index, "image": torch.full((2, 3), float(index)), "nested": [torch.tensor(index)]}


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mira-prefetch"]


@pytest.mark.parametrize("depth", [1, 3])
def test_same_items_in_the_same_order(depth: int) -> None:
    items = list(prefetched(_batches(7), "cpu", depth=depth))
    assert [item["index"] for item in items] == list(range(7))
    assert all(torch.equal(item["image"], torch.full((2, 3), float(i))) for i, item in enumerate(items))


def test_makes_at_most_depth_items_ahead() -> None:
    made: list[int] = []
    stream = prefetched(_batches(10, made), "cpu", depth=2)
    first = next(stream)
    time.sleep(0.3)  # let the producer run as far as it may
    assert first["index"] == 0
    # item 0 was taken, items 1-2 wait in the queue, item 3 is made and blocked on the full queue
    assert len(made) <= 4
    stream.close()


def test_error_is_raised_at_its_item() -> None:
    def failing():
        yield {"index": 0}
        raise OSError("render 1 failed")

    stream = prefetched(failing(), "cpu")
    assert next(stream)["index"] == 0
    with pytest.raises(OSError, match="render 1 failed"):
        next(stream)


def test_break_stops_the_thread() -> None:
    before = len(_prefetch_threads())
    for item in prefetched(_batches(1000), "cpu", depth=1):
        if item["index"] == 2:
            break
    deadline = time.monotonic() + 5.0
    while len(_prefetch_threads()) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_prefetch_threads()) == before


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth"):
        next(prefetched(_batches(1), "cpu", depth=0))
