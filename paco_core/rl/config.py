"""The PaCo-GRPO training config: one dataclass per component, validated on construction.

A whole run is described by :class:`TrainConfig` (JSON via :mod:`paco_core.config`).
Defaults follow the paper's T2IS setting on FLUX.1-dev (see :mod:`paco_core.rl.presets`
for the three released settings). Every bad value raises
:class:`~paco_core.errors.ConfigError` naming the key, the value and the fix.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Literal

from paco_core.config import (
    check_choice,
    check_number_fits,
    check_positive,
    check_range,
    config_from_dict,
    literal_choices,
)
from paco_core.devices import Dtype
from paco_core.errors import ConfigError
from paco_core.families import DEFAULT_KIND, architectures, family, trainable_kinds
from paco_core.families.flux import DUAL_STREAM_ATTENTION_TARGETS
from paco_core.reward.judge_client import is_server_url

Aggregation = Literal["weighted_sum", "log_tamed", "log_tamed_released", "geometric_mean", "advantage_sum"]

ATTENTION_TARGETS: tuple[str, ...] = DUAL_STREAM_ATTENTION_TARGETS
"""The attention projections of a dual-stream block (FLUX and Qwen-Image use the same names)."""
LORA_TARGETS: dict[str, tuple[str, ...]] = {item.name: item.lora_targets for item in architectures()}
"""LoRA target modules per transformer architecture (declared by the families, ``paco_core.families``)."""

BUILTIN_REWARDS = ("consistency", "edit", "clip_t", "pickscore", "reference")
JUDGE_REWARDS = ("consistency", "edit", "reference")
"""The built-in rewards that ask the PaCo-Reward judge."""


def default_lora_targets(kind: str) -> tuple[str, ...]:
    """The paper's LoRA target modules for a pipeline kind (by its transformer architecture)."""
    return family(kind).architecture.lora_targets


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class ModelConfig:
    kind: str = field(
        default=DEFAULT_KIND,
        metadata={
            **_help("pipeline kind of the base model (a model family training supports)"),
            "choices": trainable_kinds(),
        },
    )
    path: str = field(
        default="", metadata=_help("diffusers pipeline folder (or HF id / ComfyUI name the loader resolves)")
    )
    dtype: Dtype = field(
        default="auto",
        metadata=_help("weights dtype: auto (bf16 on a GPU, fp32 on the CPU), bf16, fp16 or fp32"),
    )
    device: str = field(
        default="auto", metadata=_help("auto (CUDA if present, else CPU), cpu, cuda or cuda:N")
    )
    transformer_file: str = field(
        default="",
        metadata=_help(
            "ComfyUI diffusion model file (models/diffusion_models) used without `path`; with `path`: "
            "a FLUX transformer replacing the folder's"
        ),
    )
    text_encoder_files: tuple[str, ...] = field(
        default=(),
        metadata=_help("ComfyUI text encoder files (clip_l + t5xxl, or qwen_2.5_vl_7b), without `path`"),
    )
    vae_file: str = field(
        default="", metadata=_help("ComfyUI VAE file (ae / qwen_image_vae), without `path`")
    )
    checkpoint_file: str = field(
        default="", metadata=_help("ComfyUI all-in-one checkpoint (models/checkpoints), without `path`")
    )
    config_folder: str = field(
        default="",
        metadata=_help("config folder for ComfyUI files of another size (default: the shipped one)"),
    )
    comfyui_dir: str = field(
        default="", metadata=_help("ComfyUI folder whose tokenizers ComfyUI files use (shipped configs)")
    )

    def __post_init__(self) -> None:
        self.text_encoder_files = tuple(self.text_encoder_files)
        check_choice("model.kind", self.kind, trainable_kinds())
        split = [
            name for name in ("text_encoder_files", "vae_file", "checkpoint_file") if getattr(self, name)
        ]
        if self.path and split:
            raise ConfigError(
                f"`model.path` and `model.{split[0]}` both set: give the diffusers folder or ComfyUI's files, not both"
            )
        check_choice("model.dtype", self.dtype, literal_choices(ModelConfig, "dtype"))
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"`model.device` should be auto, cpu, cuda or cuda:N, got {self.device!r}")


@dataclass
class LoraConfig:
    rank: int = field(default=64, metadata=_help("LoRA rank r"))
    alpha: float = field(default=128.0, metadata=_help("LoRA alpha (scale alpha / r)"))
    init: Literal["gaussian", "default"] = field(
        default="gaussian", metadata=_help("peft init: gaussian A, zero B (the paper) or peft's default")
    )
    target_modules: tuple[str, ...] = field(
        default=(),
        metadata=_help("module name suffixes to adapt; empty = the paper's list for the architecture"),
    )

    def __post_init__(self) -> None:
        check_positive("lora.rank", self.rank)
        check_positive("lora.alpha", self.alpha)
        check_choice("lora.init", self.init, literal_choices(LoraConfig, "init"))
        self.target_modules = tuple(self.target_modules)


@dataclass
class SamplingConfig:
    num_steps: int = field(default=10, metadata=_help("sampling steps per rollout"))
    noise_steps: tuple[int, ...] = field(
        default=(1,), metadata=_help("step indices where the SDE step is taken and trained (0-based)")
    )
    trained_steps: tuple[int, ...] = field(
        default=(),
        metadata=_help(
            "the noise steps the update trains on (a subset of noise_steps); empty = every noise step. The "
            "released Qwen-Image-Edit run samples with noise at [1, 2, 3, 4] but trains only [1]"
        ),
    )
    num_noise_steps_per_iteration: int = field(
        default=0, metadata=_help("train a random subset of this many noise steps each iteration; 0 = all")
    )
    noise_level: float = field(default=0.7, metadata=_help("SDE noise level a (std_t = a*sqrt(s/(1-s)))"))
    guidance_scale: float = field(default=3.5, metadata=_help("FLUX guidance / Qwen true-CFG scale"))
    negative_prompt: str = field(
        default=" ", metadata=_help("negative prompt for true CFG (Qwen-Image-Edit)")
    )
    true_cfg: bool = field(
        default=True,
        metadata=_help(
            "Qwen-Image-Edit: true CFG with negative_prompt when guidance_scale > 1; false = no negative "
            "prompt, one transformer call per step (the released run)"
        ),
    )
    train_resolution: int = field(
        default=512,
        metadata=_help(
            "rollout/training size: row sizes x train_resolution / reference_resolution; a set row "
            "without a size: about train_resolution square, split into its layout's panels of 16-pixel "
            "multiples (1x3 at 512: 512 x 528)"
        ),
    )
    eval_resolution: int = field(default=1024, metadata=_help("evaluation size, scaled the same way"))
    reference_resolution: int = field(
        default=1024, metadata=_help("resolution the rows' height/width are given at (scaled to the above)")
    )
    edit_size: Literal["aspect", "square"] = field(
        default="aspect",
        metadata=_help(
            "edit rows without a size: aspect = the original's aspect ratio at resolution^2 area, judged against "
            "the original at its own size; square = resolution x resolution with the original squashed to it, "
            "and in training the judge sees the squashed original (the released edit trainers)"
        ),
    )
    group_size: int = field(default=16, metadata=_help("G: images per prompt (one advantage group)"))
    prompts_per_iteration: int = field(default=2, metadata=_help("prompts (groups) sampled per iteration"))
    batch_size: int = field(
        default=4, metadata=_help("images per transformer call, in rollouts and in updates (micro-batch)")
    )
    max_sequence_length: int = field(default=512, metadata=_help("text tokens for the T5 / Qwen encoder"))
    eval_num_steps: int = field(
        default=0, metadata=_help("sampling steps at evaluation; 0 = num_steps (the released runs: 20)")
    )

    def __post_init__(self) -> None:
        for name in ("num_steps", "group_size", "prompts_per_iteration", "batch_size"):
            check_positive(f"sampling.{name}", getattr(self, name))
        check_positive("sampling.eval_num_steps", self.eval_num_steps, allow_zero=True)
        for name in ("train_resolution", "eval_resolution", "reference_resolution"):
            value = getattr(self, name)
            check_positive(f"sampling.{name}", value)
            if value % 16:
                raise ConfigError(
                    f"`sampling.{name}` should be a multiple of 16 (VAE x packing), got {value}"
                )
        self.noise_steps = tuple(int(s) for s in self.noise_steps)
        if not self.noise_steps:
            raise ConfigError("`sampling.noise_steps` is empty: name at least one step index, e.g. [1]")
        bad = [s for s in self.noise_steps if not 0 <= s < self.num_steps]
        if bad:
            raise ConfigError(
                f"`sampling.noise_steps` {list(self.noise_steps)} has indices outside 0..{self.num_steps - 1} "
                f"(num_steps={self.num_steps}): {bad}"
            )
        if len(set(self.noise_steps)) != len(self.noise_steps):
            raise ConfigError(f"`sampling.noise_steps` repeats an index: {list(self.noise_steps)}")
        self.trained_steps = tuple(int(s) for s in self.trained_steps) or self.noise_steps
        untrainable = [s for s in self.trained_steps if s not in self.noise_steps]
        if untrainable:
            raise ConfigError(
                f"`sampling.trained_steps` {list(self.trained_steps)} names steps that are not noise steps "
                f"{list(self.noise_steps)}: {untrainable}; only SDE steps have a log-probability to train on"
            )
        if self.num_noise_steps_per_iteration and set(self.trained_steps) != set(self.noise_steps):
            raise ConfigError(
                "`sampling.num_noise_steps_per_iteration` draws random noise steps, which may miss "
                f"`sampling.trained_steps` {list(self.trained_steps)}: set one of them to its default (0 / empty)"
            )
        check_choice("sampling.edit_size", self.edit_size, literal_choices(SamplingConfig, "edit_size"))
        check_range(
            "sampling.num_noise_steps_per_iteration",
            self.num_noise_steps_per_iteration,
            0,
            len(self.noise_steps),
        )
        check_positive("sampling.noise_level", self.noise_level)
        check_positive("sampling.guidance_scale", self.guidance_scale, allow_zero=True)
        if self.group_size < 2:
            raise ConfigError(
                f"`sampling.group_size` should be at least 2 (advantages compare images of one prompt), got {self.group_size}"
            )
        if self.group_size % self.batch_size:
            raise ConfigError(
                f"`sampling.group_size` ({self.group_size}) should be a multiple of `sampling.batch_size` "
                f"({self.batch_size}) so every micro-batch holds images of one prompt"
            )


@dataclass
class DataConfig:
    train_file: str = field(default="", metadata=_help("JSONL prompt rows (set rows or edit rows)"))
    eval_file: str = field(default="", metadata=_help("JSONL eval rows; empty = split from train_file"))
    eval_fraction: float = field(
        default=0.1, metadata=_help("share of train_file held out when no eval_file")
    )
    image_root: str = field(
        default="", metadata=_help("folder edit-row image paths are relative to (default: the file's)")
    )
    num_eval_prompts: int = field(default=4, metadata=_help("eval rows used at each evaluation (0 = all)"))
    drop_zero_spread_prompts: bool = field(
        default=False,
        metadata=_help(
            "stop sampling a prompt once its group's rewards had no spread (no gradient, a wasted rollout); "
            "other prompts take its place. Off in the released presets"
        ),
    )
    zero_spread_std: float = field(
        default=1e-4,
        metadata=_help("a group teaches nothing when every reward's std within it is at most this"),
    )

    def __post_init__(self) -> None:
        check_range("data.eval_fraction", self.eval_fraction, 0.0, 0.9)
        check_positive("data.num_eval_prompts", self.num_eval_prompts, allow_zero=True)
        check_positive("data.zero_spread_std", self.zero_spread_std, allow_zero=True)


@dataclass
class RewardSpec:
    name: str = field(
        default="consistency",
        metadata=_help(f"{', '.join(BUILTIN_REWARDS)} or module:function (module.py in a reward folder)"),
    )
    weight: float = field(default=1.0, metadata=_help("weight in the aggregation"))

    def __post_init__(self) -> None:
        if self.name not in BUILTIN_REWARDS and ":" not in self.name:
            raise ConfigError(
                f"reward name {self.name!r} is neither a built-in ({', '.join(BUILTIN_REWARDS)}) nor "
                "`module:function` (a function taking images, prompts, metadata and returning one score per image)"
            )
        if (
            not isinstance(self.weight, (int, float))
            or isinstance(self.weight, bool)
            or not math.isfinite(self.weight)
            or self.weight < 0
        ):
            raise ConfigError(
                f"reward {self.name!r}: `weight` should be zero or positive and finite, got {self.weight!r}"
            )


@dataclass
class RewardConfig:
    rewards: tuple[RewardSpec, ...] = field(
        default=(RewardSpec("consistency", 0.2), RewardSpec("clip_t", 1.0), RewardSpec("pickscore", 1.0)),
        metadata=_help("rewards by name with weights"),
    )
    eval_rewards: tuple[RewardSpec, ...] = field(
        default=(), metadata=_help("rewards at evaluation; empty = rewards")
    )
    aggregation: Aggregation = field(
        default="log_tamed",
        metadata=_help(
            "weighted_sum, log_tamed, log_tamed_released (the released log_tame_aggregate_fn: no per-prompt "
            "normalisation), geometric_mean or advantage_sum"
        ),
    )
    log_tame_threshold: float = field(
        default=0.2,
        metadata=_help("log-taming threshold delta on std/mean; 0 = the mean of the rewards' ratios"),
    )
    log_tame_rewards: tuple[str, ...] = field(
        default=(),
        metadata=_help("names of the rewards log-taming may transform; empty = every reward"),
    )
    log_tame_released_threshold: float | str = field(
        default="mean",
        metadata=_help(
            "with aggregation log_tamed_released: the threshold on h = std / (mean + 1e-6): mean or median of "
            "the rewards' h (the released log_tame_aggregate_fn, default mean) or a number"
        ),
    )
    max_invalid_share: float = field(
        default=0.25,
        metadata=_help("stop the run when more than this share of an iteration's images is unscorable"),
    )
    judge_path: str = field(
        default="",
        metadata=_help(
            "PaCo-Reward judge folder or hub id, loaded in the training process (consistency, edit rewards)"
        ),
    )
    judge_url: str = field(
        default="",
        metadata=_help(
            "instead of judge_path: an OpenAI-compatible judge server (vllm serve, paco serve-judge), "
            "e.g. http://127.0.0.1:8000"
        ),
    )
    judge_server_model: str = field(
        default="", metadata=_help("with judge_url: the served model name; empty = the server's first")
    )
    judge_top_logprobs: int = field(
        default=20,
        metadata=_help("with judge_url: log-probabilities asked per answer token (vLLM allows 20)"),
    )
    judge_offload: bool = field(
        default=False,
        metadata=_help(
            "with judge_path: keep the judge in CPU memory during rollouts and updates, on the GPU only while "
            "scoring (one GPU shared by policy and judge)"
        ),
    )
    overlap_scoring: bool = field(
        default=True,
        metadata=_help(
            "with judge_url: score each micro-batch in a worker thread while the next one rolls out (same "
            "rewards as scoring after the rollouts)"
        ),
    )
    clip_path: str = field(
        default="", metadata=_help("CLIP folder for clip_t (the paper: CLIP-ViT-H-14-laion2B-s32B-b79K)")
    )
    pickscore_path: str = field(
        default="",
        metadata=_help("PickScore folder for pickscore (yuvalkirstain/PickScore_v1); never clip_path"),
    )
    references: tuple[str, ...] = field(
        default=(),
        metadata=_help(
            "reference image files for the reference reward (each panel vs each reference, judged; the mean); "
            "any size and mode"
        ),
    )
    judge_theme: Literal["preamble", "theme"] = field(
        default="preamble",
        metadata=_help(
            "the theme the consistency judge sees: preamble = the grid prompt's text before the first "
            "panel tag (the released PaCo-GRPO code); theme = the row's theme field"
        ),
    )

    def __post_init__(self) -> None:
        self.rewards = tuple(
            r if isinstance(r, RewardSpec) else config_from_dict(RewardSpec, r) for r in self.rewards
        )
        self.eval_rewards = tuple(
            r if isinstance(r, RewardSpec) else config_from_dict(RewardSpec, r) for r in self.eval_rewards
        )
        if not self.rewards:
            raise ConfigError(
                "`rewards.rewards` is empty: give at least one reward, e.g. [{'name': 'consistency'}]"
            )
        names = [r.name for r in self.rewards]
        if len(set(names)) != len(names):
            raise ConfigError(f"`rewards.rewards` names a reward twice: {names}")
        if sum(r.weight for r in self.rewards) <= 0:
            raise ConfigError(
                f"`rewards.rewards` weights sum to 0: {[(r.name, r.weight) for r in self.rewards]}"
            )
        self.references = tuple(str(path) for path in self.references)
        uses_reference = "reference" in names + [r.name for r in self.eval_rewards]
        if uses_reference and not self.references:
            raise ConfigError(
                "reward reference needs reference images: set `rewards.references` to one or more image files "
                "(PaCo Train LoRA: connect the references input)"
            )
        check_choice("rewards.aggregation", self.aggregation, literal_choices(RewardConfig, "aggregation"))
        check_choice("rewards.judge_theme", self.judge_theme, literal_choices(RewardConfig, "judge_theme"))
        check_positive("rewards.log_tame_threshold", self.log_tame_threshold, allow_zero=True)
        if self.aggregation == "log_tamed_released" and self.log_tame_rewards:
            raise ConfigError(
                "`rewards.log_tame_rewards` limits our log_tamed aggregation; the released function "
                "(log_tamed_released) may tame every reward: empty the list or use aggregation log_tamed"
            )
        threshold = self.log_tame_released_threshold
        if isinstance(threshold, str) and threshold not in ("mean", "median"):
            raise ConfigError(
                f"`rewards.log_tame_released_threshold` should be mean, median or a number, got {threshold!r}"
            )
        if not isinstance(threshold, (str, int, float)) or isinstance(threshold, bool):
            raise ConfigError(
                f"`rewards.log_tame_released_threshold` should be mean, median or a number, got {threshold!r}"
            )
        self.log_tame_rewards = tuple(self.log_tame_rewards)
        unknown = sorted(set(self.log_tame_rewards) - set(names))
        if unknown:
            raise ConfigError(
                f"`rewards.log_tame_rewards` names {unknown}, which are not among `rewards.rewards` {names}"
            )
        check_range("rewards.max_invalid_share", self.max_invalid_share, 0.0, 1.0)
        check_positive("rewards.judge_top_logprobs", self.judge_top_logprobs)
        if self.judge_url and self.judge_path:
            raise ConfigError(
                f"`rewards.judge_path` ({self.judge_path!r}) and `rewards.judge_url` ({self.judge_url!r}) are both "
                "set: keep the one judge the rewards should use"
            )
        if self.judge_url and not is_server_url(self.judge_url):
            raise ConfigError(
                f"`rewards.judge_url` should start with http:// or https://, got {self.judge_url!r}"
            )
        if is_server_url(self.judge_path):
            raise ConfigError(
                f"`rewards.judge_path` is a server URL ({self.judge_path!r}): put it in `rewards.judge_url`"
            )

    @property
    def evaluation(self) -> tuple[RewardSpec, ...]:
        return self.eval_rewards or self.rewards


@dataclass
class AdvantageConfig:
    global_std: bool = field(
        default=False, metadata=_help("divide by the batch std instead of each group's std")
    )
    adv_clip_max: float = field(default=5.0, metadata=_help("advantages are clipped to +-this"))

    def __post_init__(self) -> None:
        check_positive("advantages.adv_clip_max", self.adv_clip_max)


@dataclass
class OptimConfig:
    lr: float = field(default=3e-4, metadata=_help("AdamW learning rate"))
    betas: tuple[float, float] = field(default=(0.9, 0.999), metadata=_help("AdamW betas"))
    weight_decay: float = field(default=1e-4, metadata=_help("AdamW weight decay"))
    eps: float = field(default=1e-8, metadata=_help("AdamW epsilon"))
    max_grad_norm: float = field(default=1.0, metadata=_help("gradient-norm clip; 0 = off"))
    gradient_accumulation_steps: int = field(
        default=1,
        metadata=_help(
            "micro-batches per optimizer step; each step averages the micro-batches it holds "
            "(an iteration's last step may hold fewer)"
        ),
    )
    optimizer_steps_per_iteration: int = field(
        default=0,
        metadata=_help(
            "split each pass over the iteration's micro-batches into this many accumulation windows, one "
            "optimizer step each (the released runs: 2); 0 = windows of gradient_accumulation_steps"
        ),
    )
    num_inner_epochs: int = field(default=1, metadata=_help("passes over each iteration's samples"))
    clip_range: float = field(default=1e-4, metadata=_help("PPO clip eps on the ratio"))
    kl_beta: float = field(
        default=0.0, metadata=_help("weight of the KL to the reference (adapter off); 0 = off")
    )
    kl_form: Literal["flow_grpo", "exact"] = field(
        default="flow_grpo",
        metadata=_help(
            "flow_grpo: ||mean - mean_ref||^2 / (2 std_t^2) as Flow-GRPO and PaCo-GRPO compute it (their beta "
            "values mean the same here); exact: the Gaussian KL of the SDE step, the same divided by -dt"
        ),
    )
    gradient_checkpointing: bool = field(default=False, metadata=_help("recompute activations in backward"))
    mixed_precision: Literal["auto", "no", "bf16"] = field(
        default="auto", metadata=_help("bf16 autocast; auto = bf16 on CUDA, none on CPU")
    )
    allow_tf32: bool = field(
        default=False,
        metadata=_help(
            "on CUDA: let fp32 matmuls use TF32 (torch.backends.cuda.matmul.allow_tf32, as the released runs; "
            "faster on Ampere and newer, 10-bit mantissa); no effect on the CPU"
        ),
    )
    old_log_prob: Literal["rollout", "recompute"] = field(
        default="rollout",
        metadata=_help(
            "the PPO ratio's old log-prob: rollout = stored while sampling (Flow-GRPO); recompute = computed at "
            "update time through a frozen copy of the LoRA taken at the start of the update, on the update's own "
            "code path, so the first ratio is exactly 1 (the released PaCo-GRPO; one more forward per step)"
        ),
    )

    def __post_init__(self) -> None:
        check_positive("optim.lr", self.lr)
        self.betas = tuple(float(b) for b in self.betas)
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"`optim.betas` should be two numbers in [0, 1), got {list(self.betas)}")
        check_positive("optim.weight_decay", self.weight_decay, allow_zero=True)
        check_positive("optim.eps", self.eps)
        check_positive("optim.max_grad_norm", self.max_grad_norm, allow_zero=True)
        check_positive("optim.gradient_accumulation_steps", self.gradient_accumulation_steps)
        check_positive("optim.num_inner_epochs", self.num_inner_epochs)
        check_positive("optim.clip_range", self.clip_range)
        check_positive("optim.kl_beta", self.kl_beta, allow_zero=True)
        check_positive(
            "optim.optimizer_steps_per_iteration", self.optimizer_steps_per_iteration, allow_zero=True
        )
        check_choice("optim.kl_form", self.kl_form, literal_choices(OptimConfig, "kl_form"))
        check_choice(
            "optim.mixed_precision", self.mixed_precision, literal_choices(OptimConfig, "mixed_precision")
        )
        check_choice("optim.old_log_prob", self.old_log_prob, literal_choices(OptimConfig, "old_log_prob"))


@dataclass
class EmaConfig:
    use_ema: bool = field(
        default=True, metadata=_help("keep an EMA of the LoRA weights; it is saved and evaluated")
    )
    max_decay: float = field(default=0.9, metadata=_help("decay = min((1+s)/(10+s), max_decay)"))
    update_every: int = field(
        default=8, metadata=_help("update the EMA every this many iterations (optimizer steps when released)")
    )
    cadence: Literal["iteration", "released"] = field(
        default="iteration",
        metadata=_help(
            "iteration: one update after every update_every-th iteration, decay of the iteration count; "
            "released: as the released trainer, counting optimizer steps g, an update after every micro-batch "
            "while (g + 1) % update_every == 0, decay of g"
        ),
    )

    def __post_init__(self) -> None:
        check_range("ema.max_decay", self.max_decay, 0.0, 1.0)
        check_positive("ema.update_every", self.update_every)
        check_choice("ema.cadence", self.cadence, literal_choices(EmaConfig, "cadence"))


@dataclass
class TrainConfig:
    """A whole PaCo-GRPO run. Steps count iterations (rollout + reward + update)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rewards: RewardConfig = field(default_factory=RewardConfig)
    advantages: AdvantageConfig = field(default_factory=AdvantageConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)
    num_iterations: int = field(default=300, metadata=_help("training iterations (steps) in total"))
    seed: int = field(default=42, metadata=_help("seed of sampling noise, data order and LoRA init"))
    output_dir: str = field(default="paco-grpo-run", metadata=_help("checkpoints, metrics, samples go here"))
    checkpoint_every: int = field(
        default=50, metadata=_help("save a checkpoint every this many steps (and at the end)")
    )
    checkpoints_total_limit: int = field(
        default=3, metadata=_help("keep at most this many checkpoints; 0 = all")
    )
    eval_every: int = field(default=50, metadata=_help("evaluate every this many steps; 0 = never"))
    eval_group_size: int = field(default=1, metadata=_help("images per eval prompt"))
    use_tensorboard: bool = field(
        default=False, metadata=_help("also write TensorBoard events under output_dir/tb")
    )
    best_metric: str = field(
        default="",
        metadata=_help(
            "eval metric that picks the best checkpoint (written to output_dir/best), e.g. "
            "eval/rewards/clip_t/mean; empty = the first eval reward's mean"
        ),
    )
    best_mode: Literal["max", "min"] = field(
        default="max", metadata=_help("max: a higher best_metric is better; min: a lower one")
    )
    guardrail_patience: int = field(
        default=3,
        metadata=_help(
            "warn that the LoRA may be gaming its reward when the training reward rose while best_metric "
            "got worse at this many evaluations in a row; 0 = never warn"
        ),
    )
    guardrail_image_checks: bool = field(
        default=True,
        metadata=_help(
            "compare the eval samples' high-frequency and grid energy, sharpness and saturation with the first "
            "evaluation's and warn when one moves past guardrail_image_tolerance (docs/guardrail.md)"
        ),
    )
    guardrail_image_tolerance: float = field(
        default=0.5,
        metadata=_help("relative change that fires an image check: 0.5 = up by half (sharpness: down)"),
    )
    guardrail_action: Literal["warn", "stop", "rollback"] = field(
        default="warn",
        metadata=_help(
            "on a guardrail warning: warn; stop (checkpoint saved, best/ kept); rollback (the LoRA, its EMA and "
            "optimizer go back to the best evaluation's checkpoint and training goes on with new data and noise)"
        ),
    )
    guardrail_second_judge: str = field(
        default="",
        metadata=_help(
            "a held-out metric the reward does not optimise, eval/second_judge/mean: clip:<CLIP folder> (image "
            "similarity to rewards.references) or a Qwen2.5-VL folder / judge URL (zero-shot); the guardrail's "
            "held-out metric when best_metric is empty"
        ),
    )
    gpu_policy: Literal["exclusive", "yield"] = field(
        default="exclusive",
        metadata=_help(
            "yield: pause at the next step boundary and free the GPU while a pause is requested in "
            "output_dir/control (jobs sharing ComfyUI's GPU); exclusive: ignore pause requests"
        ),
    )
    yield_offload: bool = field(
        default=False,
        metadata=_help(
            "with gpu_policy yield: also move the models (transformer, encoders, VAE, judge) to the CPU while paused"
        ),
    )

    def __post_init__(self) -> None:
        self.model = config_from_dict(ModelConfig, self.model, where="model")
        self.lora = config_from_dict(LoraConfig, self.lora, where="lora")
        self.sampling = config_from_dict(SamplingConfig, self.sampling, where="sampling")
        self.data = config_from_dict(DataConfig, self.data, where="data")
        self.rewards = config_from_dict(RewardConfig, self.rewards, where="rewards")
        self.advantages = config_from_dict(AdvantageConfig, self.advantages, where="advantages")
        self.optim = config_from_dict(OptimConfig, self.optim, where="optim")
        self.ema = config_from_dict(EmaConfig, self.ema, where="ema")
        check_positive("num_iterations", self.num_iterations)
        check_positive("checkpoint_every", self.checkpoint_every)
        check_positive("checkpoints_total_limit", self.checkpoints_total_limit, allow_zero=True)
        check_positive("eval_every", self.eval_every, allow_zero=True)
        check_positive("eval_group_size", self.eval_group_size)
        check_choice("best_mode", self.best_mode, literal_choices(TrainConfig, "best_mode"))
        check_choice("gpu_policy", self.gpu_policy, literal_choices(TrainConfig, "gpu_policy"))
        check_positive("guardrail_patience", self.guardrail_patience, allow_zero=True)
        check_positive("guardrail_image_tolerance", self.guardrail_image_tolerance)
        check_choice(
            "guardrail_action", self.guardrail_action, literal_choices(TrainConfig, "guardrail_action")
        )
        self.guardrail_second_judge = (self.guardrail_second_judge or "").strip()
        self.best_metric = self.best_metric or ""
        eval_names = [r.name for r in self.rewards.evaluation]
        allowed = [f"eval/rewards/{name}/{stat}" for name in eval_names for stat in ("mean", "invalid")]
        if self.guardrail_second_judge:
            allowed = ["eval/second_judge/mean", "eval/second_judge/invalid", *allowed]
        if self.best_metric and self.best_metric not in allowed:
            raise ConfigError(
                f"`best_metric` {self.best_metric!r} is not an eval metric of this run: use one of "
                f"{', '.join(allowed[::2])} (the eval rewards' means), or empty for the first"
            )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"`seed` should be a non-negative integer, got {self.seed!r}")
        check_number_fits("seed", self.seed)
        if not self.output_dir:
            raise ConfigError("`output_dir` is empty: name the folder for checkpoints and metrics")
        if not self.lora.target_modules:
            self.lora.target_modules = default_lora_targets(self.model.kind)

    @property
    def held_out_metric(self) -> str:
        """The eval metric the best checkpoint and the guardrail follow (``best_metric`` or its default)."""
        if self.best_metric:
            return self.best_metric
        if self.guardrail_second_judge:
            return "eval/second_judge/mean"
        return f"eval/rewards/{self.rewards.evaluation[0].name}/mean"

    @property
    def lora_targets(self) -> tuple[str, ...]:
        return self.lora.target_modules

    def check_ready(self) -> None:
        """Checks that need the file system; run before seeding or loading models."""
        model = self.model
        if not (model.path or model.transformer_file or model.checkpoint_file):
            raise ConfigError(
                "`model.path` is empty: give the base pipeline folder (e.g. a FLUX.1-dev diffusers folder), or "
                "ComfyUI's files (`model.transformer_file`, `model.text_encoder_files`, `model.vae_file`)"
            )
        for key in ("transformer_file", "vae_file", "checkpoint_file"):
            if getattr(model, key) and not os.path.isfile(getattr(model, key)):
                raise ConfigError(f"`model.{key}` {getattr(model, key)!r} does not exist")
        for path in model.text_encoder_files:
            if not os.path.isfile(path):
                raise ConfigError(f"`model.text_encoder_files` entry {path!r} does not exist")
        if not self.data.train_file:
            raise ConfigError("`data.train_file` is empty: give a JSONL file of prompt rows")
        for key, path in (("data.train_file", self.data.train_file), ("data.eval_file", self.data.eval_file)):
            if path and not os.path.isfile(path):
                raise ConfigError(f"`{key}` {path!r} does not exist")
        needs_judge = set(JUDGE_REWARDS) & {r.name for r in (*self.rewards.rewards, *self.rewards.evaluation)}
        if needs_judge and not (self.rewards.judge_path or self.rewards.judge_url):
            raise ConfigError(
                f"rewards {sorted(needs_judge)} need the judge: set `rewards.judge_path` to a PaCo-Reward folder "
                "or `rewards.judge_url` to a judge server",
                field="rewards.judge_path",
            )
        used = {r.name for r in (*self.rewards.rewards, *self.rewards.evaluation)}
        if "reference" in used:
            from paco_core.rl.reference_reward import load_reference_images

            load_reference_images(self.rewards.references)  # each file exists and reads as an image
        if self.guardrail_second_judge:
            from paco_core.rl.second_judge import check_second_judge

            check_second_judge(self.guardrail_second_judge, references=self.rewards.references)
        if "clip_t" in used and not self.rewards.clip_path:
            raise ConfigError(
                "reward clip_t needs a CLIP model: set `rewards.clip_path` (the paper: CLIP-ViT-H-14-laion2B-s32B-b79K)"
            )
        if "pickscore" in used and not self.rewards.pickscore_path:
            raise ConfigError(
                "reward pickscore needs the PickScore model: set `rewards.pickscore_path` (yuvalkirstain/PickScore_v1); "
                "a plain CLIP model gives other scores, so clip_path is not used in its place"
            )


# --- resuming: what may differ from the config a checkpoint was trained with --------------------

RESUME_MAY_CHANGE: tuple[str, ...] = (
    "num_iterations",
    "output_dir",
    "checkpoint_every",
    "checkpoints_total_limit",
    "eval_every",
    "eval_group_size",
    "use_tensorboard",
    "data.num_eval_prompts",
    "data.image_root",
    "sampling.eval_resolution",
    "sampling.eval_num_steps",
    "rewards.eval_rewards",
    "rewards.judge_path",
    "rewards.judge_url",
    "rewards.judge_server_model",
    "rewards.clip_path",
    "rewards.pickscore_path",
    "model.device",
    "optim.gradient_checkpointing",
    "best_metric",
    "best_mode",
    "guardrail_patience",
    "guardrail_image_checks",
    "guardrail_image_tolerance",
    "guardrail_action",
    "guardrail_second_judge",
    "gpu_policy",
    "yield_offload",
)
"""Config keys a resumed run may change: how long it runs, how often it saves, evaluates and
logs, evaluation-only settings, where it writes, where it runs and where the reward models
are (a judge server's new port). Every other key must equal the checkpoint's, or the resume
would silently continue another run (documented in docs/runs.md)."""


def flatten_config(data: dict, prefix: str = "") -> dict[str, object]:
    """``{"optim": {"lr": 1}}`` -> ``{"optim.lr": 1}``; lists stay whole values."""
    flat: dict[str, object] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_config(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def resume_config_changes(saved: dict, config: TrainConfig) -> list[tuple[str, object, object]]:
    """``(key, saved value, new value)`` for every key that differs between ``saved`` (the
    config a checkpoint was trained with) and ``config`` and may not change on resume.

    The saved config is first read back through :class:`TrainConfig`, so spellings a newer
    version normalises compare equal; keys only one side knows (renamed or added by another
    version) are not compared.
    """
    import logging

    from paco_core.config import VERSION_KEY, config_to_dict

    config_logger = logging.getLogger("paco_core.config")
    level = config_logger.level
    config_logger.setLevel(logging.ERROR)  # unknown keys of another version: not worth a warning here
    try:
        normalised = flatten_config(config_to_dict(config_from_dict(TrainConfig, saved)))
    except ConfigError:
        normalised = {}
    finally:
        config_logger.setLevel(level)
    old = {
        key: normalised.get(key, value) for key, value in flatten_config(saved).items() if key != VERSION_KEY
    }
    new = flatten_config(config_to_dict(config))
    return [
        (key, old[key], new[key])
        for key in sorted(old.keys() & new.keys())
        if old[key] != new[key] and not _may_change(key)
    ]


def _may_change(key: str) -> bool:
    return any(key == allowed or key.startswith(allowed + ".") for allowed in RESUME_MAY_CHANGE)
