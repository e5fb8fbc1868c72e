"""The reference reward: how well each generated panel keeps the look of reference images.

Each panel of a sample (the grid's panels for set rows, the edited image for edit rows) is
shown to the PaCo-Reward judge after each reference image, with the same prompt the judge
gets for two panels of one set (:func:`~paco_core.reward.prompts.set_consistency_prompt`
under the set's judge theme). A sample's reward is the mean over its panels and the
references, in [0, 1].

The references (``rewards.references``: image files of any size and mode) are read once,
flattened to RGB on white, and fitted within :data:`REFERENCE_MAX_SIDE`. They are pinned on
the judge the first time it scores (``pin_images``): a local judge encodes their pixels
once per job instead of once per call, a judge server client encodes their data URLs once.
All of a batch's questions go to the judge in one call.

Example:
    >>> reward = ReferenceReward(models)  # doctest: +SKIP
    >>> reward(images, prompts, metadata)  # doctest: +SKIP
    [0.62, 0.58]
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from paco_core.errors import ConfigError

logger = logging.getLogger(__name__)

REFERENCE_MAX_SIDE = 1024
"""References are scaled down (aspect kept) so their longer side is at most this: the judge
resizes larger images anyway, and a 6000-pixel photo would only cost memory."""


def reference_image(image: Any):
    """A reference as the judge sees it: EXIF-rotated, alpha flattened on white, RGB, at most
    :data:`REFERENCE_MAX_SIDE` on its longer side.

    Example:
        >>> from PIL import Image
        >>> reference_image(Image.new("RGBA", (3000, 1500))).size
        (1024, 512)
    """
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    elif image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16/32-bit grey: stretched to 8 bits
        import numpy as np

        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
        image = Image.fromarray(scaled.round().astype(np.uint8), mode="L")
    image = image.convert("RGB")
    longer = max(image.size)
    if longer > REFERENCE_MAX_SIDE:
        scale = REFERENCE_MAX_SIDE / longer
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


def load_reference_images(paths: Sequence[str | os.PathLike]) -> list:
    """Open the reference files as :func:`reference_image` makes them.

    Raises:
        ConfigError: no path, a path that does not exist, or a file that is not an image.
    """
    from PIL import Image

    from paco_core.errors import InputError
    from paco_core.images import _check_pixel_count

    if not paths:
        raise ConfigError(
            "reward reference needs reference images: set `rewards.references` to one or more image files "
            "(PaCo Train LoRA: connect the references input)"
        )
    images = []
    for path in paths:
        if not os.path.isfile(path):
            raise ConfigError(f"`rewards.references` entry {str(path)!r} does not exist")
        try:
            with Image.open(path) as opened:
                _check_pixel_count(opened.size, path, "reference")
                opened.load()
                images.append(reference_image(opened))
        except InputError as error:
            raise ConfigError(f"`rewards.references` entry: {error}") from None
        except (OSError, ValueError, SyntaxError) as error:
            raise ConfigError(
                f"`rewards.references` entry {str(path)!r} cannot be read as an image ({error})"
            ) from None
    return images


class ReferenceReward:
    """The ``reference`` training reward (see the module doc): a reward function object.

    Args:
        models: the run's ``RewardModels`` (its judge, ``config.references`` and ``config.judge_theme``).
        references: already opened reference images (default: read from ``config.references``
            on first use).
    """

    def __init__(self, models: Any, references: Sequence[Any] | None = None):
        self.models = models
        self._references = [reference_image(image) for image in references] if references else None
        self._pinned_on: Any = None

    @property
    def references(self) -> list:
        if self._references is None:
            self._references = load_reference_images(self.models.config.references)
        return self._references

    def __call__(self, images: list, prompts: list[str], metadata: list[dict[str, Any]]) -> list[float]:
        from paco_core.reward.backend import PairRequest
        from paco_core.reward.prompts import set_consistency_prompt

        judge = self._pinned_judge()
        references = self.references
        pairs: list[PairRequest] = []
        owners: list[int] = []
        for sample, (image, prompt, meta) in enumerate(zip(images, prompts, metadata, strict=True)):
            question = set_consistency_prompt(self._theme(prompt, meta))
            for panel in self._panels(image, meta):
                for reference in references:
                    pairs.append(PairRequest(reference, panel, question))
                    owners.append(sample)
        scores = judge.score_pairs(pairs)
        totals, counts = [0.0] * len(images), [0] * len(images)
        for sample, score in zip(owners, scores, strict=True):
            totals[sample] += float(score)
            counts[sample] += 1
        return [total / count for total, count in zip(totals, counts, strict=True)]

    def _pinned_judge(self) -> Any:
        judge = self.models.judge
        if self._pinned_on is not judge:
            pin = getattr(judge, "pin_images", None)
            if pin is not None:
                pin(self.references)
            self._pinned_on = judge
        return judge

    def _theme(self, prompt: str, meta: dict[str, Any]) -> str | None:
        if meta.get("kind") == "edit":
            return None  # an edit instruction is no theme: the theme-less pair prompt
        from paco_core.prompts import judge_theme

        return judge_theme(prompt, source=self.models.config.judge_theme, theme=meta.get("theme"))

    @staticmethod
    def _panels(image: Any, meta: dict[str, Any]) -> list:
        if meta.get("kind") == "edit":
            return [image]
        from paco_core.images import split_grid

        return split_grid(image, meta.get("layout") or "1x1")
