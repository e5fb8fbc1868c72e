"""The names of what a training run leaves in its run folder (see docs/runs.md)::

config.json             the run's resolved config (written at start)
progress.json           state, step, total, pid, last checkpoint (rewritten atomically)
metrics.jsonl           one JSON object per line, each with its "step"
samples/step-000010.png the evaluation sample grid of step 10
checkpoint-<step>/      lora.safetensors, trainer_state.json, ... and manifest.json (last)
tb/                     TensorBoard events (optional)
run.lock                pid and start time of the trainer writing the folder
best/                   lora.safetensors + best.json: the LoRA of the best evaluation so far
control/pause-<holder>.json  a request to pause (GPU yield), one file per holder (see docs/gpu-sharing.md)
job.json                the job that owns the folder (``paco jobs``)
"""

from __future__ import annotations

import re

CONFIG_FILE = "config.json"
PROGRESS_FILE = "progress.json"
METRICS_FILE = "metrics.jsonl"
SAMPLES_DIR = "samples"
TENSORBOARD_DIR = "tb"
LOCK_FILE = "run.lock"
CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"
"""Inside a checkpoint: the trainer state; its presence marks a checkpoint of an older version complete."""
LORA_FILE = "lora.safetensors"
MANIFEST_FILE = "manifest.json"
"""Inside a checkpoint: size and sha256 of every other file, written last."""
MANIFEST_FORMAT = 1
KEPT_FILE = "kept.json"
"""Inside a checkpoint, written after its manifest: saved on request ("save now"), never pruned."""

PROGRESS_STATES = ("starting", "running", "paused", "finished", "stopped", "failed")
"""Values of ``progress.json``'s ``state``; finished, stopped and failed are final; paused
(yielding the GPU, see :meth:`RunFolder.request_pause`) is a live state like running."""
BEST_DIR = "best"
BEST_INFO_FILE = "best.json"
"""Inside ``best/``: metric, mode, value and step of the best evaluation (next to its LoRA)."""
CONTROL_DIR = "control"
OWNER_FILE = "job.json"
"""The job that owns the folder (``paco jobs``): only it reads its checkpoints, exports or deletes them."""
PAUSE_PREFIX = "pause-"

CHECKPOINT_PATTERN = re.compile(rf"^{re.escape(CHECKPOINT_PREFIX)}(\d+)$")
"""A checkpoint folder's name; group 1 is its step."""
SAMPLE_PATTERN = re.compile(r"^step-(\d+)\.png$")
"""A sample grid's file name; group 1 is its step."""
