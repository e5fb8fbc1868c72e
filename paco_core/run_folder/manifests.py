"""Checkpoint manifests: the size and sha256 of every file of a checkpoint, written last and
checked on resume, so a truncated or corrupted checkpoint never resumes silently."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from paco_core.errors import TrainingError
from paco_core.io import atomic_write_json
from paco_core.run_folder.layout import MANIFEST_FILE, MANIFEST_FORMAT

_HASH_CHUNK = 1 << 20


class CheckpointDamagedError(TrainingError):
    """A checkpoint's files do not match its manifest (truncated, corrupted or missing file)."""


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: str | os.PathLike) -> Path:
    """Write ``manifest.json`` with the size and sha256 of every other file in ``folder``
    (recursively, paths relative and with ``/``), atomically. Call it after the last file."""
    folder = Path(folder)
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST_FILE and not path.name.endswith(".tmp"):
            files[path.relative_to(folder).as_posix()] = {
                "size": path.stat().st_size,
                "sha256": file_sha256(path),
            }
    return atomic_write_json(folder / MANIFEST_FILE, {"format": MANIFEST_FORMAT, "files": files})


def verify_manifest(folder: str | os.PathLike) -> None:
    """Check that every file listed in ``folder``'s manifest exists with its size and sha256.

    Raises:
        CheckpointDamagedError: no manifest, an unreadable manifest, or a file that is
            missing, has another size (truncated) or another checksum (corrupted); the
            message names the file.
    """
    folder = Path(folder)
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise CheckpointDamagedError(
            f"checkpoint {str(folder)!r} has no {MANIFEST_FILE}: it is incomplete or was written "
            "before checkpoints had manifests"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = manifest["files"]
        entries = [(name, int(entry["size"]), str(entry["sha256"])) for name, entry in files.items()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:  # ValueError: bad JSON too
        raise CheckpointDamagedError(
            f"checkpoint {str(folder)!r}: {MANIFEST_FILE} is unreadable ({type(error).__name__}: {error})"
        ) from error
    for name, size, sha256 in entries:
        path = folder / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise CheckpointDamagedError(
                f"checkpoint {str(folder)!r}: {MANIFEST_FILE} lists a path outside it: {name!r}"
            )
        if not path.is_file():
            raise CheckpointDamagedError(f"checkpoint {str(folder)!r}: {name} is missing")
        actual = path.stat().st_size
        if actual != size:
            raise CheckpointDamagedError(
                f"checkpoint {str(folder)!r}: {name} has {actual} bytes, the manifest says {size} (truncated?)"
            )
        if file_sha256(path) != sha256:
            raise CheckpointDamagedError(
                f"checkpoint {str(folder)!r}: {name} does not match its sha256 in the manifest (corrupted)"
            )
