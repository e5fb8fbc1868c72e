"""The parts of the GPU suite (``bench/gpu_suite.py``), one function each.

Each part runs in its own process (``python -m bench.gpu_suite --part NAME``), builds what
it measures (random weights with the real dimensions on the meta device, materialised on
the GPU, or the tiny test models with ``--tiny``), and returns its figures; the runner
records the peak memory, the environment and the time. The CUDA paths time only after
``torch.cuda.synchronize()``, run in bf16 with PyTorch's SDPA attention, and read the
peak from the allocator (``torch.cuda.max_memory_allocated`` after
``reset_peak_memory_stats``). With ``--tiny`` the same functions run on the same code paths
with the tiny models (and fp32 on the CPU), which is what keeps this file from rotting
while no GPU is at hand (tests/test_gpu_suite.py).

Parts reuse the other bench scripts: ``judge_prefix_sharing.bench_size``,
``gpu_yield.measure``, ``comfy_files_vs_folder.compare`` and
``paco_core.testing.real_size``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import operator
import os
import platform
import resource
import shutil
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from paco_core.families import FLUX, FLUX_KONTEXT, QWEN_IMAGE_EDIT

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "rl"
T5_XXL_BF16_BYTES = 9.5e9
"""T5-XXL's weights in bf16 (arithmetic, docs/scaling.md): the suite's FLUX keeps one T5 layer."""

GRID_PROMPT = (
    "FOUR-PANEL Images with a 2x2 grid layout depicting a red fox in a snowy forest. All images share the same "
    "watercolor style. [TOP]-[LEFT]:The fox sits on a log. [TOP]-[RIGHT]:The fox leaps over a stream. "
    "[BOTTOM]-[LEFT]:The fox sleeps under a pine. [BOTTOM]-[RIGHT]:The fox watches the moon."
)
BRIGHTNESS = "bench.gpu_parts:brightness"


class PartSkipped(Exception):
    """Raised by a part that cannot run in this build or on this device; the message says why."""


class FirstWindowDone(Exception):
    """Stops an update at its first optimizer step (the policy is still the rollout's)."""


@dataclass
class PartContext:
    """What a part is asked to do: the device, tiny or real dimensions, quick or full, a scratch folder."""

    device: str
    tiny: bool
    quick: bool
    work: Path
    peak: PeakMemory = field(init=False)

    def __post_init__(self):
        self.peak = PeakMemory(self.device)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.cuda else torch.float32

    def figure(self, name: str, value: Any, unit: str = "", goal: tuple[str, Any] | None = None) -> dict:
        """One row of the table; ``goal`` is ``(operator, target)``, judged on real dimensions only."""
        entry: dict[str, Any] = {"figure": name, "value": plain(value), "unit": unit}
        if goal is not None:
            op, target = goal
            target_text = ("yes" if target else "no") if isinstance(target, bool) else f"{target:g}"
            entry["goal"] = f"{op} {target_text} {unit}".strip()
            judged = not self.tiny and entry["value"] is not None
            entry["passed"] = bool(COMPARISONS[op](entry["value"], target)) if judged else None
        return entry


COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "<": operator.lt, ">": operator.gt,
}  # fmt: skip


def plain(value: Any) -> Any:
    """A JSON-ready value (numpy scalars become Python's; floats keep 4 significant digits, NaN is None)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    value = float(value)
    return float(f"{value:.4g}") if np.isfinite(value) else None


class PeakMemory:
    """The part's peak memory: the allocator's peak on CUDA (reset at the start), the process's
    peak resident memory on the CPU."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.device = device
        self.max_bytes = 0

    def reset(self) -> None:
        """Start a new window of ``torch.cuda.max_memory_allocated`` (the part's peak keeps the old one)."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
            self.read()
            torch.cuda.reset_peak_memory_stats(self.device)

    def read(self) -> int:
        """The peak in bytes since the last reset (CUDA) or of the process (CPU)."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
            current = torch.cuda.max_memory_allocated(self.device)
        else:
            current = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        self.max_bytes = max(self.max_bytes, current)
        return current

    def report(self) -> dict:
        self.read()
        kind = "torch.cuda.max_memory_allocated" if self.cuda else "CPU peak RSS of the part's process"
        return {"gib": round(self.max_bytes / 2**30, 2), "kind": kind}


def synchronize(ctx: PartContext) -> None:
    if ctx.cuda:
        torch.cuda.synchronize(ctx.device)


def environment(device: str) -> dict:
    """The device's name and memory and the library versions, for the table's heading."""
    info: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda}
    for package in ("diffusers", "transformers", "peft", "accelerate"):
        try:
            info[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            info[package] = "not installed"
    if device.startswith("cuda"):
        properties = torch.cuda.get_device_properties(device)
        info["device"] = properties.name
        info["device_memory_gib"] = round(properties.total_memory / 2**30, 1)
        info["cudnn"] = torch.backends.cudnn.version()
    else:
        threads = torch.get_num_threads()
        info["device"] = f"CPU ({platform.machine()}, {threads} torch thread{'' if threads == 1 else 's'})"
    return info


# --------------------------------------------------------------------------- models


def tiny_model(name: str) -> Path:
    from paco_core.testing import build_tiny_model, default_cache_dir

    return build_tiny_model(name, default_cache_dir())


def flux_pipeline(
    ctx: PartContext,
    kind: str = FLUX.kind,
    *,
    num_layers: int | None = None,
    num_single_layers: int | None = None,
):
    """FLUX (kind "flux" or "flux-kontext"): FLUX.1-dev's transformer with random weights
    (fewer blocks when asked), or the tiny model with ``--tiny``."""
    if ctx.tiny:
        from paco_core.models.pipelines import clear_pipeline_cache, load_pipeline

        loaded = load_pipeline(tiny_model(kind), dtype=ctx.dtype, device=ctx.device)
        clear_pipeline_cache()  # the trainer adds its LoRA to this pipe: no other user may hold it
        return loaded
    from paco_core.testing.real_size import random_flux_pipeline

    loaded = random_flux_pipeline(
        tiny_model(FLUX.kind),
        ctx.device,
        ctx.dtype,
        kind=kind,
        num_layers=num_layers,
        num_single_layers=num_single_layers,
    )
    synchronize(ctx)
    return loaded


def qwen_image_edit_pipeline(ctx: PartContext):
    """Qwen-Image-Edit: Qwen-Image's transformer with random weights, or the tiny model with ``--tiny``."""
    if ctx.tiny:
        from paco_core.models.pipelines import clear_pipeline_cache, load_pipeline

        loaded = load_pipeline(tiny_model(QWEN_IMAGE_EDIT.kind), dtype=ctx.dtype, device=ctx.device)
        clear_pipeline_cache()
        return loaded
    from paco_core.testing.real_size import random_qwen_image_edit_pipeline

    loaded = random_qwen_image_edit_pipeline(tiny_model(QWEN_IMAGE_EDIT.kind), ctx.device, ctx.dtype)
    synchronize(ctx)
    return loaded


def judge_bench_args(ctx: PartContext, *extra: str) -> argparse.Namespace:
    """``bench/judge_throughput.py``'s arguments: the 7B-dims judge in bf16, or the tiny judge."""
    from bench import judge_prefix_sharing

    argv = ["--device", ctx.device, *(["--panel", "64"] if ctx.tiny else ["--real-dims"]), *extra]
    return judge_prefix_sharing.base.parse_args(argv)


def bench_judge(ctx: PartContext):
    """A ``LocalJudge``: random weights with Qwen2.5-VL-7B's dimensions, or the tiny judge."""
    from bench import judge_prefix_sharing

    judge, _side, _device_name = judge_prefix_sharing.base.open_bench_judge(judge_bench_args(ctx))
    return judge


def brightness(images, prompts, metadata):
    """Mean pixel value in [0, 1]: a reward that needs no model."""
    return [float(np.asarray(image.convert("L"), dtype=np.float64).mean() / 255.0) for image in images]


def brightness_rewards():
    from paco_core.rl.config import RewardSpec
    from paco_core.rl.rewards import RewardSet

    return RewardSet([RewardSpec(BRIGHTNESS)], {BRIGHTNESS: brightness})


def grid_prompt_file(ctx: PartContext) -> Path:
    path = ctx.work / "t2is-prompt.jsonl"
    path.write_text(
        json.dumps({"prompt": GRID_PROMPT, "height": 1024, "width": 1024, "layout": "2x2"}) + "\n"
    )
    return path


TINY_SAMPLING = {"num_steps": 6, "train_resolution": 32, "eval_resolution": 32, "max_sequence_length": 16,
                 "guidance_scale": 2.0}  # fmt: skip
"""The tiny models' sizes (the presets' algorithm kept): seconds on the CPU."""


def train_config(ctx: PartContext, preset: str, model_path: Path, run: str, overrides: dict):
    """The preset's config for this part: one prompt per iteration, no evaluation or checkpoint,
    ``overrides`` merged in; with ``--tiny`` the tiny models' sizes and a rank-4 LoRA."""
    from paco_core.config import config_from_dict, merge_dicts
    from paco_core.rl.config import TrainConfig
    from paco_core.rl.presets import preset_dict

    settings = merge_dicts(
        preset_dict(preset),
        {
            "model": {"path": str(model_path), "device": ctx.device},
            "sampling": {"prompts_per_iteration": 1, "batch_size": 1},
            "data": {"eval_fraction": 0.0, "num_eval_prompts": 0},
            "num_iterations": 1_000_000,
            "eval_every": 0,
            "checkpoint_every": 1_000_000,
            "output_dir": str(ctx.work / run),
        },
    )
    if ctx.tiny:
        settings = merge_dicts(settings, {"sampling": TINY_SAMPLING, "lora": {"rank": 4, "alpha": 8}})
    return config_from_dict(TrainConfig, merge_dicts(settings, overrides))


def timed_iterations(ctx: PartContext, trainer, count: int) -> list[dict]:
    """One warm-up iteration, then ``count`` timed ones: wall seconds (after a device sync) and the
    trainer's own rollout / reward / update split; the peak window restarts after the warm-up."""
    trainer.run_iteration(0)
    ctx.peak.reset()
    timings = []
    for step in range(1, count + 1):
        synchronize(ctx)
        started = time.perf_counter()
        metrics = trainer.run_iteration(step)
        synchronize(ctx)
        timings.append(
            {
                "seconds": time.perf_counter() - started,
                "rollout_s": metrics["time/rollout_s"],
                "reward_s": metrics["time/reward_s"],
                "update_s": metrics["time/update_s"],
            }
        )
    return timings


def median_of(timings: list[dict], key: str) -> float:
    return statistics.median(t[key] for t in timings)


# --------------------------------------------------------------------------- the parts


def judge_pairs(ctx: PartContext) -> dict:
    """Judge pairs/s with prefix sharing against today's batches, all pairs of one set of 8 panels
    (``bench/judge_prefix_sharing.py``'s measurement)."""
    from bench import judge_prefix_sharing

    panels = 8
    args = judge_bench_args(ctx, "--sizes", str(panels), "--repeats", "1" if ctx.quick or ctx.tiny else "3")
    judge, side, _device_name = judge_prefix_sharing.base.open_bench_judge(args)
    judge.reuse_vision = True
    row = judge_prefix_sharing.bench_size(judge, panels, side, args.repeats)
    return {
        "figures": [
            ctx.figure(f"pairs/s with prefix sharing, N = {panels}, {side} px panels", row["shared_pairs_per_s"],
                       "pairs/s", goal=(">=", 50)),
            ctx.figure("pairs/s without prefix sharing (batches + vision once)", row["plain_pairs_per_s"], "pairs/s"),
            ctx.figure("speed-up of prefix sharing", row["ratio"], "x"),
            ctx.figure("language-model token positions, plain / shared", row["plain_tokens"] / row["shared_tokens"],
                       "x"),
            ctx.figure("largest score difference shared vs plain", row["max_abs_diff"], "",
                       goal=("<=", 0.05 if ctx.cuda else 1e-5)),
        ],
        "details": {**row, "judge": judge.name, "dtype": str(judge.dtype), "batch_size": judge.batch_size},
    }  # fmt: skip


def one_gpu_preset(ctx: PartContext) -> dict:
    """The ``t2is-flux-1gpu`` preset on FLUX.1-dev's transformer with a 7B-dims judge parked in CPU
    memory between scoring phases: peak GPU memory and seconds per iteration for one prompt."""
    group_size = 2 if ctx.tiny else 4
    pipeline = flux_pipeline(ctx)
    judge = bench_judge(ctx)
    config = train_config(
        ctx,
        "t2is-flux-1gpu",
        tiny_model(FLUX.kind),
        "one-gpu-preset",
        {
            "sampling": {"group_size": group_size},
            "data": {"train_file": str(grid_prompt_file(ctx))},
            # the consistency reward only: CLIP-T and PickScore (two ViT-H CLIPs, ~2 GB) are not built
            "rewards": {"rewards": [{"name": "consistency", "weight": 1.0}], "judge_path": judge.name},
        },
    )
    from paco_core.rl.trainer import GrpoTrainer

    trainer = GrpoTrainer(config, pipeline=pipeline)
    trainer.setup()
    trainer.reward_models.use_judge(judge)  # parked on the CPU (rewards.judge_offload) until scoring
    timings = timed_iterations(ctx, trainer, 1 if ctx.quick or ctx.tiny else 2)
    peak = ctx.peak.read()
    seconds = median_of(timings, "seconds")
    preset = preset_samples("t2is-flux-1gpu")
    with_t5 = (peak + T5_XXL_BF16_BYTES) / 1e9
    return {
        "figures": [
            ctx.figure(f"peak {'GPU ' if ctx.cuda else ''}memory of an iteration (policy, LoRA, optimizer, judge "
                       "while scoring)", peak / 2**30, "GiB"),
            ctx.figure("the same + T5-XXL's weights (9.5 GB, not built here)", with_t5, "GB", goal=("<=", 80)),
            ctx.figure("fits a 48 GB GPU", with_t5, "GB", goal=("<=", 48)),
            ctx.figure(f"s/iteration, 1 prompt x G = {group_size} (rollout + judge + update)", seconds, "s"),
            ctx.figure("of which rollout / reward (judge moves + scoring) / update",
                       "{:.2f} / {:.2f} / {:.2f}".format(*(median_of(timings, k) for k in
                                                          ("rollout_s", "reward_s", "update_s"))), "s"),
            ctx.figure(f"estimated s/iteration of the preset ({preset} samples, linear in samples)",
                       seconds * preset / group_size, "s"),
        ],
        "details": {"timings": timings, "group_size": group_size, "judge": judge.name},
        "notes": ["the judge moves CPU -> GPU -> CPU once per iteration (rewards.judge_offload); the peak is "
                  "the allocator's, so the CUDA context (~0.5 GiB) is not in it"],
    }  # fmt: skip


def preset_samples(preset: str) -> int:
    """Samples per iteration of a preset (prompts x group size)."""
    from paco_core.rl.presets import preset_config

    sampling = preset_config(preset).sampling
    return sampling.prompts_per_iteration * sampling.group_size


OLD_LOG_PROB_MODES: list[tuple[str, dict]] = [
    ("rollout", {"optim": {"old_log_prob": "rollout"}}),  # stored at rollout time (Flow-GRPO)
    ("recompute", {"optim": {"old_log_prob": "recompute"}}),  # recomputed at update time (released PaCo-RL)
]
"""Where the PPO ratio's old log-prob comes from (``optim.old_log_prob``): (name, config settings
of that mode, merged into the run's config). The presets recompute, as the released code does."""


def ppo_first_ratio(ctx: PartContext) -> dict:
    """The PPO ratios of the first accumulation window (before any optimizer step, so the policy
    is still the rollout's and every ratio should be 1) through the update's own code path:
    ``PolicyUpdater.micro_batch_loss`` under ``training_attention``, bf16 autocast, gradients
    on, gradient checkpointing. Rollouts run under the default attention kernels; with
    ``optim.clip_range`` 1e-4 (the presets') any bf16 difference above 1e-4 clips the sample.
    Each mode of :data:`OLD_LOG_PROB_MODES` gets a fresh pipeline and trainer (same seeds, so
    the same weights and rollouts)."""
    import gc

    from paco_core.config import merge_dicts
    from paco_core.errors import ConfigError
    from paco_core.rl.trainer import GrpoTrainer

    group_size = 2 if ctx.tiny else 4
    figures, details, notes = [], {}, []
    for mode, settings in OLD_LOG_PROB_MODES:
        overrides = merge_dicts(
            {
                "sampling": {"group_size": group_size},
                "data": {"train_file": str(grid_prompt_file(ctx))},
                "rewards": {"rewards": [{"name": BRIGHTNESS, "weight": 1.0}], "aggregation": "weighted_sum"},
                # one window: every micro-batch of the iteration is re-scored before the first step
                "optim": {"gradient_checkpointing": True, "optimizer_steps_per_iteration": 1},
            },
            settings,
        )
        unknown = [
            f"{section}.{key}"
            for section, values in settings.items()
            for key in values
            if not known_setting(section, key)
        ]
        if unknown:  # the config would ignore them (with a warning) and measure the stored mode again
            notes.append(f"mode {mode} not measured: this build has no setting {', '.join(unknown)}")
            continue
        try:
            config = train_config(
                ctx, "t2is-flux", tiny_model(FLUX.kind), f"ppo-first-ratio-{mode}", overrides
            )
        except ConfigError as error:
            notes.append(f"mode {mode} not measured: {error}")
            continue
        clip_range = config.optim.clip_range
        torch.manual_seed(0)
        trainer = GrpoTrainer(config, pipeline=flux_pipeline(ctx), rewards=brightness_rewards())
        trainer.setup()
        ratios = first_window_ratios(trainer)
        del trainer
        gc.collect()
        if ctx.cuda:
            torch.cuda.empty_cache()
        deviation = (ratios - 1).abs()
        clipped = float((deviation > clip_range).float().mean())
        details[mode] = {"ratios": [plain(r) for r in ratios.tolist()], "clip_range": clip_range}
        figures += [
            ctx.figure(
                f"{mode} old log-prob: largest |ratio - 1| of the first window",
                float(deviation.max()),
                "",
                goal=("<=", clip_range),
            ),
            ctx.figure(
                f"{mode} old log-prob: share of samples clipped at clip range {clip_range:g}",
                clipped,
                "",
                goal=("==", 0),
            ),
        ]
    return {"figures": figures, "details": details, "notes": notes}


def known_setting(section: str, key: str) -> bool:
    """Whether ``section.key`` is a setting of this build's ``TrainConfig``."""
    import dataclasses

    from paco_core.rl.config import TrainConfig

    sections = {field.name: field for field in dataclasses.fields(TrainConfig)}
    factory = sections[section].default_factory if section in sections else dataclasses.MISSING
    return factory is not dataclasses.MISSING and key in {field.name for field in dataclasses.fields(factory)}


def first_window_ratios(trainer) -> torch.Tensor:
    """Run iteration 0 until its first optimizer step; the ratios of every micro-batch and SDE step
    re-scored before it (the update's code path, unchanged weights)."""
    updater = trainer.updater
    recorded: list[torch.Tensor] = []
    score = updater.micro_batch_loss

    def recording_loss(*args, **kwargs):
        loss = score(*args, **kwargs)
        recorded.append(loss.ratio.detach().float().cpu())
        return loss

    def stop(step: int) -> float:
        raise FirstWindowDone

    updater.micro_batch_loss, updater.optimizer_step = recording_loss, stop
    try:
        trainer.run_iteration(0)
    except FirstWindowDone:
        pass
    else:
        raise RuntimeError("the update took no optimizer step")
    finally:
        del updater.micro_batch_loss, updater.optimizer_step  # the class's methods again
        trainer.optimizer.zero_grad(set_to_none=True)
    return torch.cat(recorded)


def generation_while_yield(ctx: PartContext) -> dict:
    """A ``paco train`` job with ``gpu_policy: yield`` is paused at random moments while this
    process generates FLUX sets (``bench/gpu_yield.py``): pause latency against the step time,
    the set's time during the pause against an idle GPU, and the LoRA against an unpaused run.
    On a GPU the job's FLUX has FLUX.1-dev's width with 4 + 8 of its 19 + 38 blocks (written to a
    folder the job loads: the full 24 GB twice would not fit the budget)."""
    from bench import gpu_yield

    if ctx.tiny:
        argv = ["--device", ctx.device, "--iterations", "6", "--pauses", "2", "--hold", "0.1"]
    else:
        folder = ctx.work / "flux-reduced"
        loaded = flux_pipeline(ctx, num_layers=4, num_single_layers=8)
        loaded.pipe.save_pretrained(folder)
        del loaded
        torch.cuda.empty_cache()
        argv = ["--device", ctx.device, "--model", str(folder), "--resolution", "512", "--panel", "256",
                "--gen-steps", "4", "--iterations", "4", "--pauses", "2"]  # fmt: skip
    report = gpu_yield.measure(gpu_yield.parse_args(argv))
    figures = [
        ctx.figure("job step time (median)", report["step_s_median"], "s"),
        ctx.figure("pause latency, largest", report["pause_latency_s"]["max"], "s"),
        ctx.figure("pause latency / the step it fell into, largest", report["latency_over_its_step_max"], "",
                   goal=("<=", 1.0)),
        ctx.figure("paused run's LoRA equals the unpaused run's", report["same_lora_as_unpaused"], "",
                   goal=("==", True)),
    ]  # fmt: skip
    if "generate_during_pause" in report:
        pause, beside = report["generate_during_pause"], report.get("generate_next_to_job", {})
        figures += [
            ctx.figure("set time during a pause / idle GPU", pause["time_vs_idle"], "x", goal=("<=", 1.1)),
            ctx.figure(
                "set time next to the running job / idle GPU", beside.get("time_vs_idle", float("nan")), "x"
            ),
            ctx.figure(
                "device memory used during a pause (the job's included)", pause["device_peak_used_gb"], "GiB"
            ),
        ]
    return {"figures": figures, "details": report}


def edit_training(ctx: PartContext, kind: str) -> dict:
    """One PaCo-GRPO iteration of an edit preset (one edit row, G = 4, micro-batch 1, gradient
    checkpointing, LoRA rank 64) on the real transformer dimensions: seconds and peak memory."""
    from paco_core.rl.trainer import GrpoTrainer

    preset, model = {
        FLUX_KONTEXT.kind: ("edit-kontext", FLUX_KONTEXT.kind),
        QWEN_IMAGE_EDIT.kind: ("edit-qwen", QWEN_IMAGE_EDIT.kind),
    }[kind]
    pipeline = (
        flux_pipeline(ctx, FLUX_KONTEXT.kind) if kind == FLUX_KONTEXT.kind else qwen_image_edit_pipeline(ctx)
    )
    group_size = 2 if ctx.tiny else 4
    config = train_config(
        ctx,
        preset,
        tiny_model(model),
        f"edit-{kind}",
        {
            "sampling": {"group_size": group_size},
            "data": {"train_file": str(FIXTURES / "edits.jsonl")},
            "rewards": {"rewards": [{"name": BRIGHTNESS, "weight": 1.0}]},
            "optim": {"gradient_checkpointing": True},
            # tiny: the edit size from the 32 px train resolution (the preset's 512 would shrink the fixture's images)
            **({"sampling": {"group_size": group_size, "reference_resolution": 32}} if ctx.tiny else {}),
        },
    )
    trainer = GrpoTrainer(config, pipeline=pipeline, rewards=brightness_rewards())
    trainer.setup()
    timings = timed_iterations(ctx, trainer, 1)
    sampling = config.sampling
    params = sum(p.numel() for p in trainer.transformer.parameters()) / 1e9
    return {
        "figures": [
            ctx.figure(f"s/iteration at {sampling.train_resolution} px, 1 edit x G = {group_size}, "
                       f"{sampling.num_steps} steps, {len(sampling.noise_steps)} trained SDE step(s)",
                       median_of(timings, "seconds"), "s"),
            ctx.figure("of which rollout / update", "{:.2f} / {:.2f}".format(
                median_of(timings, "rollout_s"), median_of(timings, "update_s")), "s"),
            ctx.figure("peak GPU memory" if ctx.cuda else "peak memory", ctx.peak.read() / 2**30, "GiB"),
        ],
        "details": {"timings": timings, "transformer_params_billion": round(params, 3)},
    }  # fmt: skip


def edit_kontext(ctx: PartContext) -> dict:
    """FLUX.1-Kontext-dev (FLUX.1-dev's transformer), the ``edit-kontext`` preset."""
    return edit_training(ctx, FLUX_KONTEXT.kind)


def edit_qwen(ctx: PartContext) -> dict:
    """Qwen-Image-Edit (Qwen-Image's 20 B transformer), the ``edit-qwen`` preset."""
    return edit_training(ctx, QWEN_IMAGE_EDIT.kind)


def comfy_files_vs_folder(ctx: PartContext) -> dict:
    """The same 2x2 set from ComfyUI's split files and from the diffusers folder
    (``bench/comfy_files_vs_folder.py``). On a GPU the FLUX has FLUX.1-dev's width with 2 + 4 of
    its blocks, written in both layouts (the full model twice would be 48 GB of writes)."""
    from bench import comfy_files_vs_folder as files_vs_folder

    if ctx.tiny:
        from paco_core.testing import default_cache_dir

        sources = files_vs_folder.tiny_sources(default_cache_dir())  # the cached tiny models
        settings = {"panel_size": 32, "steps": 4, "repeats": 2}
    else:
        from paco_core.testing.comfy_layout import write_flux_files

        folder, models, name = ctx.work / "flux-reduced-folder", ctx.work / "models", "bench-flux"
        loaded = flux_pipeline(ctx, num_layers=2, num_single_layers=4)
        loaded.pipe.save_pretrained(folder)
        del loaded
        torch.cuda.empty_cache()
        write_flux_files(folder, models, name, with_checkpoint=False)
        config_folder = ctx.work / "flux-reduced-configs"  # configs and tokenizers, no weights
        shutil.copytree(folder, config_folder, ignore=shutil.ignore_patterns("*.safetensors", "*.index.json"))
        sources = {
            "folder": str(folder), "transformer_file": str(models / "diffusion_models" / f"{name}.safetensors"),
            "text_encoder_files": [str(models / "text_encoders" / f"{name}-clip_l.safetensors"),
                                   str(models / "text_encoders" / f"{name}-t5xxl.safetensors")],
            "vae_file": str(models / "vae" / f"{name}-ae.safetensors"), "config_folder": str(config_folder),
            "comfyui_dir": None,
        }  # fmt: skip
        settings = {"panel_size": 512, "steps": 4, "repeats": 2}
    results = files_vs_folder.compare(sources, device=ctx.device, **settings)
    folder_row, files_row = results["folder"], results["files"]
    for row in results.values():
        ctx.peak.max_bytes = max(ctx.peak.max_bytes, int(np.nan_to_num(row["peak_gib"]) * 2**30))
    difference = int(np.abs(files_row["grid"].astype(int) - folder_row["grid"].astype(int)).max())
    return {
        "figures": [
            ctx.figure("largest pixel difference, files vs folder", difference, "", goal=("==", 0)),
            ctx.figure("s/set, files / folder", files_row["set_s"] / folder_row["set_s"], "x", goal=("<=", 1.05)),
            ctx.figure("load time, files / folder", files_row["load_s"] / folder_row["load_s"], "x"),
            ctx.figure("s/set from the folder", folder_row["set_s"], "s"),
        ],
        "details": {name: {k: plain(v) for k, v in row.items() if k != "grid"} for name, row in results.items()},
    }  # fmt: skip


def pool_workload(ctx: PartContext, judge, pipeline) -> list[dict]:
    """The most consistent set from a pool (``assemble_from_pool``): K = 4 candidate 2x2 sets of
    512 px panels from one ``generate_sets`` call, every pair across candidates asked once, then
    the search; the generation's time beside it."""
    from paco_core.generate import SetRequest, generate_sets

    # by name: the part only gets here when the build has the module (consistency_tools checks)
    assemble_from_pool = importlib.import_module("paco_core.consistency").assemble_from_pool

    candidates, theme = 4, "a red fox in a snowy forest"
    side = 32 if ctx.tiny else 512
    request = SetRequest(
        theme=theme,
        panels=("sits", "leaps", "sleeps", "watches"),
        layout="2x2",
        panel_width=side,
        panel_height=side,
        steps=2 if ctx.tiny else 4,
        seed=1,
        max_sequence_length=16 if ctx.tiny else 512,
    )
    synchronize(ctx)
    started = time.perf_counter()
    sets = generate_sets(pipeline, request, num_sets=candidates)
    generation_s = time.perf_counter() - started
    started = time.perf_counter()
    result = assemble_from_pool(judge, [generated.panels for generated in sets], theme)
    synchronize(ctx)
    pool_s = time.perf_counter() - started
    return [
        ctx.figure(f"pool: assemble from K = {candidates} sets of 4 panels of {side} px "
                   f"({result.num_questions} judge questions, {result.search} search)", pool_s, "s"),
        ctx.figure("pool: judge questions/s", result.num_questions / pool_s, "questions/s"),
        ctx.figure(f"pool: generating the K sets ({request.steps} steps) for comparison", generation_s, "s"),
    ]  # fmt: skip


CONSISTENCY_WORKLOADS: list[tuple[str, Callable[[PartContext, Any, Any], list[dict]]]] = [
    ("pool", pool_workload),
]
"""(name, function(ctx, judge, pipeline) -> figures) for each tool of ``paco_core.consistency`` to
time at real size. Repair, reference-anchored sets and guarded edit chains are one more
function and one more line each."""


def consistency_tools(ctx: PartContext) -> dict:
    """The consistency tools (``paco_core.consistency``) on the 7B-dims judge and FLUX.1-dev."""
    import paco_core

    spec = importlib.util.find_spec("paco_core.consistency")
    # only this build's own module (a package path may reach another checkout's copy)
    if (
        spec is None
        or spec.origin is None
        or Path(spec.origin).parent.parent != Path(paco_core.__file__).parent
    ):
        raise PartSkipped("not available in this build (no paco_core.consistency)")
    judge, pipeline = bench_judge(ctx), flux_pipeline(ctx)
    figures = []
    for _name, workload in CONSISTENCY_WORKLOADS:
        figures += workload(ctx, judge, pipeline)
    return {"figures": figures}


PART_FUNCTIONS: dict[str, Callable[[PartContext], dict]] = {
    function.__name__: function
    for function in (
        judge_pairs,
        one_gpu_preset,
        ppo_first_ratio,
        generation_while_yield,
        edit_kontext,
        edit_qwen,
        comfy_files_vs_folder,
        consistency_tools,
    )
}


def run_in_this_process(args: argparse.Namespace) -> int:
    """Run the part ``args.part`` and write its result JSON to ``args.result``."""
    ctx = PartContext(device=args.device, tiny=args.tiny, quick=args.quick, work=args.work / args.part)
    ctx.work.mkdir(parents=True, exist_ok=True)
    if ctx.cuda and not torch.cuda.is_available():
        result: dict[str, Any] = {
            "status": "skipped",
            "reason": "no CUDA device (torch.cuda.is_available() is False)",
        }
        # (the runner's NO_DEVICE: it skips the remaining parts with this reason)
        args.result.write_text(json.dumps(result))
        return 0
    torch.manual_seed(0)
    ctx.peak.reset()
    result = {"environment": environment(args.device)}
    try:
        result.update(status="ran", **PART_FUNCTIONS[args.part](ctx))
    except PartSkipped as skipped:
        result.update(status="skipped", reason=str(skipped))
    except torch.cuda.OutOfMemoryError as error:
        traceback.print_exc()
        result.update(status="failed", reason=f"out of GPU memory: {str(error).splitlines()[0]}")
    result["peak_memory"] = ctx.peak.report()
    args.result.write_text(json.dumps(result, indent=2))
    return 0
