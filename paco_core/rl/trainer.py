"""The PaCo-GRPO loop: rollouts, rewards, advantages, PPO update, EMA, eval, checkpoints.

One step (iteration):

1. take ``prompts_per_iteration`` rows from the seeded data order;
2. roll out ``group_size`` images per row in micro-batches (SDE at the noise steps);
3. score them with every reward; gather the scores of all processes;
4. aggregate (log-tamed by default) and normalise into per-group advantages;
5. re-score the stored SDE transitions under the current LoRA and apply the PPO update;
6. update the EMA; evaluate / checkpoint when due; write metrics and ``progress.json``.

Multi-process (``accelerate launch``): every process builds the same iteration plan;
micro-batch j runs on process ``j % num_processes``; rewards are summed across processes
so every process computes the same advantages; gradients are averaged by DDP; only the
main process writes files. SIGTERM (or a cancel hook) finishes the running step, saves a
checkpoint and returns state "stopped" (the CLI exits with :data:`EXIT_STOPPED`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paco_core.callbacks import NO_HOOKS, Hooks
from paco_core.config import config_to_dict, save_config
from paco_core.errors import CancelledError, ConfigError, TrainingError
from paco_core.rl import checkpoint as ckpt
from paco_core.rl.advantages import Advantages, compute_advantages
from paco_core.rl.config import TrainConfig
from paco_core.rl.data import PromptRow, PromptSampler, load_splits, row_size
from paco_core.rl.ema import LoraEma
from paco_core.rl.families import ROW_KIND_OF_FAMILY, TransformerFamily, build_family
from paco_core.rl.loss import policy_loss
from paco_core.rl.metrics import (
    MetricsLogger,
    nan_stat,
    peak_memory_gb,
    reward_metrics,
    save_sample_strip,
    write_progress,
)
from paco_core.rl.rewards import RewardModels, RewardScores, RewardSet, check_invalid_share
from paco_core.rl.rollout import Rollout, rollout_micro_batch, seeded_generator
from paco_core.rl.sde import sde_step
from paco_core.rl.signals import stop_on_sigterm

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_STOPPED = 143
"""Exit code after a requested stop (SIGTERM / cancel) with the checkpoint saved (128 + 15)."""

EVAL_SEED_KEY = 7_777


@dataclass
class TrainResult:
    state: str
    """"finished" or "stopped"."""
    step: int
    output_dir: Path
    last_checkpoint: Path | None
    last_metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class MicroBatchPlan:
    """Micro-batch ``index`` of an iteration: images ``sample_ids`` of group ``group``."""

    index: int
    group: int
    sample_ids: list[int]


class GrpoTrainer:
    """Runs a :class:`TrainConfig`.

    Args:
        config: the run.
        pipeline: an already loaded ``LoadedPipeline`` (default: loaded from ``config.model``);
            the trainer adds its LoRA to the pipeline's transformer.
        rewards / eval_rewards: RewardSet objects (default: built from the config).
        hooks: progress (step, total) and cancel callbacks, checked between steps.
        accelerator: an ``accelerate.Accelerator`` (default: a new one; under
            ``accelerate launch`` it joins the process group).
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        pipeline: Any = None,
        rewards: RewardSet | None = None,
        eval_rewards: RewardSet | None = None,
        hooks: Hooks = NO_HOOKS,
        accelerator: Any = None,
    ):
        self.config = config
        self.hooks = hooks
        self.output_dir = Path(config.output_dir)
        self._pipeline = pipeline
        self._rewards = rewards
        self._eval_rewards = eval_rewards
        self._accelerator = accelerator
        self._stop_requested = False
        self.step = 0
        self.last_checkpoint: Path | None = None
        self.reward_history: dict[str, list[float]] = {}

    # ------------------------------------------------------------------ public entry point

    def train(self, resume: str | None = None) -> TrainResult:
        """Run (or continue) training to ``num_iterations`` steps.

        Args:
            resume: a checkpoint folder, ``latest``, or None to start fresh.

        Returns:
            TrainResult with state "finished" or "stopped".
        """
        self.check_config()
        self.setup()
        if resume:
            self.load(ckpt.resolve_resume(self.output_dir, resume))
        if self.is_main:
            self.metrics.truncate_after(self.step)
        try:
            with stop_on_sigterm(self.request_stop):
                return self._loop()
        except BaseException as error:
            self._progress("failed", message=f"{type(error).__name__}: {error}")
            raise
        finally:
            self.metrics.close()

    def request_stop(self) -> None:
        """Ask the loop to stop after the running step (checkpoint saved). Signal-safe."""
        self._stop_requested = True

    # ------------------------------------------------------------------ setup

    def check_config(self) -> None:
        """Checks that need no model: run before seeding or loading anything."""
        config = self.config
        if self._pipeline is None:
            config.check_ready()
        elif not config.data.train_file:
            raise ConfigError("`data.train_file` is empty: give a JSONL file of prompt rows")

    def setup(self) -> None:
        """Load the pipeline, add the LoRA, build optimizer, EMA, data, rewards and loggers."""
        from accelerate import Accelerator

        config = self.config
        self.accelerator = self._accelerator or Accelerator(cpu=config.model.device == "cpu")
        self.is_main = self.accelerator.is_main_process
        torch.manual_seed(config.seed)
        self.loaded = self._pipeline or self._load_pipeline()
        self.pipe = self.loaded.pipe
        kind = getattr(self.loaded, "kind", config.model.family)
        if kind != config.model.family:
            raise ConfigError(
                f"`model.family` is {config.model.family!r} but the pipeline at the path is {kind!r}"
            )
        self.transformer = self.pipe.transformer
        self._add_lora()
        self.named_trainable = [(n, p) for n, p in self.transformer.named_parameters() if p.requires_grad]
        trainable = [p for _, p in self.named_trainable]
        optimizer = torch.optim.AdamW(
            trainable, lr=config.optim.lr, betas=config.optim.betas,
            weight_decay=config.optim.weight_decay, eps=config.optim.eps,
        )  # fmt: skip
        self.train_model, self.optimizer = self.accelerator.prepare(self.transformer, optimizer)
        self.ema = (
            LoraEma(
                self.named_trainable, max_decay=config.ema.max_decay, update_every=config.ema.update_every
            )
            if config.ema.use_ema
            else None
        )
        self.family: TransformerFamily = build_family(
            config.model.family, self.pipe, guidance_scale=config.sampling.guidance_scale,
            max_sequence_length=config.sampling.max_sequence_length, negative_prompt=config.sampling.negative_prompt,
        )  # fmt: skip
        self._setup_data()
        models = RewardModels(config.rewards, str(self.accelerator.device))
        self.rewards = self._rewards or RewardSet.from_config(config.rewards.rewards, models)
        self.eval_rewards = self._eval_rewards or RewardSet.from_config(config.rewards.evaluation, models)
        self.metrics = MetricsLogger(
            self.output_dir, enabled=self.is_main, use_tensorboard=config.use_tensorboard
        )
        if self.is_main:
            save_config(config, self.output_dir / "config.json")
        self._check_plan()

    def _load_pipeline(self):
        from paco_core.models.pipelines import clear_pipeline_cache, load_pipeline

        model = self.config.model
        device = str(self.accelerator.device) if model.device == "auto" else model.device
        # The trainer adds its adapter to this pipeline, so it must be a fresh copy that no
        # other user of the loader's cache holds: forget the cache before and after loading.
        clear_pipeline_cache()
        loaded = load_pipeline(model.path, dtype=model.dtype, device=device)
        clear_pipeline_cache()
        return loaded

    def _add_lora(self) -> None:
        from peft import LoraConfig as PeftLoraConfig

        lora = self.config.lora
        self.transformer.requires_grad_(False)
        peft_config = PeftLoraConfig(
            r=lora.rank, lora_alpha=lora.alpha, init_lora_weights="gaussian" if lora.init == "gaussian" else True,
            target_modules=list(self.config.lora_targets),
        )  # fmt: skip
        try:
            self.transformer.add_adapter(peft_config)
        except ValueError as error:
            raise ConfigError(
                f"`lora.target_modules` {list(self.config.lora_targets)} match no layer of the "
                f"{self.config.model.family} transformer: {error}"
            ) from error
        for param in self.transformer.parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.to(torch.float32)
        if self.config.optim.gradient_checkpointing:
            self.transformer.enable_gradient_checkpointing()

    def _setup_data(self) -> None:
        config = self.config
        splits = load_splits(
            config.data.train_file, config.data.eval_file, eval_fraction=config.data.eval_fraction,
            seed=config.seed, image_root=config.data.image_root,
        )  # fmt: skip
        wanted = ROW_KIND_OF_FAMILY[config.model.family]
        for name, rows in (("train", splits.train), ("eval", splits.eval)):
            wrong = [row.index for row in rows if row.kind != wanted]
            if wrong:
                raise ConfigError(
                    f"{config.model.family} trains on {wanted} rows, but the {name} data has {len(wrong)} "
                    f"other rows (idx {wrong[:5]}); use set rows for flux and edit rows for edit models"
                )
        self.sampler = PromptSampler(splits.train, config.seed)
        limit = config.data.num_eval_prompts or len(splits.eval)
        self.eval_rows = splits.eval[:limit]
        if config.eval_every and not self.eval_rows:
            logger.warning(
                "eval_every=%d is ignored: there are no eval rows (set data.eval_file or data.eval_fraction > 0)",
                config.eval_every,
            )

    def _check_plan(self) -> None:
        sampling = self.config.sampling
        num_micro = sampling.prompts_per_iteration * sampling.group_size // sampling.batch_size
        world = self.accelerator.num_processes
        if num_micro % world:
            raise ConfigError(
                f"{num_micro} micro-batches per step (prompts_per_iteration x group_size / batch_size) cannot be "
                f"shared equally by {world} processes; make it a multiple of {world}"
            )

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> TrainResult:
        config = self.config
        total = config.num_iterations
        self._progress("running")
        if self.step == 0 and config.eval_every and self.eval_rows:
            self._log(0, self.evaluate(0))
        last: dict[str, Any] = {}
        while self.step < total:
            started = time.perf_counter()
            last = self.run_iteration(self.step)
            self.step += 1
            if self.ema is not None and self.ema.maybe_update(self.step):
                last["ema/decay"] = self.ema.decay(self.step)
            last["time/step_s"] = time.perf_counter() - started
            last["memory/peak_gb"] = peak_memory_gb(self.accelerator.device)
            self._log(self.step, last)
            if config.eval_every and self.eval_rows and self.step % config.eval_every == 0:
                self._log(self.step, self.evaluate(self.step))
            stop = self._should_stop()
            if stop or self.step % config.checkpoint_every == 0 or self.step == total:
                self.save()
            self._progress("running")
            if stop:
                self._progress("stopped", message="stopped on request; checkpoint saved")
                return TrainResult("stopped", self.step, self.output_dir, self.last_checkpoint, last)
        self._progress("finished")
        return TrainResult("finished", self.step, self.output_dir, self.last_checkpoint, last)

    def _should_stop(self) -> bool:
        try:
            self.hooks.step(self.step, self.config.num_iterations)
        except CancelledError:
            self._stop_requested = True
        except Exception as error:  # a host's own interrupt exception
            logger.info("cancel hook raised %s: stopping", type(error).__name__)
            self._stop_requested = True
        flag = torch.tensor([1.0 if self._stop_requested else 0.0], device=self.accelerator.device)
        if self.accelerator.num_processes > 1:
            flag = self.accelerator.reduce(flag, reduction="sum")
        return bool(flag.item() > 0)

    def run_iteration(self, step: int) -> dict[str, Any]:
        """One step: rollouts, rewards, advantages, update. Returns its metrics."""
        config = self.config
        rows = self.sampler.next_rows(config.sampling.prompts_per_iteration)
        sde_steps = self.choose_sde_steps(step)
        started = time.perf_counter()
        rollouts = self.collect_rollouts(rows, step, sde_steps)
        rollout_s = time.perf_counter() - started
        started = time.perf_counter()
        scores = self.score_rollouts(rollouts, len(rows) * config.sampling.group_size)
        invalid_share = check_invalid_share(scores, config.rewards.max_invalid_share)
        groups = np.repeat(np.arange(len(rows)), config.sampling.group_size)
        advantages = compute_advantages(
            scores.scores, self.rewards.weights, groups, aggregation=config.rewards.aggregation,
            threshold=config.rewards.log_tame_threshold, global_std=config.advantages.global_std,
            clip_max=config.advantages.adv_clip_max,
        )  # fmt: skip
        reward_s = time.perf_counter() - started
        started = time.perf_counter()
        update = self.update(rollouts, advantages)
        metrics = reward_metrics(
            scores, advantages, invalid_share, log_tamed=config.rewards.aggregation == "log_tamed"
        )
        for name in scores.names:
            self.reward_history.setdefault(name, []).append(metrics[f"rewards/{name}/mean"])
        metrics.update(update)
        metrics.update({"time/rollout_s": rollout_s, "time/reward_s": reward_s,
                        "time/update_s": time.perf_counter() - started, "lr": self.optimizer.param_groups[0]["lr"],
                        "sde_steps": list(sde_steps)})  # fmt: skip
        return metrics

    def choose_sde_steps(self, step: int) -> tuple[int, ...]:
        """The noise steps of this iteration: all, or a seeded random subset."""
        sampling = self.config.sampling
        count = sampling.num_noise_steps_per_iteration
        if not count or count >= len(sampling.noise_steps):
            return tuple(sampling.noise_steps)
        rng = np.random.default_rng([self.config.seed, step, 3])
        return tuple(sorted(int(s) for s in rng.choice(sampling.noise_steps, size=count, replace=False)))

    # ------------------------------------------------------------------ rollouts and rewards

    def plan(self, num_rows: int, group_size: int, batch_size: int) -> list[MicroBatchPlan]:
        plans = []
        per_group = group_size // batch_size
        for index in range(num_rows * per_group):
            group, part = divmod(index, per_group)
            start = group * group_size + part * batch_size
            plans.append(MicroBatchPlan(index, group, list(range(start, start + batch_size))))
        return plans

    def my_plans(self, plans: list[MicroBatchPlan]) -> list[MicroBatchPlan]:
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        return [plan for plan in plans if plan.index % world == rank]

    def collect_rollouts(self, rows: list[PromptRow], step: int, sde_steps: tuple[int, ...]) -> list[Rollout]:
        sampling = self.config.sampling
        rollouts: list[Rollout] = []
        encoded: dict[int, Any] = {}
        self.transformer.eval()
        for plan in self.my_plans(self.plan(len(rows), sampling.group_size, sampling.batch_size)):
            row = rows[plan.group]
            height, width = self.size_of(row, sampling.train_resolution)
            if plan.group not in encoded:
                encoded[plan.group] = self.family.encode(row, height, width)
            rollouts.append(
                rollout_micro_batch(
                    self.family,
                    self.transformer,
                    row,
                    group=plan.group,
                    sample_ids=plan.sample_ids,
                    height=height,
                    width=width,
                    num_steps=sampling.num_steps,
                    sde_steps=sde_steps,
                    noise_level=sampling.noise_level,
                    generator=seeded_generator(self.config.seed, step, plan.index),
                    cond=encoded[plan.group],
                    autocast=self.autocast,
                )  # fmt: skip
            )
        return rollouts

    def size_of(self, row: PromptRow, resolution: int) -> tuple[int, int]:
        image_size = None
        if row.kind == "edit" and not (row.height and row.width):
            from PIL import Image

            with Image.open(row.image_path) as image:
                image_size = image.size
        return row_size(row, resolution, self.config.sampling.reference_resolution, image_size)

    def score_rollouts(self, rollouts: list[Rollout], num_samples: int) -> RewardScores:
        """Score this process's images, then sum the matrices of all processes."""
        num_rewards = len(self.rewards.specs)
        values = torch.zeros(num_samples, num_rewards, dtype=torch.float64)
        invalid = torch.zeros(num_samples, num_rewards, dtype=torch.float64)
        failures: dict[str, int] = {}
        messages: dict[str, str] = {}
        for rollout in rollouts:
            metadata = [rollout.row.metadata() for _ in rollout.images]
            prompts = [rollout.row.prompt] * len(rollout.images)
            scored = self.rewards.score(rollout.images, prompts, metadata)
            matrix = torch.from_numpy(scored.scores)
            ids = torch.tensor(rollout.sample_ids)
            values[ids] = torch.nan_to_num(matrix, nan=0.0)
            invalid[ids] = torch.isnan(matrix).to(torch.float64)
            for name, count in scored.failures.items():
                failures[name] = failures.get(name, 0) + count
                messages.setdefault(name, scored.messages[name])
        if self.accelerator.num_processes > 1:
            device = self.accelerator.device
            values = self.accelerator.reduce(values.to(device, torch.float32), reduction="sum").cpu().double()
            invalid = (
                self.accelerator.reduce(invalid.to(device, torch.float32), reduction="sum").cpu().double()
            )
            for k, name in enumerate(self.rewards.names):
                total = int(invalid[:, k].sum().item())
                if total:
                    failures[name] = total
                    messages.setdefault(name, "failed on another process (see its log)")
        matrix = values.numpy().copy()
        matrix[invalid.numpy() > 0] = np.nan
        return RewardScores(self.rewards.names, matrix, failures, messages)

    # ------------------------------------------------------------------ update

    def update(self, rollouts: list[Rollout], advantages: Advantages) -> dict[str, float]:
        """PPO update over this process's micro-batches (``num_inner_epochs`` passes)."""
        optim = self.config.optim
        self.transformer.train()
        ratios, clip_fractions, kls, losses, grad_norms = [], [], [], [], []
        first_ratio: float | None = None
        values = torch.from_numpy(advantages.values).to(torch.float32)
        valid = torch.from_numpy(advantages.valid)
        pending = 0
        for _ in range(optim.num_inner_epochs):
            for rollout in rollouts:
                ids = torch.tensor(rollout.sample_ids)
                batch_adv = values[ids].to(self.accelerator.device)
                batch_mask = valid[ids].to(self.accelerator.device)
                for k in range(len(rollout.sde_steps)):
                    with self.attention_backends():
                        terms = self.micro_batch_loss(rollout, k, batch_adv, batch_mask)
                        scale = len(rollout.sde_steps) * optim.gradient_accumulation_steps
                        self.accelerator.backward(terms.total / scale)
                    if first_ratio is None:
                        first_ratio = float(terms.ratio.mean())
                    ratios.append(terms.ratio)
                    clip_fractions.append(float(terms.clip_fraction))
                    kls.append(float(terms.kl))
                    losses.append(float(terms.total.detach()))
                pending += 1
                if pending == optim.gradient_accumulation_steps:
                    grad_norms.append(self._optimizer_step())
                    pending = 0
        if pending:
            grad_norms.append(self._optimizer_step())
        all_ratios = torch.cat(ratios) if ratios else torch.ones(1)
        return {
            "policy/ratio_first": first_ratio if first_ratio is not None else 1.0,
            "policy/ratio_mean": float(all_ratios.mean()),
            "policy/ratio_min": float(all_ratios.min()),
            "policy/ratio_max": float(all_ratios.max()),
            "policy/clip_fraction": float(np.mean(clip_fractions)) if clip_fractions else 0.0,
            "policy/kl": float(np.mean(kls)) if kls else 0.0,
            "policy/loss": float(np.mean(losses)) if losses else 0.0,
            "policy/grad_norm": float(np.mean(grad_norms)) if grad_norms else 0.0,
            "policy/optimizer_steps": len(grad_norms),
        }

    def micro_batch_loss(self, rollout: Rollout, k: int, advantages: torch.Tensor, mask: torch.Tensor):
        """Re-score SDE transition k of a micro-batch under the current policy."""
        sampling, optim = self.config.sampling, self.config.optim
        index = rollout.sde_steps[k]
        sigma, sigma_next = rollout.schedule.sigmas[index], rollout.schedule.sigmas[index + 1]
        timestep = rollout.schedule.timesteps[index]
        latents, next_latents = rollout.latents[k], rollout.next_latents[k]
        with self.autocast():
            velocity = self.family.velocity(self.train_model, latents, timestep, rollout.cond)
        step = sde_step(latents, velocity, sigma, sigma_next, noise_level=sampling.noise_level,
                        sigma_max=rollout.schedule.sigma_max, x_next=next_latents)  # fmt: skip
        reference_mean = None
        if optim.kl_beta > 0:
            with torch.no_grad(), self.adapter_disabled(), self.autocast():
                reference_velocity = self.family.velocity(self.transformer, latents, timestep, rollout.cond)
            reference_mean = sde_step(latents, reference_velocity, sigma, sigma_next, noise_level=sampling.noise_level,
                                      sigma_max=rollout.schedule.sigma_max, x_next=next_latents).mean  # fmt: skip
        return policy_loss(
            step.log_prob, rollout.log_probs[k], advantages, clip_range=optim.clip_range, kl_beta=optim.kl_beta,
            mean=step.mean, reference_mean=reference_mean, std=step.std, mask=mask,
        )  # fmt: skip

    def _optimizer_step(self) -> float:
        max_norm = self.config.optim.max_grad_norm
        params = [p for _, p in self.named_trainable]
        if max_norm > 0:
            norm = float(self.accelerator.clip_grad_norm_(params, max_norm))
        else:
            norm = float(torch.norm(torch.stack([p.grad.norm() for p in params if p.grad is not None])))
        if not math.isfinite(norm):
            raise TrainingError(
                f"the gradient norm is {norm} at step {self.step}: training diverged; lower optim.lr or "
                "use bf16 autocast only on GPU"
            )
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norm

    @contextlib.contextmanager
    def adapter_disabled(self) -> Iterator[None]:
        """The reference policy: the base transformer with the LoRA switched off."""
        self.transformer.disable_adapters()
        try:
            yield
        finally:
            self.transformer.enable_adapters()

    def attention_backends(self) -> contextlib.AbstractContextManager:
        """On CUDA, attention by the flash / memory-efficient / math kernels only.

        PyTorch 2.11's cuDNN attention fails in the backward pass of the FLUX transformer
        (``mha_graph.execute(...) is_good()``, seen on an H200); forward and backward
        (including checkpoint recomputation) run inside this context.
        """
        if torch.device(self.accelerator.device).type != "cuda":
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA (optim.mixed_precision auto/bf16); nothing on the CPU."""
        device = torch.device(self.accelerator.device)
        mode = self.config.optim.mixed_precision
        if device.type == "cuda" and mode in ("auto", "bf16"):
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def evaluate(self, step: int) -> dict[str, Any]:
        """ODE samples of the eval rows at the eval resolution (EMA weights), scored by the
        eval rewards; saves a sample strip ``samples/step-<step>.png``. Main process only."""
        if not self.is_main:
            return {}
        sampling = self.config.sampling
        images, prompts, metadata = [], [], []
        self.transformer.eval()
        with self.ema.swapped_in() if self.ema is not None else contextlib.nullcontext():
            for number, row in enumerate(self.eval_rows):
                height, width = self.size_of(row, sampling.eval_resolution)
                rollout = rollout_micro_batch(
                    self.family, self.transformer, row, group=number,
                    sample_ids=list(range(self.config.eval_group_size)), height=height, width=width,
                    num_steps=sampling.num_steps, sde_steps=(), noise_level=sampling.noise_level,
                    generator=seeded_generator(self.config.seed, EVAL_SEED_KEY, number), autocast=self.autocast,
                )  # fmt: skip
                images.extend(rollout.images)
                prompts.extend([row.prompt] * len(rollout.images))
                metadata.extend([row.metadata()] * len(rollout.images))
        scores = self.eval_rewards.score(images, prompts, metadata)
        metrics: dict[str, Any] = {}
        for k, name in enumerate(scores.names):
            column = scores.scores[:, k]
            metrics[f"eval/rewards/{name}/mean"] = nan_stat(np.nanmean, column)
            metrics[f"eval/rewards/{name}/invalid"] = int(np.isnan(column).sum())
        save_sample_strip(images, self.output_dir / "samples" / f"step-{step:06d}.png")
        return metrics

    # ------------------------------------------------------------------ checkpoints

    def save(self) -> Path | None:
        """Write ``checkpoint-<step>`` (main process), prune old ones, sync processes."""
        path = None
        if self.is_main:
            path = ckpt.save_checkpoint(
                self.output_dir, self.step, write_lora=self._write_lora,
                policy={name: p.detach().cpu() for name, p in self.named_trainable},
                ema=self.ema.state_dict() if self.ema is not None else None,
                optimizer_state=self.optimizer.state_dict(), state=self._trainer_state(),
            )  # fmt: skip
            ckpt.prune_checkpoints(self.output_dir, self.config.checkpoints_total_limit)
            self.last_checkpoint = path
            logger.info("saved %s", path)
        self.accelerator.wait_for_everyone()
        return path

    def _write_lora(self, path: Path) -> None:
        from paco_core.models.lora import save_peft_transformer_lora

        metadata = {
            "paco.step": str(self.step),
            "paco.trainer": "paco-grpo",
            "paco.ema": str(self.ema is not None),
        }
        with self.ema.swapped_in() if self.ema is not None else contextlib.nullcontext():
            save_peft_transformer_lora(self.transformer, path, metadata=metadata)

    def _trainer_state(self) -> dict[str, Any]:
        return {
            "config": config_to_dict(self.config),
            "sampler": self.sampler.state_dict(),
            "reward_history": self.reward_history,
            "num_processes": self.accelerator.num_processes,
        }

    def load(self, path: Path) -> None:
        """Restore a checkpoint written by :meth:`save` (weights, optimizer, EMA, data, RNG)."""
        loaded = ckpt.load_checkpoint(path)
        names = {name for name, _ in self.named_trainable}
        if set(loaded.policy) != names:
            raise TrainingError(
                f"checkpoint {str(path)!r} holds {len(loaded.policy)} LoRA tensors but this config trains "
                f"{len(names)}: resume with the same model and lora settings"
            )
        with torch.no_grad():
            for name, param in self.named_trainable:
                param.copy_(loaded.policy[name].to(param.device, param.dtype))
        self.optimizer.load_state_dict(loaded.optimizer)
        if self.ema is not None:
            if loaded.ema is None:
                raise TrainingError(f"checkpoint {str(path)!r} has no EMA but ema.use_ema is on")
            self.ema.load_state_dict(loaded.ema)
        self.sampler.load_state_dict(loaded.state["sampler"])
        self.reward_history = loaded.state.get("reward_history", {})
        ckpt.restore_rng_state(loaded.rng, loaded.state["rng"])
        self.step = loaded.step
        self.last_checkpoint = path
        logger.info("resumed from %s at step %d", path, self.step)

    # ------------------------------------------------------------------ reporting

    def _log(self, step: int, values: dict[str, Any]) -> None:
        if values:
            self.metrics.log(step, values)
        if self.is_main and values:
            summary = ", ".join(f"{k}={v:.4g}" for k, v in values.items() if k.endswith("/mean") and v == v)
            logger.info("step %d/%d %s", step, self.config.num_iterations, summary)

    def _progress(self, state: str, **extra: Any) -> None:
        if not getattr(self, "is_main", False):
            return
        write_progress(
            self.output_dir, state=state, step=self.step, total=self.config.num_iterations,
            last_checkpoint=str(self.last_checkpoint) if self.last_checkpoint else None, **extra,
        )  # fmt: skip


def train(config: TrainConfig, *, resume: str | None = None, hooks: Hooks = NO_HOOKS) -> TrainResult:
    """Run a training config to the end (or until stopped). See :class:`GrpoTrainer`."""
    return GrpoTrainer(config, hooks=hooks).train(resume=resume)
