"""The PaCo-GRPO loop: rollouts, rewards, advantages, PPO update, EMA, eval, checkpoints.

One step (iteration), see :meth:`GrpoTrainer.run_iteration`:

1. take ``prompts_per_iteration`` rows from the seeded data order;
2. roll out ``group_size`` images per row in micro-batches (SDE at the noise steps);
3. score them with every reward; gather the scores of all processes;
4. aggregate (log-tamed by default) and normalise into per-group advantages;
5. re-score the stored SDE transitions under the current LoRA and apply the PPO update;

then :meth:`GrpoTrainer._loop` updates the EMA, evaluates / checkpoints when due and
writes metrics and ``progress.json``.

The phases live in their own modules: :mod:`~paco_core.rl.micro_batches` (planning and
sharing), :mod:`~paco_core.rl.rollout`, :mod:`~paco_core.rl.rollout_rewards`,
:mod:`~paco_core.rl.advantages`, :mod:`~paco_core.rl.update`, :mod:`~paco_core.rl.evaluation`
and :mod:`~paco_core.rl.checkpoint`; this class holds the run's state and orders them.

Multi-process (``accelerate launch``): every process builds the same iteration plan;
micro-batch j runs on process ``j % num_processes``; rewards are summed across processes
so every process computes the same advantages; gradients are averaged by DDP; only the
main process writes files. SIGTERM (or a cancel hook) finishes the running step, saves a
checkpoint and returns state "stopped" (the CLI exits with :data:`EXIT_STOPPED`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paco_core import run_requests
from paco_core.callbacks import NO_HOOKS, Hooks
from paco_core.config import config_to_dict, save_config
from paco_core.errors import CancelledError, ConfigError, InputError, TrainingError
from paco_core.families import family
from paco_core.rl import checkpoint as ckpt
from paco_core.rl.advantages import compute_advantages
from paco_core.rl.config import TrainConfig
from paco_core.rl.data import (
    PromptRow,
    PromptSampler,
    check_held_out,
    check_row_kinds,
    load_splits,
    rollout_size,
)
from paco_core.rl.device_contexts import apply_tf32, autocast_factory
from paco_core.rl.ema import LoraEma
from paco_core.rl.evaluation import evaluate_policy
from paco_core.rl.gpu_yield import GpuYield
from paco_core.rl.guardrail import TRAIN_METRIC, Guardrail
from paco_core.rl.lora_setup import add_trainable_lora
from paco_core.rl.metrics import MetricsLogger, peak_memory_gb, reward_metrics
from paco_core.rl.micro_batches import (
    check_processes_share_equally,
    plan_micro_batches,
    plans_of_process,
    split_windows,
)
from paco_core.rl.on_request import group_stats, prompt_entries, requested_rows
from paco_core.rl.rewards import RewardModels, RewardSet, check_invalid_share
from paco_core.rl.rollout import Rollout, rollout_micro_batch, seeded_generator
from paco_core.rl.rollout_adapters import RolloutAdapter, build_rollout_adapter
from paco_core.rl.rollout_rewards import score_micro_batch, score_rollouts
from paco_core.rl.sample_guardrail import SampleGuardrail
from paco_core.rl.sharding import (
    full_optimizer_state,
    full_tensor,
    is_sharded,
    load_full_optimizer_state,
    shard_like,
)
from paco_core.rl.signals import stop_on_sigterm
from paco_core.rl.update import PolicyUpdater
from paco_core.run_folder import Checkpoint, RunFolder

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_STOPPED = 143
"""Exit code after a requested stop (SIGTERM / cancel) with the checkpoint saved (128 + 15)."""


@dataclass
class TrainResult:
    state: str
    """"finished" or "stopped"."""
    step: int
    output_dir: Path
    last_checkpoint: Path | None
    """The run's last checkpoint folder (written by the main process, also on other processes)."""
    last_metrics: dict[str, Any] = field(default_factory=dict)
    process_index: int = 0
    num_processes: int = 1


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

    Example:
        >>> result = GrpoTrainer(config).train(resume="latest")  # doctest: +SKIP
    """

    sharded = False
    """True under FSDP2: the transformer's parameters are DTensor shards (set by setup)."""
    _lora_weights: dict[str, torch.Tensor] | None = None

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
        self.run_folder = RunFolder(self.output_dir)
        self._pipeline = pipeline
        self._rewards = rewards
        self._eval_rewards = eval_rewards
        self._accelerator = accelerator
        self._stop_requested = False
        self.step = 0
        self.last_checkpoint: Path | None = None
        self.reward_history: dict[str, list[float]] = {}
        self.prompt_rewards: dict[str, dict[str, Any]] = {"train": {}, "eval": {}}
        self.gpu_yield: GpuYield | None = None
        self.guardrail = Guardrail(config.held_out_metric, config.best_mode, config.guardrail_patience)
        self.sample_guardrail: SampleGuardrail | None = None

    # ------------------------------------------------------------------ public entry point

    def train(self, resume: str | None = None, *, overwrite: bool = False) -> TrainResult:
        """Run (or continue) training to ``num_iterations`` steps.

        Args:
            resume: a checkpoint folder, ``latest`` (the newest intact checkpoint in the
                output folder), or None to start fresh.
            overwrite: start fresh even if the output folder holds an earlier run (its
                files are deleted first). Without it a fresh run into a used folder is refused.

        Returns:
            TrainResult with state "finished" or "stopped".

        Raises:
            TrainingError: the folder is locked by another trainer, holds another run, or
                the checkpoint is damaged or was trained with another config.
        """
        if resume and overwrite:
            raise ConfigError("--resume and --overwrite contradict each other: give one of them")
        self.check_config()
        self.run_folder.check_usable()
        self._setup_accelerator()
        lock = self.run_folder.lock()
        if self.is_main:
            lock.acquire()
        try:
            checkpoint = self._prepare_run_folder(resume, overwrite)
            if checkpoint is not None:
                self.step = Checkpoint.from_path(checkpoint).step
                self.last_checkpoint = checkpoint
            self._progress("starting")
            try:
                self.setup()
                if checkpoint is not None:
                    self.load(checkpoint)
                    self.prompt_rewards = run_requests.read_prompt_rewards(self.output_dir)
                if self.is_main:
                    self.metrics.truncate_after(self.step)
                with stop_on_sigterm(self.request_stop):
                    return self._loop()
            except BaseException as error:
                self._progress("failed", message=f"{type(error).__name__}: {error}")
                raise
            finally:
                if getattr(self, "metrics", None) is not None:
                    self.metrics.close()
        finally:
            lock.release()

    def _prepare_run_folder(self, resume: str | None, overwrite: bool) -> Path | None:
        """Refuse a fresh run into a used folder (or clear it with ``overwrite``); for a
        resume, the verified checkpoint, checked against this config. Holds the lock."""
        run = self.run_folder
        if not resume:
            if not self.is_main:
                return None
            results = run.result_entries()
            if results and not overwrite:
                raise TrainingError(
                    f"output_dir {str(run.path)!r} already holds a run ({', '.join(results[:4])}"
                    f"{', ...' if len(results) > 4 else ''}): continue it with --resume latest, "
                    "start over with --overwrite (deletes it), or choose another output_dir"
                )
            leftovers = run.used_entries()
            if results:
                logger.warning(
                    "--overwrite: deleting the earlier run in %s (%s)", run.path, ", ".join(leftovers)
                )
            elif leftovers:
                logger.info(
                    "starting afresh over a run that never finished a step: deleting %s", ", ".join(leftovers)
                )
            run.clear()
            return None
        path = ckpt.resolve_resume(self.output_dir, resume)
        self._check_resume_config(path)
        return path

    def _check_resume_config(self, path: Path) -> None:
        from paco_core.rl.config import RESUME_MAY_CHANGE, resume_config_changes

        saved = Checkpoint.from_path(path).read_state().get("config") or self.run_folder.read_config()
        changes = resume_config_changes(saved, self.config) if saved else []
        if changes:
            listed = "; ".join(f"{key}: {old!r} -> {new!r}" for key, old, new in changes)
            raise TrainingError(
                f"--resume: the config differs from the one {path.name} was trained with ({listed}). "
                f"Only {len(RESUME_MAY_CHANGE)} keys may change on resume (num_iterations, saving, evaluation, "
                "output_dir, model.device, reward model paths: see docs/runs.md); undo the other changes, "
                "or start a new run in another output_dir"
            )

    def request_stop(self) -> None:
        """Ask the loop to stop after the running step (checkpoint saved). Signal-safe."""
        self._stop_requested = True

    # ------------------------------------------------------------------ setup

    def check_config(self) -> None:
        """Checks that need no model: run before seeding or loading anything."""
        config = self.config
        if self._pipeline is None:
            config.check_ready()
            check_device_available(config.model.device)
        elif not config.data.train_file:
            raise ConfigError("`data.train_file` is empty: give a JSONL file of prompt rows")
        RewardModels(config.rewards, "cpu").check_judge_server()

    def _setup_accelerator(self) -> None:
        from accelerate import Accelerator

        if getattr(self, "accelerator", None) is not None:
            return
        from paco_core.devices import resolve_device

        # "auto" without a GPU is the CPU too: Accelerator(cpu=False) there would leave each
        # launched process alone (distributed type NO), every one of them the main process.
        on_cpu = resolve_device(self.config.model.device) == "cpu"
        self.accelerator = self._accelerator or Accelerator(cpu=on_cpu)
        plugin = getattr(self.accelerator.state, "fsdp_plugin", None)
        check_distributed_type(self.accelerator.distributed_type, getattr(plugin, "fsdp_version", None))
        self.is_main = self.accelerator.is_main_process

    def setup(self) -> None:
        """Load the pipeline, add the LoRA, build optimizer, EMA, data, rewards and loggers."""
        config = self.config
        self._setup_accelerator()
        self.autocast = autocast_factory(self.accelerator.device, config.optim.mixed_precision)
        apply_tf32(self.accelerator.device, config.optim.allow_tf32)
        torch.manual_seed(config.seed)
        self._setup_pipeline()
        self._setup_optimization()
        self._setup_data()
        self.reward_models = RewardModels(config.rewards, str(self.accelerator.device))
        self.rewards = self._rewards or RewardSet.from_config(config.rewards.rewards, self.reward_models)
        self.eval_rewards = self._eval_rewards or RewardSet.from_config(
            config.rewards.evaluation, self.reward_models
        )
        self.sample_guardrail = SampleGuardrail(config, str(self.accelerator.device))
        self.metrics = MetricsLogger(
            self.output_dir, enabled=self.is_main, use_tensorboard=config.use_tensorboard
        )
        self._setup_gpu_yield()
        if self.is_main:
            save_config(config, self.run_folder.config_path)
        sampling = config.sampling
        num_micro_batches = sampling.prompts_per_iteration * sampling.group_size // sampling.batch_size
        check_processes_share_equally(num_micro_batches, self.accelerator.num_processes)
        if config.optim.optimizer_steps_per_iteration:
            split_windows(
                num_micro_batches // self.accelerator.num_processes,
                config.optim.optimizer_steps_per_iteration,
            )

    def _setup_pipeline(self) -> None:
        """The pipeline, its rollout adapter, and the trainable LoRA on its transformer."""
        config = self.config
        self.loaded = self._pipeline or self._load_pipeline()
        self.pipe = self.loaded.pipe
        kind = getattr(self.loaded, "kind", config.model.kind)
        if kind != config.model.kind:
            raise ConfigError(
                f"`model.kind` is {config.model.kind!r} but the pipeline at the path is {kind!r}"
            )
        self.transformer = self.pipe.transformer
        self.named_trainable = add_trainable_lora(
            self.transformer,
            config.lora,
            kind=config.model.kind,
            gradient_checkpointing=config.optim.gradient_checkpointing,
        )
        self.rollout_adapter: RolloutAdapter = build_rollout_adapter(
            config.model.kind,
            self.pipe,
            guidance_scale=config.sampling.guidance_scale,
            max_sequence_length=config.sampling.max_sequence_length,
            negative_prompt=config.sampling.negative_prompt,
            true_cfg=config.sampling.true_cfg,
        )

    def _setup_optimization(self) -> None:
        """AdamW on the LoRA (prepared by accelerate), the EMA and the PPO updater."""
        config = self.config
        optimizer = torch.optim.AdamW(
            [p for _, p in self.named_trainable],
            lr=config.optim.lr,
            betas=config.optim.betas,
            weight_decay=config.optim.weight_decay,
            eps=config.optim.eps,
        )
        self.train_model, self.optimizer = self.accelerator.prepare(self.transformer, optimizer)
        self.sharded = any(is_sharded(p) for p in self.train_model.parameters())
        if self.sharded:
            # FSDP2 shards the transformer in place (rollouts through self.transformer go through
            # its all-gathers) and replaces every parameter by a DTensor: take the new ones.
            if self.train_model is not self.transformer:
                raise TrainingError(
                    "FSDP wrapped the transformer in a new module: only FSDP2 (fully_shard) is supported"
                )
            self.named_trainable = [(n, p) for n, p in self.transformer.named_parameters() if p.requires_grad]
        self.ema = None
        if config.ema.use_ema:
            self.ema = LoraEma(
                self.named_trainable, max_decay=config.ema.max_decay, update_every=config.ema.update_every
            )
        self.updater = PolicyUpdater(
            config,
            rollout_adapter=self.rollout_adapter,
            transformer=self.transformer,
            train_model=self.train_model,
            optimizer=self.optimizer,
            named_trainable=self.named_trainable,
            accelerator=self.accelerator,
        )

    def _load_pipeline(self):
        from paco_core.models.pipelines import clear_pipeline_cache, open_pipeline

        model = self.config.model
        device = str(self.accelerator.device) if model.device == "auto" else model.device
        # The trainer adds its adapter to this pipeline, so it must be a fresh copy that no
        # other user of the loader's cache holds: forget the cache before and after loading.
        clear_pipeline_cache()
        loaded = open_pipeline(
            model.path or None,
            transformer_file=model.transformer_file or None,
            text_encoder_files=model.text_encoder_files,
            vae_file=model.vae_file or None,
            checkpoint_file=model.checkpoint_file or None,
            kind=model.kind,
            config_folder=model.config_folder or None,
            comfyui_dir=model.comfyui_dir or None,
            dtype=model.dtype,
            device=device,
        )
        clear_pipeline_cache()
        return loaded

    def _setup_data(self) -> None:
        config = self.config
        splits = load_splits(
            config.data.train_file,
            config.data.eval_file,
            eval_fraction=config.data.eval_fraction,
            seed=config.seed,
            image_root=config.data.image_root,
        )
        check_row_kinds(splits, kind=config.model.kind, wanted=family(config.model.kind).row_kind)
        check_held_out(splits, eval_file=config.data.eval_file)
        self.sampler = PromptSampler(splits.train, config.seed)
        limit = config.data.num_eval_prompts or len(splits.eval)
        self.eval_rows = splits.eval[:limit]
        if config.eval_every and not self.eval_rows:
            logger.warning(
                "eval_every=%d is ignored: there are no eval rows (set data.eval_file or data.eval_fraction > 0)",
                config.eval_every,
            )

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> TrainResult:
        config = self.config
        total = config.num_iterations
        self._progress("running")
        if self.step == 0 and self._eval_due(0):
            self._after_evaluation(0, self.evaluate(0))
        last: dict[str, Any] = {}
        while self.step < total:
            self._serve_requests()  # "sample now" / "save now" (docs/jobs.md): the run's result is unchanged
            # 0. give the GPU back while a pause is requested (gpu_policy yield); a stop while paused stops here
            if self._yield_gpu("between steps", collective=True) and self._should_stop():
                if (
                    self.last_checkpoint is None
                    or Checkpoint.from_path(self.last_checkpoint).step != self.step
                ):
                    self.save()
                self._progress("stopped", message="stopped on request while paused; checkpoint saved")
                return self._result("stopped", last)
            # 1. one iteration: rollouts, rewards, advantages, update
            started = time.perf_counter()
            paused_before = self.gpu_yield.paused_s if self.gpu_yield is not None else 0.0
            last = self.run_iteration(self.step)
            self.step += 1
            self.guardrail.add_train_reward(last.get(TRAIN_METRIC))
            # 2. the EMA of the LoRA (cadence "released": already applied inside the update)
            if (
                self.ema is not None
                and config.ema.cadence == "iteration"
                and self.ema.maybe_update(self.step)
            ):
                last["ema/decay"] = self.ema.decay(self.step)
            # 3. metrics, then evaluation when due
            paused = (self.gpu_yield.paused_s if self.gpu_yield is not None else 0.0) - paused_before
            last["time/step_s"] = (
                time.perf_counter() - started - paused
            )  # a pause inside the step is not its time
            if paused:
                last["time/paused_s"] = paused
            last["memory/peak_gb"] = peak_memory_gb(self.accelerator.device)
            self._log(self.step, last)
            if self._eval_due(self.step):
                self._after_evaluation(self.step, self.evaluate(self.step))
            # 4. checkpoint when due or stopping, then report
            stop = self._should_stop()
            if stop or self.step % config.checkpoint_every == 0 or self.step == total:
                self.save()
            self._progress("running")
            if stop:
                self._progress("stopped", message="stopped on request; checkpoint saved")
                return self._result("stopped", last)
        self._serve_requests()  # a request that came during the last step
        self._progress("finished")
        return self._result("finished", last)

    def _result(self, state: str, last: dict[str, Any]) -> TrainResult:
        return TrainResult(
            state,
            self.step,
            self.output_dir,
            self.last_checkpoint,
            last,
            process_index=self.accelerator.process_index,
            num_processes=self.accelerator.num_processes,
        )

    def _eval_due(self, step: int) -> bool:
        every = self.config.eval_every
        return bool(every and self.eval_rows and step % every == 0)

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
        # 1. rows and noise steps
        rows = self.sampler.next_rows(config.sampling.prompts_per_iteration)
        sde_steps = self.choose_sde_steps(step)
        # 2. rollouts of this process's micro-batches; with a judge server each one is
        #    scored in a worker thread while the next one rolls out
        started = time.perf_counter()
        with ThreadPoolExecutor(1, thread_name_prefix="paco-scoring") as scoring:
            pending: list[Future] = []
            overlap = self.overlaps_scoring()
            on_rollout = (
                (lambda r: pending.append(scoring.submit(score_micro_batch, r, self.rewards)))
                if overlap
                else None
            )
            rollouts = self.collect_rollouts(rows, step, sde_steps, on_rollout=on_rollout)
            rollout_s = time.perf_counter() - started
            # 3. rewards of the whole iteration (all processes)
            started = time.perf_counter()
            with self.reward_models.scoring_phase():  # the judge on the GPU only here (rewards.judge_offload)
                scores = score_rollouts(
                    rollouts,
                    self.rewards,
                    len(rows) * config.sampling.group_size,
                    self.accelerator,
                    scored=[future.result() for future in pending] if overlap else None,
                )
        invalid_share = check_invalid_share(scores, config.rewards.max_invalid_share)
        # 4. advantages within each prompt's group
        groups = np.repeat(np.arange(len(rows)), config.sampling.group_size)
        advantages = compute_advantages(
            scores.scores,
            self.rewards.weights,
            groups,
            aggregation=config.rewards.aggregation,
            threshold=config.rewards.log_tame_threshold,
            global_std=config.advantages.global_std,
            clip_max=config.advantages.adv_clip_max,
            tameable=self.tameable_rewards(),
            released_threshold=config.rewards.log_tame_released_threshold,
        )
        reward_s = time.perf_counter() - started
        teach_nothing = self._groups_that_teach_nothing(rows, scores.scores, groups)
        # 5. the PPO update
        started = time.perf_counter()
        ema_updates: list[float] = []
        update = self.updater.update(
            rollouts, advantages, step=step, after_micro_batch=self._released_ema_hook(ema_updates)
        )
        metrics = reward_metrics(
            scores,
            advantages,
            invalid_share,
            log_tamed=config.rewards.aggregation in ("log_tamed", "log_tamed_released"),
        )
        for name in scores.names:
            self.reward_history.setdefault(name, []).append(metrics[f"rewards/{name}/mean"])
        stats = group_stats(scores.scores, scores.names, config.sampling.group_size)
        self.prompt_rewards["train"].update(prompt_entries(rows, stats, step + 1))
        metrics.update(update)
        metrics.update(teach_nothing)
        if ema_updates:
            metrics.update({"ema/decay": ema_updates[-1], "ema/updates": len(ema_updates)})
        metrics.update(
            {
                "time/rollout_s": rollout_s,
                "time/reward_s": reward_s,
                "time/update_s": time.perf_counter() - started,
                "lr": self.optimizer.param_groups[0]["lr"],
                "sde_steps": list(sde_steps),
                "trained_steps": list(self.trained_steps(sde_steps)),
            }
        )
        return metrics

    def _groups_that_teach_nothing(
        self, rows: list[PromptRow], scores: np.ndarray, groups: np.ndarray
    ) -> dict:
        """Count the groups with no reward spread (``groups/zero_spread``); with
        ``data.drop_zero_spread_prompts`` their prompts are no longer sampled (rl/zero_spread.py)."""
        from paco_core.rl.zero_spread import zero_spread_groups

        data = self.config.data
        found = zero_spread_groups(scores, groups, tolerance=data.zero_spread_std)
        if data.drop_zero_spread_prompts and found:
            dropped = self.sampler.drop([rows[g] for g in found], keep_at_least=len(rows))
            if dropped:
                logger.info(
                    "dropped %d prompt(s) whose group taught nothing: %s",
                    len(dropped),
                    "; ".join(row.prompt[:50] for row in dropped),
                )
        return {"groups/zero_spread": len(found), "groups/dropped_prompts": len(self.sampler.dropped)}

    def tameable_rewards(self) -> np.ndarray | None:
        """Which of the training rewards log-taming may transform (None: all)."""
        names = self.config.rewards.log_tame_rewards
        return np.array([name in names for name in self.rewards.names]) if names else None

    def _released_ema_hook(self, applied: list[float]):
        """The per-micro-batch EMA of cadence "released" (None for cadence "iteration")."""
        if self.ema is None or self.config.ema.cadence != "released":
            return None
        ema = self.ema

        def after_micro_batch(optimizer_steps: int) -> None:
            if ema.maybe_update_released(optimizer_steps):
                applied.append(ema.decay(optimizer_steps))

        return after_micro_batch

    def choose_sde_steps(self, step: int) -> tuple[int, ...]:
        """The noise steps of this iteration: all, or a seeded random subset."""
        sampling = self.config.sampling
        count = sampling.num_noise_steps_per_iteration
        if not count or count >= len(sampling.noise_steps):
            return tuple(sampling.noise_steps)
        rng = np.random.default_rng([self.config.seed, step, 3])
        return tuple(sorted(int(s) for s in rng.choice(sampling.noise_steps, size=count, replace=False)))

    def trained_steps(self, sde_steps: tuple[int, ...]) -> tuple[int, ...]:
        """The steps of this iteration's SDE steps that the update trains (``sampling.trained_steps``)."""
        return tuple(s for s in sde_steps if s in self.config.sampling.trained_steps)

    def overlaps_scoring(self) -> bool:
        """Whether micro-batches are scored while the next ones roll out (a judge server, rewards.overlap_scoring)."""
        rewards = self.config.rewards
        return bool(rewards.overlap_scoring and rewards.judge_url)

    def collect_rollouts(
        self,
        rows: list[PromptRow],
        step: int,
        sde_steps: tuple[int, ...],
        on_rollout: Callable[[Rollout], None] | None = None,
    ) -> list[Rollout]:
        """Roll out this process's micro-batches of ``rows`` at the train resolution.

        ``on_rollout`` is called with each micro-batch as soon as it is done.
        """
        sampling = self.config.sampling
        rollouts: list[Rollout] = []
        encoded: dict[int, Any] = {}
        self.transformer.eval()
        plans = plan_micro_batches(len(rows), sampling.group_size, sampling.batch_size)
        for plan in plans_of_process(plans, self.accelerator.num_processes, self.accelerator.process_index):
            if rollouts:
                self._yield_gpu("between rollout micro-batches")
            row = rows[plan.group]
            height, width = rollout_size(
                row, sampling.train_resolution, sampling.reference_resolution, edit_size=sampling.edit_size
            )
            if plan.group not in encoded:
                encoded[plan.group] = self.rollout_adapter.encode(row, height, width)
            rollouts.append(
                rollout_micro_batch(
                    self.rollout_adapter,
                    self.transformer,
                    row,
                    group=plan.group,
                    sample_ids=plan.sample_ids,
                    height=height,
                    width=width,
                    num_steps=sampling.num_steps,
                    sde_steps=sde_steps,
                    trained_steps=self.trained_steps(sde_steps),
                    noise_level=sampling.noise_level,
                    generator=seeded_generator(self.config.seed, step, plan.index),
                    cond=encoded[plan.group],
                    autocast=self.autocast,
                )
            )
            if sampling.edit_size == "square" and row.kind == "edit":
                rollouts[-1].judge_original_size = (
                    width,
                    height,
                )  # the released judge sees the squashed original
            if on_rollout is not None:
                on_rollout(rollouts[-1])
        return rollouts

    def evaluate(self, step: int) -> dict[str, Any]:
        """Evaluate the EMA weights on the eval rows (see :func:`evaluate_policy`). Main process only
        (under FSDP the others run the same rollouts, whose all-gathers need every process)."""
        if not self.is_main:
            if self.sharded:
                evaluate_policy(
                    self.config,
                    rollout_adapter=self.rollout_adapter,
                    transformer=self.transformer,
                    rows=self.eval_rows,
                    rewards=None,
                    ema=self.ema,
                    autocast=self.autocast,
                    sample_path=None,
                )
            return {}
        scored: list = []
        metrics = evaluate_policy(
            self.config,
            rollout_adapter=self.rollout_adapter,
            transformer=self.transformer,
            rows=self.eval_rows,
            rewards=self.eval_rewards,
            ema=self.ema,
            autocast=self.autocast,
            sample_path=self.run_folder.sample_path(step),
            scoring_phase=self.reward_models.scoring_phase,
            image_metrics=self.sample_guardrail.metrics,
            between_rows=lambda: self._yield_gpu("between evaluation rows"),
            collect_scores=scored,
        )
        if scored:
            stats = group_stats(scored[0].scores, scored[0].names, self.config.eval_group_size)
            self.prompt_rewards["eval"].update(prompt_entries(self.eval_rows, stats, step))
        return metrics

    # ------------------------------------------------------------------ checkpoints

    def save(self) -> Path | None:
        """Write ``checkpoint-<step>`` (main process), prune old ones, sync processes.

        Every process returns (and reports as its last checkpoint) the folder the main
        process wrote: one set of checkpoints per run, on the main process's machine.
        """
        path = self.run_folder.checkpoint_path(self.step)
        if self.is_main or self.sharded:
            # under FSDP every process takes part in gathering the shards; the main one writes
            self._lora_weights = self._full_lora_weights() if self.sharded else None
            policy = {name: full_tensor(p.detach()).cpu() for name, p in self.named_trainable}
            ema = self.ema.state_dict() if self.ema is not None else None
            optimizer_state = full_optimizer_state(self.optimizer)
        if self.is_main:
            path = ckpt.save_checkpoint(
                self.output_dir,
                self.step,
                write_lora=self._write_lora,
                policy=policy,
                ema=ema,
                optimizer_state=optimizer_state,
                state=self._trainer_state(),
            )
            ckpt.prune_checkpoints(self.output_dir, self.config.checkpoints_total_limit, protect=path)
            logger.info("saved %s", path)
        self.last_checkpoint = path
        self.accelerator.wait_for_everyone()
        return path

    def _write_lora(self, path: Path) -> None:
        from paco_core.models.lora import save_peft_transformer_lora

        metadata = {
            "paco.step": str(self.step),
            "paco.trainer": "paco-grpo",
            "paco.ema": str(self.ema is not None),
        }
        if self.sharded:  # the full weights gathered by every process just before (save, evaluation)
            if self._lora_weights is None:
                raise TrainingError("internal: the sharded LoRA was not gathered before writing it")
            save_peft_transformer_lora(self.transformer, path, metadata=metadata, weights=self._lora_weights)
            self._lora_weights = None
            return
        with self.ema.swapped_in() if self.ema is not None else contextlib.nullcontext():
            save_peft_transformer_lora(self.transformer, path, metadata=metadata)

    def _full_lora_weights(self) -> dict[str, torch.Tensor]:
        """The LoRA file's weights (the EMA's when on) as full CPU tensors (collective under FSDP)."""
        with self.ema.swapped_in() if self.ema is not None else contextlib.nullcontext():
            return {name: full_tensor(p.detach()).cpu() for name, p in self.named_trainable}

    def _trainer_state(self) -> dict[str, Any]:
        return {
            "config": config_to_dict(self.config),
            "sampler": self.sampler.state_dict(),
            "reward_history": self.reward_history,
            "num_processes": self.accelerator.num_processes,
            "optimizer_steps": self.updater.optimizer_steps,
            "guardrail": self.guardrail.state_dict(),
            "sample_guardrail": self.sample_guardrail.state_dict(),
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
                param.copy_(shard_like(loaded.policy[name], param))
        load_full_optimizer_state(self.optimizer, loaded.optimizer)
        if self.ema is not None:
            if loaded.ema is None:
                raise TrainingError(f"checkpoint {str(path)!r} has no EMA but ema.use_ema is on")
            self.ema.load_state_dict(loaded.ema)
        self.sampler.load_state_dict(loaded.state["sampler"])
        self.reward_history = loaded.state.get("reward_history", {})
        self.updater.optimizer_steps = int(loaded.state.get("optimizer_steps", 0))
        self._load_guardrail(loaded.state.get("guardrail") or {}, loaded.step)
        self.sample_guardrail.load_state_dict(loaded.state.get("sample_guardrail") or {})
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
        if self.prompt_rewards["train"] or self.prompt_rewards["eval"]:
            run_requests.write_prompt_rewards(self.output_dir, self.prompt_rewards)
        self.run_folder.write_progress(
            state=state,
            step=self.step,
            total=self.config.num_iterations,
            last_checkpoint=str(self.last_checkpoint) if self.last_checkpoint else None,
            **self._progress_extras(),
            **extra,
        )

    def _progress_extras(self) -> dict[str, Any]:
        """What every progress record carries besides the state: the best checkpoint, the
        guardrail's warnings, the GPU policy and the pauses so far."""
        guardrail = self.guardrail
        best_lora = self.run_folder.best_lora_path
        extras: dict[str, Any] = {
            "best_metric": guardrail.metric,
            "best_step": guardrail.best_step,
            "best_value": guardrail.best_value,
            "best_lora": str(best_lora) if guardrail.best_step is not None and best_lora.is_file() else None,
            # the folder whose lora.safetensors is the best LoRA, as the job store reads it
            "best_checkpoint": str(self.run_folder.best_dir)
            if guardrail.best_step is not None and best_lora.is_file()
            else None,
            "warnings": guardrail.warnings,
            "gpu_policy": self.config.gpu_policy,
        }
        if self.gpu_yield is not None and self.gpu_yield.pauses:
            extras.update(
                pauses=self.gpu_yield.pauses,
                paused_s=round(self.gpu_yield.paused_s, 3),
                last_pause_latency_s=self.gpu_yield.last_latency_s,
            )
        return extras

    # ------------------------------------------------------------------ GPU yield (docs/gpu-sharing.md)

    def _setup_gpu_yield(self) -> None:
        config = self.config
        offload = config.yield_offload
        if offload and self.accelerator.num_processes > 1:
            logger.warning(
                "yield_offload is ignored with several processes: paused processes keep their weights"
            )
            offload = False
        self.gpu_yield = GpuYield(
            self.run_folder,
            policy=config.gpu_policy,
            offload=offload,
            device=self.accelerator.device,
            report=self._progress,
            stop_requested=self._stop_requested_locally,
            modules=self._offload_modules,
            tensor_dicts=self._offload_tensor_dicts,
        )

    def _yield_gpu(self, where: str, *, collective: bool = False) -> bool:
        """Pause here while a pause is requested; returns whether it paused. ``collective``:
        every process pauses when any sees a request (at the step boundary, so no process
        enters the next step's collectives alone; one all-reduce per step, only under ``yield``)."""
        if self.gpu_yield is None:
            return False
        wanted = self.gpu_yield.wanted()
        if collective and self.config.gpu_policy == "yield" and self.accelerator.num_processes > 1:
            flag = torch.tensor([1.0 if wanted else 0.0], device=self.accelerator.device)
            wanted = bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)
        return self.gpu_yield.pause(where) if wanted else False

    def _stop_requested_locally(self) -> bool:
        """SIGTERM or the host's cancel hook, without talking to the other processes (used while paused)."""
        if not self._stop_requested:
            try:
                self.hooks.check_cancel()
            except Exception:  # noqa: BLE001 - CancelledError or a host's own interrupt exception
                self._stop_requested = True
        return self._stop_requested

    def _offload_modules(self) -> list[Any]:
        modules = [c for c in getattr(self.pipe, "components", {}).values() if isinstance(c, torch.nn.Module)]
        models = getattr(self, "reward_models", None)
        for name in ("_judge", "_clip", "_pick"):
            holder = getattr(models, name, None)
            if isinstance(getattr(holder, "model", None), torch.nn.Module):
                modules.append(holder.model)
        return modules

    def _offload_tensor_dicts(self) -> list[dict[Any, Any]]:
        found: list[dict[Any, Any]] = [self.optimizer.state]
        if self.ema is not None:
            found.append(self.ema.shadow)
        return found

    # ------------------------------------------------------------------ the best checkpoint and the guardrail

    def _serve_requests(self) -> None:
        """Do what "sample now" / "save now" asked (:mod:`paco_core.run_requests`), at a step
        boundary. The run's result does not change: the sample has its own seeded generators
        and the global RNG states are put back after it; the save is the usual checkpoint."""
        requests = run_requests.take_requests(self.output_dir) if self.is_main else []
        if self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            holder = [requests]
            broadcast_object_list(holder, from_process=0)
            requests = holder[0]
        for request in requests:
            if request["kind"] == "save":
                if (
                    self.last_checkpoint is None
                    or Checkpoint.from_path(self.last_checkpoint).step != self.step
                ):
                    self.save()
                if self.is_main:
                    from paco_core.io import atomic_write_json
                    from paco_core.run_folder.layout import KEPT_FILE

                    atomic_write_json(
                        Path(self.last_checkpoint) / KEPT_FILE, {"reason": "save now", "step": self.step}
                    )
                    run_requests.write_done(
                        self.output_dir, "save", step=self.step, path=str(self.last_checkpoint)
                    )
            else:
                self._sample_now(request)

    def _sample_now(self, request: dict[str, Any]) -> None:
        try:
            rows = requested_rows(request, self.eval_rows, self.sampler.rows)
        except InputError as error:  # a row that does not parse
            logger.warning("sample request ignored: %s", error)
            if self.is_main:
                run_requests.write_done(self.output_dir, "sample", step=self.step, error=str(error))
            return
        path = run_requests.requested_sample_path(self.output_dir, self.step)
        images: list = []
        rng_tensors, rng_meta = ckpt.capture_rng_state()
        try:
            if self.is_main or self.sharded:
                evaluate_policy(
                    self.config,
                    rollout_adapter=self.rollout_adapter,
                    transformer=self.transformer,
                    rows=rows,
                    rewards=None,
                    ema=self.ema,
                    autocast=self.autocast,
                    sample_path=None,
                    collect_images=images,
                )
        finally:
            ckpt.restore_rng_state(rng_tensors, rng_meta)
        if self.is_main:
            from paco_core.io import atomic_write
            from paco_core.rl.evaluation import sample_grid

            path.parent.mkdir(parents=True, exist_ok=True)
            grid = sample_grid(images)
            atomic_write(path, lambda tmp: grid.save(tmp, format="PNG"))
            run_requests.write_done(
                self.output_dir,
                "sample",
                step=self.step,
                path=str(path),
                prompts=[row.prompt for row in rows],
            )
            logger.info("sample requested at step %d: %s", self.step, path)

    def _after_evaluation(self, step: int, metrics: dict[str, Any]) -> None:
        """Log the evaluation, keep the best one's LoRA in ``best/`` and warn when the reward
        looks gamed (docs/guardrail.md)."""
        self._log(step, metrics)
        if self.sharded:  # best/ may get the LoRA below: gather it on every process (a collective) first
            self._lora_weights = self._full_lora_weights()
        if not self.is_main or self.guardrail.metric not in metrics:
            return
        improved, warning = self.guardrail.observe(step, metrics)
        if improved:
            self._write_best(step)
        fired = [warning] if warning is not None else []
        for image_warning in self.sample_guardrail.observe(step, metrics):
            self._record_warning(image_warning)
            fired.append(image_warning)
        for each in fired:
            logger.warning("guardrail (step %d): %s", step, each["message"])
        if fired and self.config.guardrail_action != "warn":
            self._act_on_warnings(step, fired)

    def _record_warning(self, warning: dict[str, Any]) -> None:
        """Add an image-check warning to the guardrail's list (a check that fires again updates its own)."""
        warnings = self.guardrail.warnings
        for number, earlier in enumerate(warnings):
            if earlier["code"] == warning["code"]:
                warnings[number] = warning
                return
        warnings.append(warning)

    def _act_on_warnings(self, step: int, warnings: list[dict[str, Any]]) -> None:
        """``guardrail_action`` stop: stop after this step (checkpoint saved); rollback: the LoRA, its
        EMA and optimizer go back to the best evaluation's checkpoint (stop when it is gone)."""
        from paco_core.rl.guardrail_rollback import roll_back_to_best

        action = self.config.guardrail_action
        taken = roll_back_to_best(self) if action == "rollback" else None
        if taken is None:
            taken = "stopped"
            logger.warning("guardrail_action %s: stopping at step %d (%s)", action, step, warnings[0]["code"])
            self._stop_requested = True
        for warning in warnings:
            warning["action"] = taken

    def _write_best(self, step: int) -> None:
        best = self.run_folder.best_dir
        best.mkdir(parents=True, exist_ok=True)
        lora = self.run_folder.best_lora_path
        self._write_lora(lora)  # written atomically (a temporary file renamed over the old best)
        self.run_folder.write_best_info(
            {
                "metric": self.guardrail.metric,
                "mode": self.guardrail.mode,
                "value": self.guardrail.best_value,
                "step": step,
                "lora": str(lora),
            }
        )
        logger.info(
            "best %s so far: %.4g at step %d (saved in %s)",
            self.guardrail.metric,
            self.guardrail.best_value,
            step,
            best,
        )

    def _load_guardrail(self, state: dict[str, Any], step: int) -> None:
        """Restore the guardrail, and make ``best/`` hold the LoRA of the restored best step: a run
        that crashed after an evaluation but before its next checkpoint may have left a newer one."""
        guardrail = self.guardrail
        if state and not guardrail.load_state_dict(state):
            logger.info(
                "the checkpoint's best checkpoint followed %s (%s); this run follows %s (%s): starting afresh",
                state.get("metric"),
                state.get("mode"),
                guardrail.metric,
                guardrail.mode,
            )
        if not self.is_main:
            return
        run = self.run_folder
        on_disk = run.read_best()
        if on_disk.get("step") == guardrail.best_step and on_disk.get("metric") == guardrail.metric:
            return
        import shutil

        source = run.checkpoint(guardrail.best_step) if guardrail.best_step is not None else None
        if source is not None and source.lora_path.is_file():
            # a checkpoint's LoRA is the same file best/ held for its step (both the EMA weights)
            from paco_core.io import atomic_write

            run.best_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(run.best_lora_path, lambda tmp: shutil.copyfile(source.lora_path, tmp))
            run.write_best_info(
                {
                    "metric": guardrail.metric,
                    "mode": guardrail.mode,
                    "value": guardrail.best_value,
                    "step": guardrail.best_step,
                    "lora": str(run.best_lora_path),
                }
            )
            logger.info("best/ restored from %s (step %d)", source.path.name, guardrail.best_step)
            return
        if run.best_dir.exists():
            shutil.rmtree(run.best_dir, ignore_errors=True)
        if guardrail.best_step is not None:
            logger.warning(
                "the best LoRA of step %d is no longer on disk: best/ starts again at the next evaluation",
                guardrail.best_step,
            )
            guardrail.best_step = guardrail.best_value = None


def check_distributed_type(distributed_type: Any, fsdp_version: int | None = None) -> None:
    """Refuse accelerate launch modes the trainer does not support (FSDP1, DeepSpeed, Megatron).

    The trainer rolls out through the transformer module itself and gathers its LoRA, EMA
    and optimizer state parameter by parameter: DDP, one process and FSDP2 (``fully_shard``,
    which shards the module in place into DTensor parameters) keep both possible. FSDP1
    wraps the model in flat parameters, DeepSpeed in its engine: untested, refused up front
    rather than failing at the first checkpoint.
    """
    name = getattr(distributed_type, "value", str(distributed_type))
    if name == "FSDP" and fsdp_version != 2:
        raise ConfigError(
            f"accelerate launched this run with FSDP version {fsdp_version}; the trainer supports FSDP only "
            "as version 2: set `fsdp_version: 2` in the accelerate config (docs/accelerate/fsdp.yaml) or launch "
            "with DDP (docs/accelerate/multi-gpu.yaml)"
        )
    if name in ("DEEPSPEED", "MEGATRON_LM"):
        raise ConfigError(
            f"accelerate launched this run with {name}, which the trainer does not support: only the LoRA "
            "trains, so launch with DDP (`accelerate launch --multi_gpu`, docs/accelerate/multi-gpu.yaml) or "
            "FSDP version 2 (docs/accelerate/fsdp.yaml), and lower the memory with optim.gradient_checkpointing "
            "(docs/scaling.md)"
        )


def check_device_available(device: str) -> None:
    """Raise ConfigError when ``device`` names a CUDA GPU this machine does not have."""
    if not device.startswith("cuda"):
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    if count == 0:
        raise ConfigError(
            f"`model.device` is {device!r} but this machine has no usable CUDA GPU "
            "(torch.cuda.is_available() is False): use `cpu` or `auto`"
        )
    if index >= count:
        raise ConfigError(
            f"`model.device` is {device!r} but this machine has {count} CUDA GPU(s): use cuda:0 to cuda:{count - 1}"
        )


def train(
    config: TrainConfig, *, resume: str | None = None, overwrite: bool = False, hooks: Hooks = NO_HOOKS
) -> TrainResult:
    """Run a training config to the end (or until stopped). See :class:`GrpoTrainer`."""
    return GrpoTrainer(config, hooks=hooks).train(resume=resume, overwrite=overwrite)
