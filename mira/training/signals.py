"""Signals during training: SIGTERM (a scheduler's pre-emption, ``timeout``) and SIGINT (Ctrl-C)
ask the loop for a checkpoint and a clean exit after the current step instead of killing it; a
second Ctrl-C aborts. :class:`StopRequest` installs those handlers around
:meth:`mira.training.trainer.Trainer.fit` and holds the request that every rank votes on in
each step; :func:`ignore_sigint` keeps data-loader workers out of it.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from typing import Any, Iterator

LOGGER = logging.getLogger("mira.training")


def ignore_sigint(worker_id: int) -> None:
    """DataLoader worker init: Ctrl-C reaches the whole process group, but only the training
    process should react (checkpoint, then exit); a worker dying on it would break the step."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class StopRequest:
    """A stop asked for by SIGTERM/SIGINT; ``requested`` stays set once a signal came."""

    def __init__(self) -> None:
        self.requested = False

    @contextlib.contextmanager
    def handlers(self) -> Iterator[None]:
        """SIGTERM/SIGINT ask for a checkpoint and a clean exit after the current step (a second SIGINT aborts).

        Installed in the main thread only (Python delivers signals there); the previous handlers
        come back on exit.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        first_signal_time: list[float] = []

        def request_stop(signum: int, frame: Any) -> None:
            now = time.monotonic()
            # A second Ctrl-C aborts; a copy forwarded by a wrapper (timeout, srun) within 2 s does not.
            if self.requested and signum == signal.SIGINT and now - first_signal_time[0] > 2.0:
                raise KeyboardInterrupt
            if not self.requested:
                first_signal_time.append(now)
                LOGGER.warning("received %s: will save a checkpoint after this step", signal.Signals(signum).name)
            self.requested = True

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
