"""A run's ``checkpoint-<step>`` folders: one checkpoint (its LoRA, trainer state and manifest)
and the run's list of them (newest, intact, pruning)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paco_core.run_folder.layout import (
    CHECKPOINT_PATTERN,
    CHECKPOINT_PREFIX,
    KEPT_FILE,
    LORA_FILE,
    MANIFEST_FILE,
    STATE_FILE,
)
from paco_core.run_folder.manifests import CheckpointDamagedError, verify_manifest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checkpoint:
    """One ``checkpoint-<step>`` folder."""

    step: int
    path: Path

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> Checkpoint:
        """The checkpoint at ``path``; its step comes from the ``checkpoint-<step>`` name (-1 when
        the folder is named otherwise). Whether it is complete is not checked."""
        path = Path(path)
        match = CHECKPOINT_PATTERN.match(path.name)
        return cls(int(match.group(1)) if match else -1, path)

    @property
    def lora_path(self) -> Path:
        """The LoRA file (EMA weights when EMA is on), loadable by PaCo LoRA and ComfyUI."""
        return self.path / LORA_FILE

    @property
    def state_path(self) -> Path:
        return self.path / STATE_FILE

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_FILE

    @property
    def has_manifest(self) -> bool:
        return self.manifest_path.is_file()

    def read_state(self) -> dict[str, Any]:
        """The trainer state JSON (step, config, data order ...).

        Raises:
            CheckpointDamagedError: missing or not valid JSON.
        """
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CheckpointDamagedError(
                f"checkpoint {str(self.path)!r}: {STATE_FILE} is unreadable ({error}); "
                "resume from another checkpoint"
            ) from error
        if not isinstance(data, dict):
            raise CheckpointDamagedError(f"checkpoint {str(self.path)!r}: {STATE_FILE} is not a JSON object")
        return data

    def verify(self) -> None:
        """Check every file against the manifest (see :func:`verify_manifest`).

        A checkpoint written before manifests existed (a state file, no manifest) cannot be
        verified: it passes with a warning.
        """
        if not self.has_manifest and self.state_path.is_file():
            logger.warning("%s was written before checkpoints had manifests: not verified", self.path)
            return
        verify_manifest(self.path)


class RunCheckpoints:
    """The checkpoints part of :class:`~paco_core.run_folder.RunFolder` (its ``path`` is the run folder)."""

    path: Path

    def checkpoint_path(self, step: int) -> Path:
        return self.path / f"{CHECKPOINT_PREFIX}{step}"

    def checkpoints(self) -> list[Checkpoint]:
        """Complete checkpoints (a manifest, or an older version's state file), oldest first.

        The step comes from the folder name, so a damaged state file does not hide or
        break the list; half-written staging folders are not listed.
        """
        if not self.path.is_dir():
            return []
        found = []
        for entry in os.listdir(self.path):
            match = CHECKPOINT_PATTERN.match(entry)
            if not match:
                continue
            folder = self.path / entry
            if (folder / MANIFEST_FILE).is_file() or (folder / STATE_FILE).is_file():
                found.append(Checkpoint(int(match.group(1)), folder))
        return sorted(found, key=lambda checkpoint: checkpoint.step)

    def checkpoint(self, step: int) -> Checkpoint | None:
        """The complete checkpoint of ``step``, or None."""
        return next((c for c in self.checkpoints() if c.step == step), None)

    def latest_checkpoint(self) -> Checkpoint | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def lora_path(self, step: int | None = None) -> Path | None:
        """The LoRA file of checkpoint ``step`` (default: the newest), or None when there is none."""
        checkpoint = self.latest_checkpoint() if step is None else self.checkpoint(step)
        if checkpoint is None or not checkpoint.lora_path.is_file():
            return None
        return checkpoint.lora_path

    def latest_intact_checkpoint(self) -> Checkpoint | None:
        """The newest checkpoint that passes :meth:`Checkpoint.verify`, warning about each
        newer damaged one it passes over; None when no checkpoint is intact."""
        for checkpoint in reversed(self.checkpoints()):
            try:
                checkpoint.verify()
            except CheckpointDamagedError as error:
                logger.warning("skipping a damaged checkpoint: %s", error)
                continue
            return checkpoint
        return None

    def prune_checkpoints(self, keep: int, *, protect: Path | None = None) -> list[Path]:
        """Delete the oldest checkpoints beyond ``keep`` (0 keeps all); returns what was removed.

        Never raises: a checkpoint that cannot be deleted is skipped with a warning.
        ``protect`` (the one just written) is never deleted.
        """
        if keep <= 0:
            return []
        found = [
            c
            for c in self.checkpoints()
            if (protect is None or c.path != Path(protect)) and not (c.path / KEPT_FILE).is_file()
        ]
        excess = max(0, len(found) + (1 if protect is not None else 0) - keep)
        removed = []
        for checkpoint in found[:excess]:
            try:
                shutil.rmtree(checkpoint.path)
            except OSError as error:
                logger.warning(
                    "could not delete the old checkpoint %s (%s); keeping it", checkpoint.path, error
                )
                continue
            removed.append(checkpoint.path)
        return removed

    def staging_path(self, step: int) -> Path:
        """The temporary folder a checkpoint is written into before it is renamed into place."""
        return self.path / f".{CHECKPOINT_PREFIX}{step}.tmp"
