"""Checkpoints: the LoRA file plus everything an exact resume needs, written atomically.

``<output_dir>/checkpoint-<step>/`` holds:

- ``lora.safetensors``: the (EMA) LoRA, written by the generation engine's saver, so our
  loader and ComfyUI's LoraLoader both take it;
- ``policy.safetensors``: the live trainable weights (not the EMA);
- ``ema.safetensors``: the EMA shadow (when EMA is on);
- ``optimizer.safetensors``: the optimizer's tensors; its scalars are in the JSON;
- ``rng.safetensors``: torch CPU / CUDA RNG states and numpy's key;
- ``trainer_state.json``: step, config, data order, optimizer groups, python/numpy RNG,
  reward statistics, package version.

- ``manifest.json``: size and sha256 of every other file, written last
  (:func:`paco_core.run_folder.manifests.write_manifest`); resume verifies it.

Nothing is pickled. The folder is written under a temporary name and renamed into place,
so a crash never leaves a half-written checkpoint. Listing, verifying and pruning
checkpoints is torch-free and lives in :mod:`paco_core.run_folder`.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paco_core import __version__
from paco_core.errors import TrainingError
from paco_core.io import atomic_save_safetensors, atomic_write_json
from paco_core.run_folder import Checkpoint, RunFolder
from paco_core.run_folder.layout import LORA_FILE, MANIFEST_FILE, STATE_FILE
from paco_core.run_folder.manifests import CheckpointDamagedError, write_manifest

logger = logging.getLogger(__name__)


@dataclass
class LoadedCheckpoint:
    path: Path
    state: dict[str, Any]
    policy: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None
    optimizer: dict[str, Any]
    rng: dict[str, torch.Tensor]

    @property
    def step(self) -> int:
        return int(self.state["step"])


# --- optimizer state <-> tensors + JSON ---------------------------------------------------


def optimizer_to_tensors(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into a flat tensor dict and a JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state_dict["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, entry in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entry)
    groups = [dict(group) for group in meta["param_groups"]]
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    return {"state": state, "param_groups": groups}


# --- RNG states -----------------------------------------------------------------------------


def capture_rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, JSON) of the torch, CUDA, numpy and python global RNG states."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = state
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    python_version, python_state, gauss = random.getstate()
    meta = {
        "numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": python_version, "state": list(python_state), "gauss": gauss},
    }
    return tensors, meta


def restore_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda_states = [tensors[key] for key in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])
    numpy_meta = meta["numpy"]
    np.random.set_state(
        (
            numpy_meta["kind"],
            tensors["numpy"].numpy().astype(np.uint32),
            numpy_meta["pos"],
            numpy_meta["has_gauss"],
            numpy_meta["cached"],
        )
    )
    python_meta = meta["python"]
    random.setstate((python_meta["version"], tuple(python_meta["state"]), python_meta["gauss"]))


# --- save / find / load / prune ---------------------------------------------------------------


def save_checkpoint(
    output_dir: str | os.PathLike,
    step: int,
    *,
    write_lora: Callable[[Path], Any],
    policy: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor] | None,
    optimizer_state: dict[str, Any],
    state: dict[str, Any],
) -> Path:
    """Write ``checkpoint-<step>`` atomically and return its path.

    Args:
        write_lora: called with the LoRA file path to write (the EMA weights swapped in).
        policy: the live trainable weights by name.
        ema: the EMA shadow by name, or None.
        optimizer_state: ``optimizer.state_dict()``.
        state: JSON-able trainer state (config, data order, reward statistics ...).
    """
    run = RunFolder(output_dir)
    final = run.checkpoint_path(step)
    staging = run.staging_path(step)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        write_lora(staging / LORA_FILE)
        atomic_save_safetensors(staging / "policy.safetensors", policy)
        if ema is not None:
            atomic_save_safetensors(staging / "ema.safetensors", ema)
        optimizer_tensors, optimizer_meta = optimizer_to_tensors(optimizer_state)
        atomic_save_safetensors(staging / "optimizer.safetensors", optimizer_tensors)
        rng_tensors, rng_meta = capture_rng_state()
        atomic_save_safetensors(staging / "rng.safetensors", rng_tensors)
        full_state = {
            **state,
            "step": step,
            "optimizer": optimizer_meta,
            "rng": rng_meta,
            "paco_version": __version__,
        }
        atomic_write_json(staging / STATE_FILE, full_state)
        write_manifest(staging)  # last: it vouches for every file above
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def resolve_resume(output_dir: str | os.PathLike, resume: str) -> Path:
    """The verified checkpoint folder for ``--resume``: a folder path, or ``latest`` in ``output_dir``.

    ``latest`` takes the newest checkpoint whose files match its manifest; newer damaged
    ones are passed over with a warning. A named folder must be intact.

    Raises:
        TrainingError: no such checkpoint, or none intact.
        CheckpointDamagedError: the named checkpoint is damaged (the message names the file).
    """
    if resume == "latest":
        run = RunFolder(output_dir)
        found = run.checkpoints()
        if not found:
            raise TrainingError(f"--resume latest: no complete checkpoint in {str(output_dir)!r}")
        intact = run.latest_intact_checkpoint()
        if intact is None:
            raise TrainingError(
                f"--resume latest: every checkpoint in {str(output_dir)!r} is damaged "
                f"({', '.join(c.path.name for c in found)}; see the warnings above); start over with --overwrite"
            )
        if intact.step != found[-1].step:
            logger.warning(
                "resuming from %s, the newest intact checkpoint (newer ones are damaged)", intact.path.name
            )
        return intact.path
    path = Path(resume)
    if not ((path / STATE_FILE).is_file() or (path / MANIFEST_FILE).is_file()):
        raise TrainingError(
            f"--resume {resume!r} is not a complete checkpoint folder (no {STATE_FILE}); "
            "give a checkpoint-<step> folder or `latest`"
        )
    Checkpoint.from_path(path).verify()
    return path


def load_checkpoint(path: str | os.PathLike) -> LoadedCheckpoint:
    """Read a checkpoint folder written by :func:`save_checkpoint`.

    Raises:
        CheckpointDamagedError: a file is missing or unreadable (named in the message).
    """
    path = Path(path)
    state = Checkpoint.from_path(path).read_state()
    ema_file = path / "ema.safetensors"
    try:
        optimizer = optimizer_from_tensors(_load_tensors(path / "optimizer.safetensors"), state["optimizer"])
        rng = _load_tensors(path / "rng.safetensors")
        int(state["step"]), state["rng"]["numpy"], state["sampler"]
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointDamagedError(
            f"checkpoint {str(path)!r}: {STATE_FILE} lacks or garbles {error}; resume from another checkpoint"
        ) from error
    return LoadedCheckpoint(
        path=path,
        state=state,
        policy=_load_tensors(path / "policy.safetensors"),
        ema=_load_tensors(ema_file) if ema_file.is_file() else None,
        optimizer=optimizer,
        rng=rng,
    )


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except (OSError, SafetensorError, ValueError, RuntimeError) as error:
        raise CheckpointDamagedError(
            f"checkpoint {str(path.parent)!r}: {path.name} is unreadable ({error}); resume from another checkpoint"
        ) from error


def prune_checkpoints(output_dir: str | os.PathLike, keep: int, *, protect: Path | None = None) -> list[Path]:
    """Delete the oldest checkpoints beyond ``keep`` (0 keeps all); never raises (see
    :meth:`RunFolder.prune_checkpoints`). Returns what was removed."""
    return RunFolder(output_dir).prune_checkpoints(keep, protect=protect)
