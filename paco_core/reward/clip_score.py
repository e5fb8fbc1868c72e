"""CLIP-T and PickScore: how well each image matches its own text, from a CLIP model folder.

- CLIP-T: the cosine similarity of the image and text embeddings (per image; the
  T2IS "subfig CLIP-T" reward averages it over the panels of a set, each panel against
  its own panel prompt).
- PickScore: ``logit_scale * cosine / 26`` as the released PaCo-RL reward computes it,
  with the PickScore checkpoint (a CLIP-H model folder; yuvalkirstain/PickScore_v1) and
  its processor (laion/CLIP-ViT-H-14-laion2B-s32B-b79K).

Example:
    >>> scorer = ClipScorer.from_pretrained("models/clip/PickScore_v1")  # doctest: +SKIP
    >>> scorer.pick_score(images, ["a fox in winter"] * len(images))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from paco_core.errors import InputError, ModelLoadError

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

PICKSCORE_DIVISOR = 26.0
"""The released PaCo-RL PickScore reward divides ``logit_scale * cos`` (about 21-23 for
good images) by 26 to bring it near [0, 1]."""

DEFAULT_BATCH_SIZE = 32


class ClipScorer:
    """A CLIP dual encoder that scores image-text agreement.

    Args:
        model: a transformers ``CLIPModel`` in eval mode.
        processor: its ``CLIPProcessor`` (or a processor given separately, as PickScore's).
        batch_size: images per forward pass.
    """

    def __init__(self, model: Any, processor: Any, *, batch_size: int = DEFAULT_BATCH_SIZE):
        self.model = model
        self.processor = processor
        self.batch_size = batch_size
        self.max_text_length = int(getattr(model.config.text_config, "max_position_embeddings", 77))

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        device: str | None = None,
        dtype: str | None = None,
        *,
        processor_path: str | os.PathLike | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> ClipScorer:
        """Load a CLIP model folder (CLIP, OpenAI CLIP, PickScore_v1 ...).

        Args:
            path: the model folder or a hub id in the local cache.
            device: "cuda", "cpu", ... (None: the GPU when there is one).
            dtype: "bf16", "fp16", "fp32" or "auto" (bf16 on a GPU, fp32 on the CPU); None = fp32,
                as the released CLIP-T and PickScore rewards run.
            processor_path: where the processor lives when the model folder has none
                (PickScore_v1 uses the laion CLIP-ViT-H-14 processor).
            batch_size: images per forward pass.

        Returns:
            The scorer.
        """
        from transformers import AutoProcessor, CLIPModel

        from paco_core.devices import resolve_device, resolve_dtype
        from paco_core.models.judge import resolve_model_folder

        folder = resolve_model_folder(path, what="CLIP model")
        device_name = resolve_device(device)
        torch_dtype = resolve_dtype("fp32" if dtype is None else dtype, device_name)
        try:
            model = CLIPModel.from_pretrained(folder, dtype=torch_dtype, use_safetensors=True)
        except (OSError, ValueError, RuntimeError) as error:
            raise ModelLoadError(
                f"{folder} cannot be loaded as a CLIP model ({error}). CLIP-T and PickScore need a CLIP "
                "model folder (config.json with model_type 'clip' and safetensors weights)."
            ) from error
        processor_folder = (
            resolve_model_folder(processor_path, what="CLIP processor") if processor_path else folder
        )
        try:
            processor = AutoProcessor.from_pretrained(processor_folder)
        except (OSError, ValueError, TypeError) as error:
            raise ModelLoadError(
                f"{processor_folder} has no CLIP processor ({error}). Give processor_path (for PickScore_v1: "
                "laion/CLIP-ViT-H-14-laion2B-s32B-b79K)."
            ) from error
        model.to(device_name).eval().requires_grad_(False)
        return cls(model, processor, batch_size=batch_size)

    def clip_t(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[float]:
        """Cosine similarity of each image with its prompt.

        Args:
            images: the images.
            prompts: one text per image.

        Returns:
            One cosine in [-1, 1] per image.
        """
        return [float(value) for value in self._cosines(images, prompts)]

    def pick_score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[float]:
        """PickScore of each image with its prompt: ``logit_scale.exp() * cosine / 26``."""
        scale = float(self.model.logit_scale.exp())
        return [scale * float(value) / PICKSCORE_DIVISOR for value in self._cosines(images, prompts)]

    def _cosines(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[float]:
        import torch

        images, prompts = list(images), list(prompts)
        check_image_text_pairs(images, prompts)
        device = next(self.model.parameters()).device
        dtype = next(self.model.parameters()).dtype
        cosines: list[float] = []
        for start in range(0, len(images), self.batch_size):
            batch_images = [image.convert("RGB") for image in images[start : start + self.batch_size]]
            batch_prompts = prompts[start : start + self.batch_size]
            inputs = self.processor(
                text=batch_prompts,
                images=batch_images,
                padding=True,
                truncation=True,
                max_length=self.max_text_length,
                return_tensors="pt",
            )
            with torch.inference_mode():
                image_embeds = self.model.get_image_features(
                    pixel_values=inputs["pixel_values"].to(device, dtype)
                )
                text_embeds = self.model.get_text_features(
                    input_ids=inputs["input_ids"].to(device),
                    attention_mask=inputs["attention_mask"].to(device),
                )
            image_embeds = _embedding_tensor(image_embeds).float()
            text_embeds = _embedding_tensor(text_embeds).float()
            cosine = torch.nn.functional.cosine_similarity(image_embeds, text_embeds, dim=-1)
            cosines.extend(cosine.cpu().tolist())
        return cosines


def _embedding_tensor(output: Any) -> Any:
    """The projected embeddings, whether the model returns a tensor or an output object."""
    if hasattr(output, "pooler_output"):
        return output.pooler_output
    return output


def check_image_text_pairs(images: list, prompts: list) -> None:
    """Raise unless there is one non-empty prompt per PIL image."""
    from PIL import Image

    if not images:
        raise InputError("CLIP scoring needs at least one image, got none.")
    if len(images) != len(prompts):
        raise InputError(
            f"CLIP scoring needs one prompt per image, got {len(images)} images and {len(prompts)} prompts."
        )
    for index, (image, prompt) in enumerate(zip(images, prompts, strict=True)):
        if not isinstance(image, Image.Image):
            raise InputError(f"image {index} should be a PIL image, got {type(image).__name__}.")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(f"prompt {index} should be a non-empty text, got {prompt!r}.")
