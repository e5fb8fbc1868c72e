"""Evaluation: ODE samples of held-out rows at the eval resolution, scored, and a sample grid.

Evaluation uses the EMA weights (when EMA is on), the eval resolution, ``sampling.eval_num_steps``
(default: the training steps) of plain Euler (ODE) sampling and a fixed seed per eval row, so the numbers of two evaluations compare the
weights and nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paco_core.io import atomic_write
from paco_core.prompts import MAX_GRID_SIDE
from paco_core.rl.config import TrainConfig
from paco_core.rl.data import PromptRow, rollout_size
from paco_core.rl.device_contexts import AutocastFactory
from paco_core.rl.ema import LoraEma
from paco_core.rl.metrics import nan_stat
from paco_core.rl.rewards import RewardSet
from paco_core.rl.rollout import rollout_micro_batch, seeded_generator
from paco_core.rl.rollout_adapters import RolloutAdapter

logger = logging.getLogger(__name__)

EVAL_SEED_KEY = 7_777
"""Mixed into the eval noise seed, so eval noise never equals a training micro-batch's."""


@torch.no_grad()
def evaluate_policy(
    config: TrainConfig,
    *,
    rollout_adapter: RolloutAdapter,
    transformer: Any,
    rows: list[PromptRow],
    rewards: RewardSet | None,
    ema: LoraEma | None,
    autocast: AutocastFactory,
    sample_path: Path | None,
    scoring_phase: Any = contextlib.nullcontext,
    between_rows: Callable[[], Any] | None = None,
    image_metrics: Callable[[list, list, list], dict[str, Any]] | None = None,
    collect_scores: list | None = None,
    collect_images: list | None = None,
) -> dict[str, Any]:
    """Sample ``config.eval_group_size`` images per eval row, score them, save the sample grid.

    Args:
        config: the run (sampling settings, seed, eval_group_size).
        rollout_adapter / transformer: the rollout adapter of the pipeline kind and the transformer with its LoRA.
        rows: the eval rows.
        rewards: the eval rewards (None: only sample, return no metrics; the processes other
            than the main one under FSDP, whose rollouts take part in the all-gathers).
        ema: the EMA whose weights are swapped in while sampling (None: the live weights).
        autocast: factory of the autocast context.
        sample_path: where the PNG grid of all eval images is written (None: nowhere).
        scoring_phase: factory of the context the scoring runs in (judge offload).
        between_rows: called before every eval row but the first (the GPU-yield pause point);
            each row has its own seed, so a pause there changes nothing.
        image_metrics: more metrics from the eval images, prompts and metadata (the guardrail's
            image statistics and second judge), merged into the result.
        collect_scores: when given, the RewardScores of all eval images are appended (per-prompt view).
        collect_images: when given, the sampled images are appended ("sample now").

    Returns:
        ``eval/rewards/<name>/mean`` and ``/invalid`` for every eval reward.
    """
    sampling = config.sampling
    images, prompts, metadata = [], [], []
    transformer.eval()
    with ema.swapped_in() if ema is not None else contextlib.nullcontext():
        for number, row in enumerate(rows):
            if number and between_rows is not None:
                between_rows()
            height, width = rollout_size(
                row, sampling.eval_resolution, sampling.reference_resolution, edit_size=sampling.edit_size
            )  # the judge sees the original as loaded, as the released eval
            rollout = rollout_micro_batch(
                rollout_adapter,
                transformer,
                row,
                group=number,
                sample_ids=list(range(config.eval_group_size)),
                height=height,
                width=width,
                num_steps=sampling.eval_num_steps or sampling.num_steps,
                sde_steps=(),
                noise_level=sampling.noise_level,
                generator=seeded_generator(config.seed, EVAL_SEED_KEY, number),
                autocast=autocast,
            )
            images.extend(rollout.images)
            prompts.extend([row.prompt] * len(rollout.images))
            metadata.extend([row.metadata()] * len(rollout.images))
    if collect_images is not None:
        collect_images.extend(images)
    if rewards is None:
        return {}
    with scoring_phase():
        scores = rewards.score(images, prompts, metadata)
    if collect_scores is not None:
        collect_scores.append(scores)
    metrics: dict[str, Any] = {}
    for k, name in enumerate(scores.names):
        column = scores.scores[:, k]
        metrics[f"eval/rewards/{name}/mean"] = nan_stat(np.nanmean, column)
        metrics[f"eval/rewards/{name}/invalid"] = int(np.isnan(column).sum())
    if image_metrics is not None:
        metrics.update(image_metrics(images, prompts, metadata))
    if images and sample_path is not None:
        grid = sample_grid(images)
        atomic_write(sample_path, lambda tmp: grid.save(tmp, format="PNG"))
    return metrics


def sample_grid(images: list):
    """The images in a near-square grid, row-major (the images of one eval row stay adjacent).

    ``cols = ceil(sqrt(n))``, ``rows = ceil(n / cols)``; every cell has the size of the
    largest image, each image is fitted into it keeping its aspect ratio (rows of other
    layouts differ in size) and centred; cells past the last image stay black. Past
    ``MAX_GRID_SIDE``^2 images only the first ones are shown (with a warning).

    Example:
        >>> from PIL import Image
        >>> sample_grid([Image.new("RGB", (32, 32))] * 5).size
        (96, 64)
    """
    from PIL import Image, ImageOps

    from paco_core.images import compose_grid
    from paco_core.prompts import Layout

    limit = MAX_GRID_SIDE**2
    if len(images) > limit:
        logger.warning("the sample grid shows the first %d of %d eval images", limit, len(images))
        images = images[:limit]
    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    cell = (max(image.width for image in images), max(image.height for image in images))
    cells = [ImageOps.pad(image.convert("RGB"), cell, color="black") for image in images]
    cells += [Image.new("RGB", cell) for _ in range(rows * cols - len(cells))]
    return compose_grid(cells, Layout(rows, cols))
