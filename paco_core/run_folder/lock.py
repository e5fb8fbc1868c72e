"""``run.lock``: one trainer writes a run folder at a time; a lock left by a dead process is taken over."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from paco_core.errors import TrainingError
from paco_core.run_folder.layout import LOCK_FILE
from paco_core.run_folder.processes import is_process_alive, process_start_time

logger = logging.getLogger(__name__)


class RunLockedError(TrainingError):
    """Another live process holds the run folder's lock."""


class RunLock:
    """``run.lock`` in a run folder: one trainer at a time.

    :meth:`acquire` creates the lock file exclusively with this process's pid and start
    time. A lock held by a live process (same pid and start time) is refused naming the
    pid; a lock left by a dead process (or by a new process that reused its pid) is
    taken over with a warning. Use as a context manager.
    """

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / LOCK_FILE
        self.held = False

    def holder(self) -> dict[str, Any] | None:
        """The lock file's record (pid, start_time, host, since), or None when unlocked."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {}  # half-written or damaged: nobody can be named
        return data if isinstance(data, dict) else {}

    def acquire(self) -> RunLock:
        """Take the lock.

        Raises:
            RunLockedError: a live process holds it.
            TrainingError: the folder cannot be written.
        """
        record = {
            "pid": os.getpid(),
            "start_time": process_start_time(os.getpid()),
            "host": socket.gethostname(),
            "since": time.time(),
        }
        text = json.dumps(record, sort_keys=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise TrainingError(
                f"cannot create the run folder {str(self.path.parent)!r} ({error.strerror or error}): "
                "choose a writable output_dir that is not a file"
            ) from error
        for _attempt in range(5):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            except OSError as error:
                raise TrainingError(
                    f"cannot write to the run folder {str(self.path.parent)!r} ({error.strerror or error}): "
                    "choose a writable output_dir"
                ) from error
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            self.held = True
            return self
        raise RunLockedError(f"could not take the lock {str(self.path)!r}: other processes keep taking it")

    def _take_over_if_stale(self) -> None:
        holder = self.holder()
        if holder is None:
            return  # released meanwhile: try again
        pid, start_time = holder.get("pid"), holder.get("start_time")
        if not holder:
            # a lock being written right now, or damaged: give a writer a moment
            age = time.time() - self.path.stat().st_mtime if self.path.exists() else 0
            if age < 2:
                time.sleep(0.2)
                return
        elif holder.get("host", socket.gethostname()) != socket.gethostname():
            raise RunLockedError(
                f"run folder {str(self.path.parent)!r} is locked by pid {pid} on host {holder.get('host')!r}; "
                f"wait for it to finish, or delete {str(self.path)!r} if that run is dead"
            )
        elif is_process_alive(pid, start_time):
            raise RunLockedError(
                f"run folder {str(self.path.parent)!r} is in use by another trainer (pid {pid}); "
                "wait for it to finish or stop it, or train into another output_dir"
            )
        logger.warning(
            "taking over the stale lock %s left by pid %s, which is no longer running", self.path, pid
        )
        stale = self.path.with_name(f".{LOCK_FILE}.stale.{os.getpid()}")
        try:
            os.replace(self.path, stale)
        except FileNotFoundError:
            return  # another process took it over first
        # Between reading and renaming, another process may have taken the stale lock over and
        # written its own: if what was moved aside is not the stale record, put it back.
        try:
            moved = json.loads(stale.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            moved = {}
        if holder and moved != holder:
            try:
                os.link(stale, self.path)
            except OSError:
                pass
        os.unlink(stale)

    def release(self) -> None:
        """Remove the lock file if this process holds it."""
        if not self.held:
            return
        self.held = False
        holder = self.holder()
        if holder and holder.get("pid") == os.getpid():
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()
