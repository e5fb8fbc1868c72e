"""What requests may hold of the server: the limits (``ServerLimits``), the bytes of bodies in
flight (``ByteBudget``), the judge handed out in arrival order (``FairLock``), and freed memory
given back to the system at once."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from paco_core.errors import InputError
from paco_core.reward.judge_server.chat_requests import DEFAULT_MAX_IMAGE_PIXELS, RequestError


@dataclass(frozen=True)
class ServerLimits:
    """What one request may ask of the server.

    Attributes:
        max_body_bytes: the largest request body (two 1024x1024 PNGs in base64 take ~8 MiB).
        max_image_pixels: the most pixels (width x height) of one image, checked from the
            image header before it is decoded (decompression bombs are refused unread).
        max_tokens: the largest ``max_tokens`` accepted (longer asks are refused with 400).
        generation_seconds: the longest a generated answer (``max_tokens > 1``) may run;
            it stops there and answers what it has.
        read_timeout: seconds the server waits for the next bytes of a request (a body
            shorter than its ``Content-Length`` or an idle connection is dropped then).
        busy_wait: seconds a request waits for the judge before it is answered 503.
        max_waiting: requests waiting for the judge at once; more are answered 503 at once.
        max_bytes_in_flight: request bodies held at once, in bytes (default: 4 x
            ``max_body_bytes``); a request whose body does not fit waits up to ``busy_wait``,
            then gets 503. With images decoded only while holding the judge, the server's
            memory is bounded by this and the image limit, not by the number of connections.
    """

    max_body_bytes: int = 32 * 1024 * 1024
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_tokens: int = 512
    generation_seconds: float = 60.0
    read_timeout: float = 10.0
    busy_wait: float = 10.0
    max_waiting: int = 64
    max_bytes_in_flight: int | None = None

    def __post_init__(self) -> None:
        if self.max_bytes_in_flight is None and isinstance(self.max_body_bytes, int):
            object.__setattr__(self, "max_bytes_in_flight", 4 * self.max_body_bytes)
        for name in (
            "max_body_bytes",
            "max_image_pixels",
            "max_tokens",
            "max_waiting",
            "max_bytes_in_flight",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} should be a whole number >= 1, got {value!r}.")
        for name in ("generation_seconds", "read_timeout", "busy_wait"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InputError(f"{name} should be a positive number of seconds, got {value!r}.")
        if self.max_bytes_in_flight < self.max_body_bytes:
            raise InputError(
                f"max_bytes_in_flight ({self.max_bytes_in_flight}) should be at least max_body_bytes "
                f"({self.max_body_bytes}), or no request of the largest size could ever be read."
            )


class ByteBudget:
    """A count of bytes shared by the requests in flight: ``acquire(n)`` waits until ``n``
    more fit under ``total`` (or the timeout passes), ``release(n)`` gives them back."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._changed = threading.Condition()

    def acquire(self, size: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.used + size > self.total:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            self.used += size
            return True

    def release(self, size: int) -> None:
        with self._changed:
            self.used -= size
            self._changed.notify_all()


class FairLock:
    """A lock handed to its waiters in arrival order (``threading.Lock`` lets a newcomer
    overtake, so under load one request could wait far longer than the others)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Event] = deque()
        self._held = False

    def acquire(self, timeout: float = -1) -> bool:
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(None if timeout < 0 else timeout):
            return True
        with self._mutex:
            if turn.is_set():  # handed over while the wait timed out
                return True
            self._waiters.remove(turn)
            return False

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().set()  # the lock passes straight to the next in line
            else:
                self._held = False


def busy_error(reason: str) -> RequestError:
    return RequestError(f"the judge is busy ({reason}); retry shortly.", status=503, code="server_busy")


MMAP_THRESHOLD_BYTES = 1024 * 1024


def return_freed_memory_promptly() -> bool:
    """Make this process give large freed buffers back to the system at once (glibc only).

    glibc raises its mmap threshold after each large free (up to 32 MiB), after which request
    bodies and decoded images come from heap arenas that keep their memory once freed: a
    server that has seen 16 concurrent large requests stays large. A fixed 1 MiB threshold
    maps every larger buffer on its own and unmaps it when freed. For ``paco serve-judge``
    (the process is the server); returns False where it does not apply.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    m_mmap_threshold = -3  # from malloc.h
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD_BYTES))
