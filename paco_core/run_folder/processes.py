"""Whether a process still runs: pid and start time, so a reused pid is not mistaken for the old process.

The run lock, ``progress.json`` and ``while_alive`` pause requests record both; the job
store uses them to tell a live trainer from a dead one.
"""

from __future__ import annotations

import os
from pathlib import Path


def process_start_time(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22).

    Returns None when there is no such process, or where ``/proc`` does not exist. Two
    processes that had the same pid at different times have different start times.
    """
    try:
        text = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ")"
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):
        return None


def _process_state(pid: int) -> str | None:
    try:
        text = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return fields[0] if fields else None


def is_process_alive(pid: int | None, start_time: int | None = None) -> bool:
    """Whether process ``pid`` runs and is the same process that had ``start_time``.

    A zombie (exited, not yet reaped) counts as dead. With ``start_time`` None only the
    pid is checked. Where ``/proc`` is missing (macOS, Windows) the start time cannot be
    read and only the pid's existence is checked.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if Path("/proc/self/stat").is_file():
        if _process_state(pid) in (None, "Z", "X"):
            return False
        return start_time is None or process_start_time(pid) == start_time
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    except OSError:
        return False
    return True
