"""The released PaCo-GRPO runs as ready configs (``paco train --preset NAME``).

Every value below reproduces the authors' released ``PaCo-GRPO/config/grpo.py`` (and the
trainers it drives) of X-GenGroup/PaCo-RL; tests/fixtures/released_presets.json names the
file and field of each and tests/test_presets.py pins them. docs/presets.md is the table.

| preset           | base model         | steps | noise steps | a   | guidance          | train/eval | rewards (aggregation) |
|------------------|--------------------|-------|-------------|-----|-------------------|------------|-----------------------|
| t2is-flux        | FLUX.1-dev         | 10    | [1]         | 0.7 | 3.5               | 512 / 1024 | consistency 0.2, clip_t 1, pickscore 1 (weighted sum, global std) |
| t2is-flux-paper  | FLUX.1-dev         | 10    | [1]         | 0.7 | 3.5               | 512 / 1024 | the same, log-tamed (delta 0.2) on consistency and clip_t |
| edit-kontext     | FLUX.1-Kontext-dev | 8     | [1]         | 0.9 | 2.5               | 384 / 512  | edit 1.0 |
| edit-qwen        | Qwen-Image-Edit    | 10    | [1,2,3,4], trains [1] | 1.0 | 4.0 (true CFG off) | 384 / 512 | edit 1.0 |

The edit presets generate squares (``sampling.edit_size`` square: the original squashed to
384 x 384 in training, 512 x 512 at evaluation, the judge sees the squashed original in
training), as the released edit trainers. ``edit-qwen-all-noise-steps`` is ``edit-qwen``
training every noise step (the released config's stated intent).

All share: 42 prompts x 16 images per iteration, 2 optimizer steps per iteration
(accumulation over half of the micro-batches), AdamW lr 3e-4, betas (0.9, 0.999), weight
decay 1e-4, eps 1e-8, grad-norm clip 1.0; PPO clip 1e-4; beta 0; advantages per prompt,
clipped to +-5; LoRA rank 64, alpha 128, gaussian init; EMA decay min((1+s)/(10+s), 0.9)
every 8 optimizer steps, applied as the released trainer does (``ema.cadence`` released);
the old log-prob recomputed at update time through the frozen LoRA (``optim.old_log_prob``
recompute, the released "old" adapter); TF32 matmuls on GPUs (``optim.allow_tf32``);
evaluation with 20 steps on every eval row; checkpoints and evaluation every 10 iterations
for T2IS, every 20 for the edits (the edit configs keep base.py's 20); 512 text tokens. Ours where the released code cannot be copied: 4 images per transformer
call (released: 1; the same gradient), Kontext on FLUX.1-Kontext-dev (the released config
names FLUX.1-dev, a bug). Paths (data, judge, CLIP, PickScore) are left for the user.
"""

from __future__ import annotations

import copy
from typing import Any

from paco_core.config import config_from_dict, merge_dicts
from paco_core.errors import ConfigError
from paco_core.families import all_families
from paco_core.rl.config import TrainConfig

_COMMON: dict[str, Any] = {
    "lora": {"rank": 64, "alpha": 128.0, "init": "gaussian"},
    "sampling": {"group_size": 16, "prompts_per_iteration": 42, "batch_size": 4, "max_sequence_length": 512,
                 "eval_num_steps": 20},
    "data": {"num_eval_prompts": 0},
    "advantages": {"adv_clip_max": 5.0},
    "optim": {"lr": 3e-4, "betas": [0.9, 0.999], "weight_decay": 1e-4, "eps": 1e-8, "max_grad_norm": 1.0,
              "clip_range": 1e-4, "kl_beta": 0.0, "kl_form": "flow_grpo", "num_inner_epochs": 1,
              "optimizer_steps_per_iteration": 2, "allow_tf32": True, "old_log_prob": "recompute"},
    "ema": {"use_ema": True, "max_decay": 0.9, "update_every": 8, "cadence": "released"},
    "seed": 42, "eval_group_size": 1,
}  # fmt: skip


def _family_presets(beyond_the_paper: bool = False) -> dict[str, dict[str, Any]]:
    """The released runs the families declare (``Family.presets``; or, with ``beyond_the_paper``,
    ``Family.presets_beyond_the_paper``), each with its family's model."""
    return {
        name: {"model": {"kind": item.kind, "path": item.hub_id}, **settings}
        for item in all_families()
        for name, settings in (item.presets_beyond_the_paper if beyond_the_paper else item.presets).items()
    }


PRESETS: dict[str, dict[str, Any]] = _family_presets()
"""Preset name -> its settings over ``_COMMON`` (from the family records, in family order)."""


VARIANT_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "edit-qwen-all-noise-steps": ("edit-qwen", {"sampling": {"trained_steps": [1, 2, 3, 4]}}),
}  # fmt: skip
"""Released runs with one intended setting the released code missed: (released preset, the change).

``edit-qwen-all-noise-steps`` trains every noise step, as the released config's comment says
it meant to ("Train on all noise steps"): its ``train.timesteps`` was copied from the base
noise steps [1] before ``qwen_editing`` set them to [1, 2, 3, 4], so the released run trains
step 1 only (``edit-qwen``). Four times the update's forward and backward passes.
"""

ONE_GPU_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "t2is-flux-1gpu": ("t2is-flux", {
        "sampling": {"batch_size": 1},
        "optim": {"gradient_checkpointing": True},
        "rewards": {"judge_offload": True},
    }),
}  # fmt: skip
"""Released runs laid out for one GPU: (released preset, the settings that differ).

The algorithm is the released one (same prompts, group size, optimizer steps per
iteration, so the same samples per step); only the memory layout changes: one image per
transformer call (the released micro-batch), activations recomputed in the backward
pass, and the local judge parked in CPU memory except while it scores. docs/scaling.md
says what to change for a vLLM judge on the same GPU instead.
"""


BEYOND_THE_PAPER_PRESETS: dict[str, dict[str, Any]] = _family_presets(beyond_the_paper=True)
"""Presets of families beyond the paper (no released run backs them): name -> settings over
``_COMMON``, values reasoned from a released run (docs/families.md)."""


def preset_names() -> tuple[str, ...]:
    return (*PRESETS, *VARIANT_PRESETS, *ONE_GPU_PRESETS, *BEYOND_THE_PAPER_PRESETS)


def preset_dict(name: str) -> dict[str, Any]:
    """The plain dict of a preset (common settings merged in)."""
    derived = VARIANT_PRESETS.get(name) or ONE_GPU_PRESETS.get(name)
    if derived is not None:
        base, changes = derived
        return copy.deepcopy(merge_dicts(preset_dict(base), changes))
    settings = PRESETS.get(name) or BEYOND_THE_PAPER_PRESETS.get(name)
    if settings is None:
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(preset_names())}")
    return copy.deepcopy(merge_dicts(_COMMON, settings))


def preset_config(name: str) -> TrainConfig:
    """The validated :class:`TrainConfig` of a preset."""
    return config_from_dict(TrainConfig, preset_dict(name))
