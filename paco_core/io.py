"""Atomic file writes: a reader (or a crash) never sees a half-written file.

Written files get the mode a plain ``open(path, "w")`` would give them (0666 less the
process umask: 0644 under the usual umask 022), not the 0600 of the temporary file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file over ``path``.

    The temporary file lives in the destination folder so the rename is atomic on
    POSIX and Windows; it is removed if ``write`` raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def current_umask() -> int:
    """The process umask: from /proc on Linux (no change, so safe beside other threads),
    elsewhere by setting it and putting it back at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_output_folder(path: str | os.PathLike, *, flag: str = "--out") -> Path:
    """Raise InputError unless ``path`` is (or can become) a folder this process can write
    into; creates it. Called before any model loads, so a wrong --out fails in a second.

    Args:
        path: the output folder.
        flag: how the user named it, for the message ("--out", "output_dir").
    """
    from paco_core.errors import InputError

    path = Path(path).expanduser()
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    if not existing.is_dir():
        where = "" if existing == path else f" cannot be made: {existing}"
        raise InputError(f"{flag} {path}{where} is a file; give a folder (it is created when missing).")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".paco-write-check.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise InputError(
            f"cannot write into {flag} {path}: {error.strerror or error}. Give a folder on a writable disk "
            "where you have write permission."
        ) from error
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> Path:
    """Write JSON with sorted keys (stable diffs, byte-identical reruns)."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True) + "\n")


def atomic_save_safetensors(
    path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None
) -> Path:
    """Save a dict of torch tensors as safetensors, atomically."""
    from safetensors.torch import save_file

    tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
