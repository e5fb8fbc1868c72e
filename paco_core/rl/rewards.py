"""Rewards by name: the built-in judges and user functions given as ``module:function``.

A reward is a plain callable::

    def my_reward(images: list[PIL.Image.Image], prompts: list[str],
                  metadata: list[dict]) -> list[float | None]

It receives the batch's images (one per sample: the grid for set rows, the edited image
for edit rows), the prompt text of each sample, and a metadata dict per sample (``kind``,
``theme``, ``layout``, ``index``, ``image_path`` of the edit's source image, plus the
row's extra fields such as ``criteria``), and returns one score per image, ``None`` for
"could not score".

User rewards load from a reward folder (``<folder>/<module>.py``; see
:func:`load_user_reward` and docs/training.md#your-own-rewards).

Built-ins: ``consistency`` (the PaCo-Reward judge on every pair of panels of the grid,
averaged), ``edit`` (the judge's sqrt(consistency x following) of the original, at its own
resolution or squashed to ``judge_original_size`` (width, height) when the metadata names one,
vs the edited image), ``clip_t`` (each panel vs its panel prompt, averaged; a
CLIP model from ``clip_path``) and ``pickscore`` (the PickScore model from
``pickscore_path``) and ``reference`` (each panel vs the reference images of
``rewards.references``, :mod:`paco_core.rl.reference_reward`). CLIP and PickScore run in
fp32, as in the released reward code.

A failure is never a score: when a reward raises (JudgeError, RewardError or any
exception of a user function) for a batch, its samples are retried one by one; samples
that still fail, return None or a non-finite number are marked invalid (NaN) and counted.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from paco_core.errors import ConfigError, RewardError, RewardOutputError
from paco_core.rl.config import RewardConfig, RewardSpec

logger = logging.getLogger(__name__)

RewardFn = Callable[..., Sequence[float | None]]


@dataclass
class RewardScores:
    """``scores`` ``(N, K)`` with NaN where invalid; ``failures`` per reward name: count and
    the first error message."""

    names: list[str]
    scores: np.ndarray
    failures: dict[str, int] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)


def load_user_reward(name: str) -> RewardFn:
    """The function of a user reward ``module:function``.

    ``module.py`` is loaded from the first reward folder holding it (PACO_REWARD_FOLDERS;
    jobs started from ComfyUI also get ``<ComfyUI user dir>/paco/rewards``); otherwise the
    module is imported by name (it must be on PYTHONPATH) where PACO_ALLOW_REWARD_IMPORTS
    allows it: on the command line by default, in jobs from ComfyUI only when the user set
    it there. So a workflow names a reward, but the code comes from where the user put it.

    Raises:
        ConfigError: the module or the function does not exist, or is not callable, or the
            module is not in the reward folders and imports are off.
    """
    from paco_core import settings
    from paco_core.containment import reward_module_file

    module_name, _, function_name = name.partition(":")
    if not module_name or not function_name:
        raise ConfigError(f"reward {name!r} should look like `package.module:function`")
    folders = settings.reward_folders()
    path = reward_module_file(module_name, folders)
    if path is not None:
        module = _module_from_file(name, module_name, path)
    elif not settings.allow_reward_imports():
        raise ConfigError(
            f"reward {name!r}: {module_name}.py is not in the reward folders ({', '.join(folders) or 'none'}) and "
            f"{settings.ALLOW_REWARD_IMPORTS}=0: put {module_name}.py in one of them"
        )
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ConfigError(
                f"reward {name!r}: cannot import module {module_name!r} ({error}); put it on PYTHONPATH "
                f"or {module_name}.py in a reward folder ({settings.REWARD_FOLDERS})"
            ) from error
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"reward {name!r}: module {module_name!r} has no function {function_name!r}")
    return function


def _module_from_file(name: str, module_name: str, path: str):
    """Execute ``path`` as the module ``paco_rewards.<module_name>`` (not on sys.path)."""
    import importlib.util
    import sys

    qualified = f"paco_rewards.{module_name}"
    if qualified in sys.modules and getattr(sys.modules[qualified], "__file__", None) == path:
        return sys.modules[qualified]
    spec = importlib.util.spec_from_file_location(qualified, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[qualified]
        raise ConfigError(
            f"reward {name!r}: {path} failed to load: {type(error).__name__}: {error}"
        ) from error
    return module


SCORER_DTYPE = "fp32"
"""CLIP-T and PickScore run in fp32, as the released rewards do (bf16 moves the cosines)."""


class RewardModels:
    """Loads the judge and the CLIP scorers once, on first use.

    With ``rewards.judge_offload`` a local judge stays in ``park_device`` memory (the CPU)
    except inside :meth:`scoring_phase`, where it moves to ``device`` and back afterwards:
    the policy has the GPU to itself during rollouts and updates.
    """

    def __init__(self, config: RewardConfig, device: str, *, park_device: str = "cpu"):
        self.config = config
        self.device = device
        self.park_device = park_device
        self._judge = None
        self._clip = None
        self._pick = None
        self._scoring = False

    @contextlib.contextmanager
    def scoring_phase(self) -> Iterator[None]:
        """Scoring happens inside: with judge offload, the local judge is on ``device`` only here."""
        offload = self.config.judge_offload and not self.config.judge_url
        if offload and self._judge is not None:
            self._judge.move_to(self.device)
        self._scoring = True
        try:
            yield
        finally:
            self._scoring = False
            if offload and self._judge is not None:
                self._judge.move_to(self.park_device)
                _release_cached_memory(self.device)

    def use_judge(self, judge) -> None:
        """Score with this judge instead of opening ``rewards.judge_path`` (benchmarks with a
        random-weight judge); with judge offload it is parked until the next scoring phase."""
        self._judge = judge
        if self.config.judge_offload and not self.config.judge_url and not self._scoring:
            judge.move_to(self.park_device)

    @property
    def judge(self):
        if self._judge is None:
            from paco_core.reward import open_judge

            config = self.config
            self._judge = open_judge(
                config.judge_url or config.judge_path,
                server_model=config.judge_server_model or None,
                top_logprobs=config.judge_top_logprobs,
                device=self.device,
            )
            if config.judge_offload and not config.judge_url and not self._scoring:
                # loaded on the device (its dtype is the device's), parked until scoring
                self._judge.move_to(self.park_device)
        return self._judge

    def check_judge_server(self) -> None:
        """Ask the configured judge server now (``rewards.judge_url``), so a wrong URL or a
        stopped server fails before any model loads; no-op for a local judge."""
        if self.config.judge_url:
            self.judge  # noqa: B018 - opening the server judge checks it

    def require(self, reward: str) -> None:
        """Raise ConfigError when the model folder a built-in reward needs is not configured."""
        if reward == "clip_t" and not self.config.clip_path:
            raise ConfigError(
                "reward clip_t needs a CLIP model: set `rewards.clip_path` "
                "(the paper: CLIP-ViT-H-14-laion2B-s32B-b79K)"
            )
        if reward == "pickscore" and not self.config.pickscore_path:
            raise ConfigError(
                "reward pickscore needs the PickScore model: set `rewards.pickscore_path` "
                "(yuvalkirstain/PickScore_v1); a plain CLIP model gives other scores, so clip_path is not used"
            )

    @property
    def clip(self):
        if self._clip is None:
            self.require("clip_t")
            from paco_core.reward.clip_score import ClipScorer

            self._clip = ClipScorer.from_pretrained(
                self.config.clip_path, device=self.device, dtype=SCORER_DTYPE
            )
        return self._clip

    @property
    def pick(self):
        if self._pick is None:
            self.require("pickscore")
            from paco_core.reward.clip_score import ClipScorer

            self._pick = ClipScorer.from_pretrained(
                self.config.pickscore_path, device=self.device, dtype=SCORER_DTYPE
            )
        return self._pick


def _release_cached_memory(device: str) -> None:
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _panels(image, meta: dict[str, Any]) -> list:
    from paco_core.images import split_grid

    return split_grid(image, meta.get("layout") or "1x1")


def _panel_prompts(prompt: str) -> tuple[str, ...]:
    from paco_core.prompts import parse_grid_prompt

    return parse_grid_prompt(prompt).panel_prompts


def builtin_reward(name: str, models: RewardModels) -> RewardFn:
    """The built-in reward function called ``name``."""

    def consistency(images, prompts, metadata):
        from paco_core.reward.scoring import score_sets

        sets = [_panels(image, meta) for image, meta in zip(images, metadata, strict=True)]
        from paco_core.prompts import judge_theme

        source = models.config.judge_theme
        themes = [
            judge_theme(prompt, source=source, theme=meta.get("theme"))
            for prompt, meta in zip(prompts, metadata, strict=True)
        ]
        return [float(result.score) for result in score_sets(models.judge, sets, themes)]

    def edit(images, prompts, metadata):
        from paco_core.images import open_image_file
        from paco_core.reward.scoring import score_edits

        originals = []  # at their own resolution, or squashed as the released edit trainers send them
        for meta in metadata:
            original = open_image_file(meta["image_path"], what="edit row image")
            if meta.get("judge_original_size"):
                from PIL import Image

                width, height = (int(v) for v in meta["judge_original_size"])
                # resized as the condition image is
                original = original.resize((width, height), Image.Resampling.LANCZOS)
            originals.append(original)
        return [float(s.overall) for s in score_edits(models.judge, originals, list(images), list(prompts))]

    def clip_t(images, prompts, metadata):
        scores = []
        for image, prompt, meta in zip(images, prompts, metadata, strict=True):
            panel_prompts = _panel_prompts(prompt) or (prompt,)
            panels = _panels(image, meta) if len(panel_prompts) > 1 else [image]
            scores.append(float(np.mean(models.clip.clip_t(panels, list(panel_prompts)))))
        return scores

    def pickscore(images, prompts, metadata):
        return [float(s) for s in models.pick.pick_score(list(images), list(prompts))]

    if name == "reference":  # each panel vs the reference images (its own module: pinned encodings)
        from paco_core.rl.reference_reward import ReferenceReward

        return ReferenceReward(models)
    functions = {"consistency": consistency, "edit": edit, "clip_t": clip_t, "pickscore": pickscore}
    if name not in functions:
        raise ConfigError(f"unknown built-in reward {name!r}; built-ins: {', '.join(functions)}")
    models.require(name)
    return functions[name]


class RewardSet:
    """The rewards of a run, scored together into an ``(N, K)`` matrix."""

    def __init__(self, specs: Sequence[RewardSpec], functions: dict[str, RewardFn]):
        self.specs = list(specs)
        self.functions = functions

    @classmethod
    def from_config(cls, specs: Sequence[RewardSpec], models: RewardModels) -> RewardSet:
        functions = {
            spec.name: load_user_reward(spec.name) if ":" in spec.name else builtin_reward(spec.name, models)
            for spec in specs
        }
        return cls(specs, functions)

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.specs]

    @property
    def weights(self) -> np.ndarray:
        return np.array([spec.weight for spec in self.specs], dtype=np.float64)

    def score(self, images: list, prompts: list[str], metadata: list[dict[str, Any]]) -> RewardScores:
        """Score every image with every reward; invalid entries are NaN."""
        scores = np.full((len(images), len(self.specs)), np.nan)
        result = RewardScores(self.names, scores)
        for k, spec in enumerate(self.specs):
            column, message = self._score_one(spec.name, images, prompts, metadata)
            scores[:, k] = column
            failed = int(np.isnan(column).sum())
            if failed:
                result.failures[spec.name] = failed
                result.messages[spec.name] = message
        return result

    def _score_one(self, name: str, images, prompts, metadata) -> tuple[np.ndarray, str]:
        function = self.functions[name]
        try:
            return _as_column(name, function(images, prompts, metadata), len(images)), ""
        except (RewardOutputError, ConfigError):
            raise  # a wrong-length answer is a bug in the function; a missing model is the run's configuration
        except Exception as error:  # noqa: BLE001 - any failure of a reward marks samples invalid
            first_error = f"{type(error).__name__}: {error}"
        logger.warning(
            "reward %s failed on a batch of %d (%s); retrying image by image", name, len(images), first_error
        )
        column = np.full(len(images), np.nan)
        for i in range(len(images)):
            try:
                column[i] = _as_column(name, function([images[i]], [prompts[i]], [metadata[i]]), 1)[0]
            except Exception as error:  # noqa: BLE001
                logger.warning(
                    "reward %s could not score sample %d: %s: %s", name, i, type(error).__name__, error
                )
        return column, first_error


def _as_column(name: str, values: Sequence[float | None], expected: int) -> np.ndarray:
    values = list(values) if values is not None else []
    if len(values) != expected:
        raise RewardOutputError(
            f"reward {name!r} returned {len(values)} scores for {expected} images; return one per image"
        )
    column = np.full(expected, np.nan)
    for i, value in enumerate(values):
        if value is None:
            continue
        number = float(value)
        column[i] = number if math.isfinite(number) else np.nan
    return column


def check_invalid_share(scores: RewardScores, max_share: float) -> float:
    """Share of images with an invalid reward; raises RewardError past ``max_share``."""
    total = scores.scores.shape[0]
    invalid = int(np.isnan(scores.scores).any(axis=1).sum()) if total else 0
    share = invalid / total if total else 0.0
    if share > max_share:
        details = "; ".join(
            f"{name}: {count} failed ({scores.messages.get(name, '')})"
            for name, count in scores.failures.items()
        )
        raise RewardError(
            f"{invalid} of {total} images could not be scored ({share:.0%} > rewards.max_invalid_share "
            f"{max_share:.0%}): {details}. Fix the reward (judge path, server) or raise max_invalid_share."
        )
    return share
