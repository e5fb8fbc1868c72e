"""The run folder: what a training run leaves in its output folder, read and written without torch.

The trainer writes through this package, and the job store, the status nodes and the
routes read through it; importing it loads neither torch nor numpy (standard library
only). One module per part:

    layout.py       the names of the folder's files (config.json, progress.json, checkpoint-<step>/ ...)
    processes.py    whether a process still runs (pid + start time)
    manifests.py    size and sha256 of every checkpoint file, written last, verified on resume
    checkpoints.py  checkpoint-<step> folders: one checkpoint, and the run's list (latest, intact, pruning)
    lock.py         run.lock: one trainer at a time
    metrics.py      metrics.jsonl
    pause.py        the pause protocol: control/pause-<holder>.json (docs/gpu-sharing.md)
    folder.py       RunFolder: the folder as a whole (see docs/runs.md)

Example:
    >>> run = RunFolder("paco-grpo-run")                       # doctest: +SKIP
    >>> run.read_progress()["state"], run.metric_series("rewards/aggregated/mean")  # doctest: +SKIP
    >>> run.latest_checkpoint().lora_path                      # doctest: +SKIP
"""

from __future__ import annotations

from paco_core.run_folder.checkpoints import Checkpoint
from paco_core.run_folder.folder import RunFolder
from paco_core.run_folder.layout import (
    BEST_DIR,
    BEST_INFO_FILE,
    CHECKPOINT_PREFIX,
    CONFIG_FILE,
    CONTROL_DIR,
    KEPT_FILE,
    LOCK_FILE,
    LORA_FILE,
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    METRICS_FILE,
    OWNER_FILE,
    PAUSE_PREFIX,
    PROGRESS_FILE,
    PROGRESS_STATES,
    SAMPLES_DIR,
    STATE_FILE,
    TENSORBOARD_DIR,
)
from paco_core.run_folder.lock import RunLock, RunLockedError
from paco_core.run_folder.manifests import (
    CheckpointDamagedError,
    file_sha256,
    verify_manifest,
    write_manifest,
)
from paco_core.run_folder.processes import is_process_alive, process_start_time

__all__ = [
    "BEST_DIR",
    "BEST_INFO_FILE",
    "CHECKPOINT_PREFIX",
    "CONFIG_FILE",
    "CONTROL_DIR",
    "KEPT_FILE",
    "LOCK_FILE",
    "LORA_FILE",
    "MANIFEST_FILE",
    "MANIFEST_FORMAT",
    "METRICS_FILE",
    "OWNER_FILE",
    "PAUSE_PREFIX",
    "PROGRESS_FILE",
    "PROGRESS_STATES",
    "SAMPLES_DIR",
    "STATE_FILE",
    "TENSORBOARD_DIR",
    "Checkpoint",
    "CheckpointDamagedError",
    "RunFolder",
    "RunLock",
    "RunLockedError",
    "file_sha256",
    "is_process_alive",
    "process_start_time",
    "verify_manifest",
    "write_manifest",
]
