"""Requests to a running trainer ("sample now", "save now") and what it reports back, as files.

They travel like a pause request (docs/gpu-sharing.md): whoever asks writes a file into the
run folder's ``control/`` folder; the trainer looks at its next step boundary, takes the
request (deletes the file), does the work and records the outcome in ``control/done-<kind>.json``.
Standard library only, like :mod:`paco_core.run_folder`. Layout::

    control/sample-now.json          {"kind": "sample", "rows": [...] | "instruction": "...", "since": ...}
    control/save-now.json            {"kind": "save", "since": ...}
    control/done-sample.json         {"kind": "sample", "step": 12, "path": "samples/requested/step-000012.png", ...}
    control/done-save.json           {"kind": "save", "step": 12, "path": "checkpoint-12", ...}
    samples/requested/step-000012.png  a "sample now" grid (the held-out prompts, or the typed prompt)
    prompt_rewards.json              the latest rewards of each training and held-out prompt

A request never changes the run's result: the sample uses its own seeded generator and the
EMA/live weights as they are; a save writes the same checkpoint a due save would.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from paco_core.errors import InputError
from paco_core.io import atomic_write_json

CONTROL_DIR = "control"
REQUEST_KINDS = ("sample", "save")
REQUESTED_SAMPLES_DIR = "requested"
PROMPT_REWARDS_FILE = "prompt_rewards.json"
MAX_PROMPT_CHARS = 4000
_REQUESTED_NAME = re.compile(r"^step-(\d+)\.png$")


def request_path(run_dir: str | os.PathLike, kind: str) -> Path:
    """``control/<kind>-now.json`` of a run folder."""
    if kind not in REQUEST_KINDS:
        raise InputError(f"request kind {kind!r} should be one of {', '.join(REQUEST_KINDS)}")
    return Path(run_dir) / CONTROL_DIR / f"{kind}-now.json"


def done_path(run_dir: str | os.PathLike, kind: str) -> Path:
    """``control/done-<kind>.json``: the outcome of the last request of this kind."""
    request_path(run_dir, kind)  # checks the kind
    return Path(run_dir) / CONTROL_DIR / f"done-{kind}.json"


def write_request(run_dir: str | os.PathLike, kind: str, **fields: Any) -> dict[str, Any]:
    """Ask the trainer of ``run_dir`` to do ``kind`` at its next step boundary; returns the request.

    Asking again before the trainer took the first request replaces it (one sample, one save).
    """
    record = {"kind": kind, **fields, "since": time.time()}
    path = request_path(run_dir, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, record)
    return record


def pending_request(run_dir: str | os.PathLike, kind: str) -> dict[str, Any] | None:
    """The request not yet taken by the trainer, or None."""
    return _read_object(request_path(run_dir, kind))


def take_requests(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The pending requests (the trainer's side): read and deleted, save before sample."""
    taken = []
    for kind in ("save", "sample"):
        path = request_path(run_dir, kind)
        record = _read_object(path)
        if record is None:
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue  # taken meanwhile
        taken.append({**record, "kind": kind})
    return taken


def write_done(run_dir: str | os.PathLike, kind: str, **fields: Any) -> dict[str, Any]:
    """Record the outcome of a request (the trainer's side)."""
    record = {"kind": kind, **fields, "done_at": time.time()}
    path = done_path(run_dir, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, record)
    return record


def read_done(run_dir: str | os.PathLike, kind: str) -> dict[str, Any] | None:
    """The outcome of the last request of ``kind``, or None."""
    return _read_object(done_path(run_dir, kind))


def requested_sample_path(run_dir: str | os.PathLike, step: int) -> Path:
    """``samples/requested/step-000012.png``: a "sample now" grid of ``step``."""
    return Path(run_dir) / "samples" / REQUESTED_SAMPLES_DIR / f"step-{step:06d}.png"


def requested_samples(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(step, path)`` of every "sample now" grid, oldest first."""
    folder = Path(run_dir) / "samples" / REQUESTED_SAMPLES_DIR
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = [(int(m.group(1)), folder / name) for name in names if (m := _REQUESTED_NAME.match(name))]
    return sorted(found)


def write_prompt_rewards(run_dir: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Rewrite ``prompt_rewards.json`` (the trainer's side), atomically."""
    return atomic_write_json(Path(run_dir) / PROMPT_REWARDS_FILE, record)


def read_prompt_rewards(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``{"train": {index: entry}, "eval": {index: entry}}`` with each entry ``{"prompt",
    "step", "rewards": {name: {"mean", "std", "n"}}}``; empty parts before the first step."""
    data = _read_object(Path(run_dir) / PROMPT_REWARDS_FILE) or {}
    return {part: data.get(part) if isinstance(data.get(part), dict) else {} for part in ("train", "eval")}


def _read_object(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}  # being written or damaged: still there
    return data if isinstance(data, dict) else {}
