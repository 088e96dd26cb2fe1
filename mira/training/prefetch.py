"""Make the next training batch while the current step runs.

Procedural data (``mira.data.procedural``) is rendered on the training GPU inside the step's
process: sampling and normalising the objects, then sphere tracing their views. Done in line,
the GPU waits for Python between the data kernels and the model's kernels, so this module
runs the batch iterator one batch ahead in a background thread, on its own CUDA stream. The
model's kernels and the data kernels then overlap, and the thread's Python work (kernel
launches, numpy sampling) runs while the main thread waits on the GPU.

The batches are the same batches in the same order as without prefetching: the procedural
samples are a pure function of ``(seed, epoch, index)``, and the sampler is consumed by the
one background thread in its own order. A library was not used because the few that do this
(e.g. the CUDA prefetchers of training frameworks) prefetch host-to-device copies of batches
made in worker processes; here the batch is made on the device itself.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Iterable, Iterator

import torch

_DONE = object()
_POLL_SECONDS = 0.1


class _Failure:
    """An exception raised by the producer, carried to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _tensors_in(item: Any) -> Iterator[torch.Tensor]:
    """Every tensor inside a (nested) dict / list / tuple batch."""
    if isinstance(item, torch.Tensor):
        yield item
    elif isinstance(item, dict):
        for value in item.values():
            yield from _tensors_in(value)
    elif isinstance(item, (list, tuple)):
        for value in item:
            yield from _tensors_in(value)


def _put(slots: queue.Queue, value: Any, stop: threading.Event) -> bool:
    """Put ``value`` unless the consumer asked to stop; returns whether it was put."""
    while not stop.is_set():
        try:
            slots.put(value, timeout=_POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False


def _produce(iterable: Iterable, device: torch.device, slots: queue.Queue, stop: threading.Event) -> None:
    """Thread body: iterate ``iterable`` (on a side stream on CUDA) into ``slots``."""
    try:
        if device.type == "cuda":
            torch.cuda.set_device(device)
            stream = torch.cuda.Stream(device)
            with torch.cuda.stream(stream):
                for item in iterable:
                    ready = torch.cuda.Event()
                    ready.record(stream)
                    if not _put(slots, (item, ready), stop):
                        return
        else:
            for item in iterable:
                if not _put(slots, (item, None), stop):
                    return
        _put(slots, _DONE, stop)
    except BaseException as error:  # carried to the consumer, which re-raises it
        _put(slots, _Failure(error), stop)


def prefetched(iterable: Iterable, device: torch.device | str, depth: int = 1) -> Iterator[Any]:
    """Yield the items of ``iterable``, each made ``depth`` items ahead in a background thread.

    On CUDA the items are made on a side stream; before an item is yielded, the current stream
    waits for it and every tensor in it is marked as used by the current stream (so the caching
    allocator does not hand its memory back to the side stream too early). An exception in the
    iterable is raised here, at the item where it happened. Closing the generator (``break`` in
    the caller's loop) stops the thread after the item it is making.

    Args:
        iterable: e.g. a ``DataLoader`` whose dataset renders batches on ``device``.
        device: the device the items' tensors live on.
        depth: how many items may wait, made, for the consumer (>= 1).
    """
    if depth < 1:
        raise ValueError(f"prefetch depth must be >= 1, got {depth}")
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    worker = threading.Thread(target=_produce, args=(iterable, device, slots, stop),
                              name="mira-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            value = slots.get()
            if value is _DONE:
                return
            if isinstance(value, _Failure):
                raise value.error
            item, ready = value
            if ready is not None:
                current = torch.cuda.current_stream(device)
                current.wait_event(ready)
                for tensor in _tensors_in(item):
                    if tensor.is_cuda:
                        tensor.record_stream(current)
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:  # free a producer blocked on a full queue
                slots.get_nowait()
            except queue.Empty:
                pass
            worker.join(timeout=_POLL_SECONDS)
