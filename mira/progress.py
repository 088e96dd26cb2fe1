"""Progress bars that are quiet where no one watches them.

Every long loop in MIRA shows a ``tqdm`` bar on a terminal; when the output goes to a file or a pipe
(a batch job, ``nohup``, CI) the bars are hidden -- ``tqdm(disable=None)`` -- and the long jobs
(training) log a line with the step, the rate and the time left instead.
"""

from __future__ import annotations

import sys
from typing import TextIO


def on_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default: stderr, where tqdm writes) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def bar_disabled(enabled: bool) -> bool | None:
    """tqdm's ``disable`` for a bar the caller wants (``enabled``): None hides it off a terminal."""
    return None if enabled else True


def format_eta(seconds: float) -> str:
    """``"1 h 02 min"``, ``"4 min 05 s"`` or ``"12 s"`` for a non-negative duration."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"
