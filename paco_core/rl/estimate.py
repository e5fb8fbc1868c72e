"""Time and memory of a run before it starts: one measured probe plus documented scaling.

The probe trains one iteration of **one prompt** (its group: ``group_size`` images in
``group_size / batch_size`` micro-batches, with rollouts, rewards, advantages and the policy
update, exactly as the run will) into a temporary folder on the run's device, after loading
the pipeline and the reward models as the run will. It measures the probe's step time
(``time/step_s``), its rollout time and the peak memory (GPU memory on CUDA, else the
process's resident memory). Then (docs/jobs.md, "Estimate before you start"):

- seconds per iteration = probe step time x ``prompts_per_iteration`` / processes
  (every prompt's group costs the same; processes share the groups), plus the held-out
  evaluation spread over ``eval_every`` iterations: probe rollout time x eval rows x
  ``eval_group_size / group_size`` x eval steps / training steps x (eval / train resolution)^2;
- total = seconds per iteration x iterations left; loading the models is not included;
- peak memory = the probe's (the micro-batch is the run's, so the activations are too).

The run does not fit when the probe runs out of memory, or when its peak is above
:data:`FIT_SHARE` of the device's memory; the estimate then names the settings that
reduce memory, from the cheapest: gradient checkpointing, judge offload, a judge server,
the one-GPU preset.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from paco_core.config import config_from_dict, config_to_dict
from paco_core.rl.config import TrainConfig
from paco_core.rl.presets import preset_dict

logger = logging.getLogger(__name__)

FIT_SHARE = 0.92
"""A peak above this share of the device's memory does not fit (allocator slack, fragmentation)."""
ONE_GPU_PRESET = "t2is-flux-1gpu"


@dataclass
class Estimate:
    device: str
    s_per_iteration: float | None
    total_s: float | None
    iterations: int
    peak_memory_gb: float | None
    memory_gb: float | None
    """The device's memory (GPU memory on CUDA, else the machine's RAM); None when unknown."""
    fits: bool
    suggestions: list[str] = field(default_factory=list)
    probe: dict[str, Any] = field(default_factory=dict)
    """What was measured: step_s, rollout_s, eval_s (per evaluation), setup_s, prompts, group_size."""
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        """Two or three lines for a terminal or a node's status."""
        if self.s_per_iteration is None:
            lines = [f"estimate on {self.device}: the probe did not finish ({self.message})"]
        else:
            lines = [
                f"estimate on {self.device}: {self.s_per_iteration:.3g} s/iteration, "
                f"{format_duration(self.total_s)} for {self.iterations} iterations (models' loading not included)"
            ]
        if self.peak_memory_gb is not None:
            limit = f" of {self.memory_gb:.3g} GB" if self.memory_gb else ""
            lines.append(f"peak memory {self.peak_memory_gb:.3g} GB{limit}")
        if not self.fits:
            lines.append("does not fit in memory; try: " + "; ".join(self.suggestions or ["a larger device"]))
        return "\n".join(lines)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_run(config: TrainConfig, *, num_processes: int = 1, done_steps: int = 0) -> Estimate:
    """Probe ``config`` on its device and scale up (see the module docstring).

    Args:
        num_processes: the processes the run will use (the groups are shared among them).
        done_steps: iterations already done (a resumed or continued run).
    """
    from paco_core.errors import PaCoError
    from paco_core.rl.trainer import GrpoTrainer

    iterations = max(0, config.num_iterations - done_steps)
    with tempfile.TemporaryDirectory(prefix="paco-estimate-") as folder:
        probe_config = probe_of(config, folder)
        trainer = GrpoTrainer(probe_config)
        started = time.perf_counter()
        try:
            trainer.train()
        except Exception as error:  # out of memory (torch.OutOfMemoryError), or another failure
            device = str(getattr(getattr(trainer, "accelerator", None), "device", config.model.device))
            if _is_out_of_memory(error):
                return Estimate(
                    device=device,
                    s_per_iteration=None,
                    total_s=None,
                    iterations=iterations,
                    peak_memory_gb=None,
                    memory_gb=device_memory_gb(device),
                    fits=False,
                    suggestions=memory_suggestions(config),
                    message=f"out of memory: {str(error).splitlines()[0][:200]}",
                )
            if isinstance(error, PaCoError):
                raise
            raise
        setup_s = time.perf_counter() - started
        metrics = trainer.run_folder.read_metrics()
        last = next((m for m in reversed(metrics) if "time/step_s" in m), {})
        eval_rows = len(trainer.eval_rows)
        device = str(trainer.accelerator.device)
    step_s = float(last.get("time/step_s") or 0.0)
    rollout_s = float(last.get("time/rollout_s") or step_s)
    eval_s = evaluation_seconds(config, rollout_s, eval_rows)
    per_iteration = step_s * config.sampling.prompts_per_iteration / max(1, num_processes)
    if config.eval_every and eval_rows:
        per_iteration += eval_s / config.eval_every
    peak = last.get("memory/peak_gb")
    memory = device_memory_gb(device)
    fits = not (peak is not None and memory is not None and peak > FIT_SHARE * memory)
    return Estimate(
        device=device,
        s_per_iteration=per_iteration,
        total_s=per_iteration * iterations,
        iterations=iterations,
        peak_memory_gb=float(peak) if peak is not None else None,
        memory_gb=memory,
        fits=fits,
        suggestions=[] if fits else memory_suggestions(config),
        probe={
            "step_s": step_s,
            "rollout_s": rollout_s,
            "eval_s": eval_s,
            "setup_s": setup_s - step_s,
            "prompts": 1,
            "group_size": config.sampling.group_size,
            "eval_rows": eval_rows,
        },
    )


def probe_of(config: TrainConfig, output_dir: str) -> TrainConfig:
    """The probe's config: one iteration of one prompt, no evaluation, no TensorBoard, one checkpoint."""
    data = config_to_dict(config)
    data["sampling"] = {**data["sampling"], "prompts_per_iteration": 1}
    data.update(
        num_iterations=1, eval_every=0, output_dir=output_dir, use_tensorboard=False, checkpoint_every=1
    )
    data["gpu_policy"] = "exclusive"
    return config_from_dict(TrainConfig, data)


def evaluation_seconds(config: TrainConfig, rollout_s: float, eval_rows: int) -> float:
    """One held-out evaluation, scaled from the probe's rollout time (see the module docstring)."""
    sampling = config.sampling
    steps = (sampling.eval_num_steps or sampling.num_steps) / max(1, sampling.num_steps)
    pixels = (sampling.eval_resolution / max(1, sampling.train_resolution)) ** 2
    return rollout_s * eval_rows * config.eval_group_size / max(1, sampling.group_size) * steps * pixels


def device_memory_gb(device: str) -> float | None:
    """The device's memory in GB: the GPU's on CUDA, else the machine's RAM; None when unknown."""
    if str(device).startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_properties(torch.device(device)).total_memory / 1024**3
        return None
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError, AttributeError):
        return None


def memory_suggestions(config: TrainConfig) -> list[str]:
    """Settings that reduce the run's memory, not yet on, cheapest first."""
    found = []
    if not config.optim.gradient_checkpointing:
        found.append("optim.gradient_checkpointing=true (recomputes activations: less memory, ~30% slower)")
    rewards = config.rewards
    if rewards.judge_path and not rewards.judge_offload:
        found.append("rewards.judge_offload=true (the judge on the GPU only while it scores)")
    if rewards.judge_path:
        found.append(
            "a judge server: rewards.judge_url=http://HOST:PORT/v1 (`paco serve-judge` on another GPU)"
        )
    if config.model.kind == _one_gpu_preset_kind() and config.sampling.batch_size > 1:
        found.append(f"the one-GPU preset: --preset {ONE_GPU_PRESET} (smaller micro-batches)")
    elif config.sampling.batch_size > 1:
        found.append("sampling.batch_size=1 (smaller micro-batches)")
    return found


def _one_gpu_preset_kind() -> str:
    """The kind the one-GPU preset trains."""
    return preset_dict(ONE_GPU_PRESET)["model"]["kind"]


def _is_out_of_memory(error: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    return isinstance(error, oom) or "out of memory" in str(error).lower()
