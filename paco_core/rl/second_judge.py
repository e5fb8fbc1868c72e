"""A second judge: a held-out metric the training reward does not optimise.

A LoRA can learn what one judge likes without getting better (reward gaming). A second
opinion that training never sees shows it: ``guardrail_second_judge`` names

- ``clip:<CLIP folder>``: CLIP image similarity of every eval panel to the reference images
  (``rewards.references``), the mean cosine; or
- a Qwen2.5-VL folder or judge server URL (e.g. the base Qwen2.5-VL-7B-Instruct, zero-shot):
  the same pair questions as the reference reward (with references) or the consistency
  reward (without), asked to that model.

Its score is logged as ``eval/second_judge/mean`` and becomes the guardrail's held-out metric
when ``best_metric`` is not set. :func:`check_second_judge` reads only the folder's config at
submit, so a wrong path fails before any job exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from paco_core.errors import ConfigError

METRIC = "eval/second_judge/mean"
CLIP_PREFIX = "clip:"
JUDGE_MODEL_TYPES = ("qwen2_5_vl",)
CLIP_MODEL_TYPES = ("clip",)


def check_second_judge(source: str, *, references: tuple[str, ...] = ()) -> None:
    """Raise ConfigError when ``source`` cannot be a second judge (read from its config.json only)."""
    from paco_core.reward.judge_client import is_server_url

    if source.startswith(CLIP_PREFIX):
        folder = source[len(CLIP_PREFIX) :]
        _check_model_folder(folder, CLIP_MODEL_TYPES, "a CLIP model folder (e.g. CLIP-ViT-H-14)")
        if not references:
            raise ConfigError(
                "`guardrail_second_judge` clip: compares the samples with the reference images: set "
                "`rewards.references`, or name a Qwen2.5-VL judge instead"
            )
        return
    if is_server_url(source):
        return  # asked at the first evaluation; a judge server is checked like the training judge's
    _check_model_folder(source, JUDGE_MODEL_TYPES, "a Qwen2.5-VL folder (e.g. Qwen2.5-VL-7B-Instruct)")


def _check_model_folder(folder: str, model_types: tuple[str, ...], wanted: str) -> None:
    config = Path(folder) / "config.json"
    if not folder or not config.is_file():
        raise ConfigError(
            f"`guardrail_second_judge` {folder!r} is not a model folder (no config.json): give {wanted}"
        )
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"`guardrail_second_judge` {folder!r}: config.json cannot be read ({error})"
        ) from None
    if model_type not in model_types:
        raise ConfigError(f"`guardrail_second_judge` {folder!r} holds a {model_type!r} model: give {wanted}")


class SecondJudge:
    """Scores eval samples with the second judge (module doc), loaded on first use.

    Args:
        source: ``clip:<folder>``, a Qwen2.5-VL folder or a judge server URL.
        references: reference image files (``rewards.references``; may be empty for a judge).
        judge_theme: the theme rule the judge questions use (``rewards.judge_theme``).
        device: where a local model runs.
    """

    def __init__(self, source: str, references: tuple[str, ...], judge_theme: str, device: str):
        self.source = source
        self.references = tuple(references)
        self.judge_theme = judge_theme
        self.device = device
        self._scorer: Any = None

    def score(self, images: list, prompts: list[str], metadata: list[dict[str, Any]]) -> dict[str, float]:
        """``{METRIC: mean score}`` of the eval images."""
        if not images:
            return {}
        if self.source.startswith(CLIP_PREFIX):
            values = self._clip_similarity(images, metadata)
        else:
            values = self._judge_scores(images, prompts, metadata)
        return {METRIC: float(np.mean(values))}

    def _clip_similarity(self, images: list, metadata: list[dict[str, Any]]) -> list[float]:
        import torch

        from paco_core.rl.reference_reward import ReferenceReward, load_reference_images

        if self._scorer is None:
            from paco_core.reward.clip_score import ClipScorer

            self._scorer = ClipScorer.from_pretrained(
                self.source[len(CLIP_PREFIX) :], device=self.device, dtype="fp32"
            )
            self._reference_embeds = self._embed(load_reference_images(self.references))
        panels = [
            panel
            for image, meta in zip(images, metadata, strict=True)
            for panel in ReferenceReward._panels(image, meta)
        ]
        cosines = self._embed(panels) @ self._reference_embeds.T  # (panels, references)
        return cosines.mean(dim=1).tolist() if isinstance(cosines, torch.Tensor) else list(cosines)

    def _embed(self, images: list) -> Any:
        import torch

        model, processor = self._scorer.model, self._scorer.processor
        parameter = next(model.parameters())
        inputs = processor(images=[image.convert("RGB") for image in images], return_tensors="pt")
        with torch.inference_mode():
            output = model.get_image_features(
                pixel_values=inputs["pixel_values"].to(parameter.device, parameter.dtype)
            )
        embeds = (output.pooler_output if hasattr(output, "pooler_output") else output).float().cpu()
        return torch.nn.functional.normalize(embeds, dim=-1)

    def _judge_scores(self, images: list, prompts: list[str], metadata: list[dict[str, Any]]) -> list[float]:
        from paco_core.rl.reference_reward import ReferenceReward

        if self._scorer is None:
            from paco_core.reward import open_judge

            self._scorer = open_judge(self.source, device=self.device)
        if self.references:
            return ReferenceReward(self)(images, prompts, metadata)
        from paco_core.prompts import judge_theme
        from paco_core.reward.scoring import score_sets

        sets = [ReferenceReward._panels(image, meta) for image, meta in zip(images, metadata, strict=True)]
        usable = [i for i, panels in enumerate(sets) if len(panels) >= 2]
        if not usable:
            raise ConfigError(
                "the second judge compares panels of a set, but the eval rows have one panel each"
            )
        themes = [
            judge_theme(prompts[i], source=self.judge_theme, theme=metadata[i].get("theme")) for i in usable
        ]
        return [float(result.score) for result in score_sets(self._scorer, [sets[i] for i in usable], themes)]

    # what ReferenceReward asks of its "models": the judge and the reward settings
    @property
    def judge(self) -> Any:
        return self._scorer

    @property
    def config(self) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(references=self.references, judge_theme=self.judge_theme)
