"""SIGTERM as a stop request: the loop finishes its step, saves a checkpoint and returns."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable, Iterator

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def stop_on_sigterm(request_stop: Callable[[], None]) -> Iterator[None]:
    """Within the block, SIGTERM calls ``request_stop`` instead of killing the process.

    Outside the main thread (a host running the trainer in a thread) signals cannot be
    caught; the host stops the run through the cancel hook instead. The previous handler
    is restored on exit.
    """

    def handle(signum, frame) -> None:
        logger.warning("received signal %d: finishing this step, then saving a checkpoint", signum)
        request_stop()

    try:
        previous = signal.signal(signal.SIGTERM, handle)
    except ValueError:
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
