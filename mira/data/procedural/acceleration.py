"""``torch.compile`` of the hot pure functions (SDF, marching steps) on CUDA, eager elsewhere.

Sphere tracing evaluates the SDF of every part at every ray ~100 times per frame; eagerly that
is ~100 small kernels per evaluation, compiled it is one or two fused ones (about 10x faster
on an H100). Shapes change from call to call (rays are compacted as they finish), so functions
are compiled with dynamic shapes. ``MIRA_PROCEDURAL_COMPILE=0`` turns compilation off; on the
CPU (tests, small datasets) functions always run eagerly; a compilation error falls back to
the eager function with a warning, once. Compiled calls are serialised by one lock: the
trainer makes the next batch in a background thread (``mira.training.prefetch``) while
validation may render in the main thread, and Dynamo's compilation is not thread-safe.
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Callable

import torch

ENVIRONMENT_SWITCH = "MIRA_PROCEDURAL_COMPILE"
_compiled: dict[Callable, Callable] = {}
_failed: set[Callable] = set()
_lock = threading.RLock()


def compile_enabled(device: torch.device) -> bool:
    """Whether functions run compiled on ``device`` (CUDA, unless switched off)."""
    return device.type == "cuda" and os.environ.get(ENVIRONMENT_SWITCH, "1") != "0"


def run(function: Callable, device: torch.device, *args, **kwargs):
    """``function(*args, **kwargs)``, compiled (dynamic shapes) where :func:`compile_enabled`."""
    if not compile_enabled(device) or function in _failed:
        return function(*args, **kwargs)
    with _lock:
        return _run_compiled(function, *args, **kwargs)


def _run_compiled(function: Callable, *args, **kwargs):
    if function not in _compiled:
        _compiled[function] = torch.compile(function, dynamic=True)
    try:
        return _compiled[function](*args, **kwargs)
    except Exception as error:  # a compiler problem must not stop data generation
        warnings.warn(f"mira.data.procedural: torch.compile of {function.__name__} failed "
                      f"({type(error).__name__}: {error}); running it eagerly (slower)")
        _failed.add(function)
        return function(*args, **kwargs)
