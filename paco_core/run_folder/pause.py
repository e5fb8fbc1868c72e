"""The pause protocol (GPU yield, docs/gpu-sharing.md): ``control/pause-<holder>.json`` request
files, one per holder; the trainer of a run with ``gpu_policy: yield`` pauses at its next step
boundary while any request is pending."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from paco_core.errors import InputError
from paco_core.io import atomic_write_json
from paco_core.run_folder.layout import CONTROL_DIR, PAUSE_PREFIX
from paco_core.run_folder.processes import is_process_alive, process_start_time

_HOLDER_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class PauseRequests:
    """The pause part of :class:`~paco_core.run_folder.RunFolder` (its ``path`` is the run folder)."""

    path: Path

    @property
    def control_dir(self) -> Path:
        return self.path / CONTROL_DIR

    def pause_path(self, holder: str = "user") -> Path:
        """``control/pause-<holder>.json``: the pause request of one holder (comfyui, user, ...)."""
        if not isinstance(holder, str) or not _HOLDER_NAME.match(holder):
            raise InputError(
                f"pause holder {holder!r} should be 1-64 letters, digits, '_', '-' or '.', e.g. 'comfyui'"
            )
        return self.control_dir / f"{PAUSE_PREFIX}{holder}.json"

    def request_pause(
        self, reason: str = "", *, holder: str = "user", while_alive: bool = False
    ) -> dict[str, Any]:
        """Ask the trainer of this folder to pause at its next step boundary and free the GPU.

        Each holder (``comfyui`` while it runs a prompt, ``user`` for a pause button) has its
        own request file, so one holder's release never ends another's pause; the trainer
        pauses while any request exists. Only a run with ``gpu_policy: yield`` honours it.
        Asking again refreshes the request (its time). Returns the request written.

        ``while_alive``: the request lapses when this process ends (pid and start time are
        recorded), so a ComfyUI that crashes mid-prompt never leaves a job paused for good.
        Without it (a CLI call that exits at once) the request stays until released.
        """
        record = {"holder": holder, "reason": str(reason), "pid": os.getpid(), "since": time.time()}
        if while_alive:
            record.update(while_alive=True, pid_start_time=process_start_time(os.getpid()))
        path = self.pause_path(holder)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, record)
        return record

    def release_pause(self, holder: str | None = "user") -> bool:
        """Withdraw ``holder``'s pause request (None: every holder's); returns whether one existed."""
        paths = [self.pause_path(holder)] if holder is not None else [p for p, _ in self._pause_files()]
        removed = False
        for path in paths:
            try:
                path.unlink()
                removed = True
            except FileNotFoundError:
                pass
        return removed

    def release_lapsed_pauses(self) -> list[str]:
        """Delete the ``while_alive`` requests whose process has ended; returns their holders."""
        lapsed = []
        for path, holder in self._pause_files():
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            if (
                isinstance(record, dict)
                and record.get("while_alive")
                and not is_process_alive(record.get("pid"), record.get("pid_start_time"))
            ):
                try:
                    path.unlink()
                    lapsed.append(holder)
                except FileNotFoundError:
                    pass
        return lapsed

    def pause_requests(self) -> list[dict[str, Any]]:
        """The pending pause requests (holder, reason, pid, since), oldest first; a
        ``while_alive`` request whose process has ended is not pending (its file is left)."""
        requests = []
        for path, holder in self._pause_files():
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                continue  # released meanwhile
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                record = {}  # being written or damaged: still a request
            if not isinstance(record, dict):
                record = {}
            if record.get("while_alive") and not is_process_alive(
                record.get("pid"), record.get("pid_start_time")
            ):
                continue  # its requester is gone
            record.setdefault("holder", holder)
            if not isinstance(record.get("since"), (int, float)):
                try:
                    record["since"] = path.stat().st_mtime
                except OSError:
                    record["since"] = time.time()
            requests.append(record)
        return sorted(requests, key=lambda record: record["since"])

    def pause_requested(self) -> bool:
        """Whether any pause request is pending (cheap: a directory listing, and reading the
        request files only when there are some)."""
        return bool(self._pause_files()) and bool(self.pause_requests())

    def _pause_files(self) -> list[tuple[Path, str]]:
        try:
            names = os.listdir(self.control_dir)
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = []
        for name in sorted(names):
            if name.startswith(PAUSE_PREFIX) and name.endswith(".json"):
                found.append((self.control_dir / name, name[len(PAUSE_PREFIX) : -len(".json")]))
        return found
