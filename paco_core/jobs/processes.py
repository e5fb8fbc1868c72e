"""Process identity that survives pid reuse: a pid plus the process's start time.

A pid alone can name another process after the job's process died; the pair (pid,
start time) cannot. On Linux the start time is field 22 of ``/proc/<pid>/stat`` (clock
ticks since boot); elsewhere it is ``ps -o lstart=``. A zombie (exited, not yet reaped)
counts as dead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def process_start_time(pid: int | None) -> str | None:
    """A token identifying when ``pid`` started, or None if no such (live) process."""
    if not pid or pid <= 0:
        return None
    if sys.platform.startswith("linux"):
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
                text = handle.read()
        except OSError:
            return None
        fields = text[text.rfind(")") + 2 :].split()  # the name in parentheses may hold spaces
        if not fields or fields[0] in ("Z", "X"):
            return None
        return fields[19]
    try:
        out = subprocess.run(["ps", "-o", "stat=,lstart=", "-p", str(pid)], capture_output=True, text=True)
    except OSError:
        return None
    text = out.stdout.strip()
    if out.returncode != 0 or not text or text.startswith("Z"):
        return None
    return text.split(None, 1)[1] if " " in text else text


def process_alive(pid: int | None, start: str | None) -> bool:
    """True when ``pid`` is alive and is the process that started at ``start``."""
    return bool(pid) and start is not None and process_start_time(pid) == start


def signal_group(pid: int, start: str | None, signum: int = signal.SIGTERM) -> bool:
    """Send ``signum`` to the process group led by ``pid`` if it is still that process.

    Returns:
        True when the signal was sent.
    """
    if not process_alive(pid, start):
        return False
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        os.kill(pid, signum)
    return True
