"""Helpers shared by several test modules: subprocess environments, free ports, tiny
training configs, and cleaning up background jobs."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def offline_env(tmp_path: Path, *import_folders: Path) -> dict[str, str]:
    """This process's environment for a `paco` subprocess: ``import_folders`` and the
    repository first on PYTHONPATH, the hub offline, one CPU thread, HF_HOME under ``tmp_path``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, import_folders), str(REPO), env.get("PYTHONPATH", "")])
    env.update(
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1", HF_HOME=str(tmp_path / "hf")
    )
    return env


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tiny_flux_run(model: Path, reward: str = "toy_rewards:mean_brightness", **extra) -> dict:
    """A `paco train` config (as a dict) that trains the tiny FLUX in seconds on the CPU:
    32x32, 2 sampling steps, G=2, one reward, no evaluation; ``extra`` replaces top-level keys."""
    data = {
        "model": {"kind": "flux", "path": str(model), "device": "cpu"},
        "lora": {"rank": 4, "alpha": 8},
        "sampling": {"num_steps": 2, "noise_steps": [0], "train_resolution": 32, "eval_resolution": 32,
                     "group_size": 2, "batch_size": 2, "prompts_per_iteration": 1, "max_sequence_length": 16},
        "data": {"train_file": str(FIXTURES / "rl" / "sets.jsonl")},
        "rewards": {"rewards": [{"name": reward}], "aggregation": "weighted_sum"},
        "optim": {"lr": 1e-2, "clip_range": 0.2},
        "eval_every": 0,
    }  # fmt: skip
    data.update(extra)
    return data


def merge_sections(data: dict, changes: dict) -> dict:
    """``data`` with ``changes`` applied: a dict value updates that section, any other replaces the key."""
    for key, value in changes.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    return data


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys of the leaves of a nested config dict (a list, e.g. of rewards, is one leaf)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def kill_job_processes(store) -> None:
    """SIGKILL the process group of every live trainer and supervisor of a JobStore's jobs."""
    from paco_core.run_folder import is_process_alive

    for job in store.list():
        for pid, start in ((job.pid, job.pid_start), (job.supervisor_pid, job.supervisor_start)):
            if pid and is_process_alive(pid, start):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
