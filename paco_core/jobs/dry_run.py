"""The estimate of a training config in a separate process (PaCo Train LoRA's ``dry_run``).

ComfyUI must not load a second pipeline into its own process, so the node runs
``python -m paco_core.cli jobs submit --config F --dry-run --json`` (which probes one prompt's
group on the run's device, see :mod:`paco_core.rl.estimate`) and reads its answer. Nothing
is queued.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from paco_core.errors import InputError
from paco_core.jobs.runner import _with_package_root

DRY_RUN_TIMEOUT_S = 3600.0


def estimate_in_subprocess(
    config: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    cwd: str | os.PathLike,
    timeout: float = DRY_RUN_TIMEOUT_S,
) -> dict[str, Any]:
    """The estimate (``Estimate.to_dict()`` plus ``summary``) of ``config``.

    Raises:
        InputError: the config does not validate, or the probe failed (the last line of its error).
    """
    with tempfile.TemporaryDirectory(prefix="paco-dry-run-") as folder:
        path = Path(folder) / "run.json"
        path.write_text(json.dumps(dict(config)), encoding="utf-8")
        child_env = {**env, "PYTHONPATH": _with_package_root(env.get("PYTHONPATH", ""))}
        try:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "paco_core.cli",
                    "jobs",
                    "submit",
                    "--config",
                    str(path),
                    "--dry-run",
                    "--json",
                    "--summary",
                ],
                capture_output=True,
                text=True,
                env=child_env,
                cwd=str(cwd),
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise InputError(f"the estimate did not finish within {timeout:g} s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise InputError(f"the estimate failed: {lines[-1] if lines else f'exit code {done.returncode}'}")
    return json.loads(done.stdout)
