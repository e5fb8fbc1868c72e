"""Rollout adapters, one per pipeline kind: the pieces of a diffusers pipeline a GRPO rollout needs.

Each adapter reuses the pipeline's own methods (``encode_prompt``, ``prepare_latents``,
``_unpack_latents``, the module's ``calculate_shift`` / ``retrieve_timesteps``, the VAE
and image processor) and calls the real transformer module; it only splits the
pipeline's ``__call__`` into the steps a sampler with log-probabilities needs:

1. :meth:`encode` a prompt row (text, and the condition image for edit models) once;
2. :meth:`initial_noise` for a micro-batch (drawn on the CPU from a seeded generator);
3. :meth:`schedule` the sigmas of the row's size (the pipeline's shifted schedule);
4. :meth:`velocity` of the transformer at one step (with grad when training);
5. :meth:`decode` final latents into PIL images.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from paco_core.errors import ConfigError
from paco_core.families import family, load_reference, trainable_kinds
from paco_core.rl.data import PromptRow


@dataclass
class Conditioning:
    """What a prompt row conditions the transformer on. Tensors have batch size 1 and are
    expanded to the micro-batch inside :meth:`RolloutAdapter.velocity`."""

    tensors: dict[str, torch.Tensor]
    shared: dict[str, Any] = field(default_factory=dict)


@dataclass
class Schedule:
    """``sigmas`` has num_steps + 1 entries (last 0); ``timesteps`` num_steps (sigma * 1000)."""

    sigmas: list[float]
    timesteps: list[float]

    @property
    def sigma_max(self) -> float:
        """The first sigma below 1: the SDE guard's stand-in for sigma == 1."""
        below = [s for s in self.sigmas if s < 1.0]
        return below[0] if below else 0.98


class RolloutAdapter(ABC):
    """Base class; subclasses fill in encoding, the transformer call and decoding."""

    pipeline_module = "diffusers.pipelines.flux.pipeline_flux"
    prepare_latents_takes_image = False
    """Edit pipelines' ``prepare_latents`` take the condition image first."""

    def __init__(
        self,
        pipe: Any,
        *,
        guidance_scale: float,
        max_sequence_length: int,
        negative_prompt: str = " ",
        true_cfg: bool = True,
    ):
        self.pipe = pipe
        self.guidance_scale = guidance_scale
        self.max_sequence_length = max_sequence_length
        self.negative_prompt = negative_prompt
        self.true_cfg = true_cfg

    @property
    def device(self) -> torch.device:
        return self.pipe.transformer.device

    @property
    def dtype(self) -> torch.dtype:
        return self.pipe.transformer.dtype

    @property
    def num_latent_channels(self) -> int:
        return self.pipe.transformer.config.in_channels // 4

    def latent_size(self, height: int, width: int) -> tuple[int, int]:
        factor = self.pipe.vae_scale_factor * 2
        return 2 * (height // factor), 2 * (width // factor)

    def image_seq_len(self, height: int, width: int) -> int:
        latent_h, latent_w = self.latent_size(height, width)
        return (latent_h // 2) * (latent_w // 2)

    def schedule(self, num_steps: int, height: int, width: int) -> Schedule:
        """The pipeline's (resolution-shifted) sigma schedule for this size."""
        module = importlib.import_module(self.pipeline_module)
        config = self.pipe.scheduler.config
        mu = module.calculate_shift(
            self.image_seq_len(height, width),
            config.get("base_image_seq_len", 256),
            config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5),
            config.get("max_shift", 1.15),
        )
        sigmas = np.linspace(1.0, 1 / num_steps, num_steps)
        timesteps, _ = module.retrieve_timesteps(self.pipe.scheduler, num_steps, "cpu", sigmas=sigmas, mu=mu)
        return Schedule(
            sigmas=[float(s) for s in self.pipe.scheduler.sigmas],
            timesteps=[float(t) for t in timesteps],
        )

    def initial_noise(
        self, batch_size: int, height: int, width: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Packed initial latents ``(B, seq, C*4)``, drawn on the CPU and moved to the device."""
        arguments = (
            batch_size,
            self.num_latent_channels,
            height,
            width,
            torch.float32,
            torch.device("cpu"),
            generator,
        )
        if self.prepare_latents_takes_image:
            arguments = (None, *arguments)  # no condition image: only the noise is wanted here
        latents = self.pipe.prepare_latents(*arguments)[0]
        return latents.to(self.device, self.dtype)

    def condition_latents(self, pixels: torch.Tensor, height: int, width: int) -> tuple:
        """An edit pipeline's ``prepare_latents`` on a condition image (batch size 1): what it
        returns, the condition's latents among them. The noise latents it also returns are given
        as zeros (never used), so no random numbers are drawn."""
        return self.pipe.prepare_latents(
            pixels,
            1,
            self.num_latent_channels,
            height,
            width,
            self.dtype,
            self.device,
            None,
            latents=torch.zeros(1, self.image_seq_len(height, width), self.num_latent_channels * 4),
        )

    @abstractmethod
    def encode(self, row: PromptRow, height: int, width: int) -> Conditioning:
        """Encode a row's text (and condition image) once; batch size 1."""

    @abstractmethod
    def velocity(
        self, transformer: Any, latents: torch.Tensor, timestep: float, cond: Conditioning
    ) -> torch.Tensor:
        """The transformer's velocity for packed ``latents`` ``(B, seq, C*4)`` at ``timestep``."""

    def decode(self, latents: torch.Tensor, height: int, width: int) -> list:
        """Final packed latents -> list of PIL images (the pipeline's VAE and post-processing)."""
        pipe = self.pipe
        latents = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)
        latents = latents / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
        with torch.no_grad():
            image = pipe.vae.decode(latents.to(pipe.vae.dtype), return_dict=False)[0]
        return pipe.image_processor.postprocess(image, output_type="pil")

    def _timestep(self, timestep: float, latents: torch.Tensor) -> torch.Tensor:
        # As the pipelines do: t (sigma * 1000) in the latents' dtype, divided by 1000.
        return (
            torch.full((latents.shape[0],), timestep, device=latents.device, dtype=torch.float32).to(
                latents.dtype
            )
            / 1000
        )

    def _guidance(self, batch_size: int) -> torch.Tensor | None:
        if not self.pipe.transformer.config.guidance_embeds:
            return None
        return torch.full((batch_size,), self.guidance_scale, device=self.device, dtype=torch.float32)


class FluxAdapter(RolloutAdapter):
    """FLUX.1-dev: text-to-image; one grid image per set prompt."""

    def encode(self, row: PromptRow, height: int, width: int) -> Conditioning:
        with torch.no_grad():
            prompt_embeds, pooled, text_ids = self.pipe.encode_prompt(
                prompt=[row.prompt],
                prompt_2=None,
                device=self.device,
                max_sequence_length=self.max_sequence_length,
            )
        latent_h, latent_w = self.latent_size(height, width)
        image_ids = self.pipe._prepare_latent_image_ids(
            1, latent_h // 2, latent_w // 2, self.device, self.dtype
        )
        return Conditioning(
            tensors={"prompt_embeds": prompt_embeds, "pooled": pooled},
            shared={"text_ids": text_ids, "image_ids": image_ids},
        )

    def velocity(
        self, transformer: Any, latents: torch.Tensor, timestep: float, cond: Conditioning
    ) -> torch.Tensor:
        batch = latents.shape[0]
        return transformer(
            hidden_states=latents,
            timestep=self._timestep(timestep, latents),
            guidance=self._guidance(batch),
            pooled_projections=cond.tensors["pooled"].expand(batch, -1),
            encoder_hidden_states=cond.tensors["prompt_embeds"].expand(batch, -1, -1),
            txt_ids=cond.shared["text_ids"],
            img_ids=cond.shared["image_ids"],
            return_dict=False,
        )[0]


class FluxKontextAdapter(FluxAdapter):
    """FLUX.1-Kontext-dev: the condition image's latents ride along the sequence."""

    pipeline_module = "diffusers.pipelines.flux.pipeline_flux_kontext"
    prepare_latents_takes_image = True

    def encode(self, row: PromptRow, height: int, width: int) -> Conditioning:
        cond = super().encode(row, height, width)
        image = load_condition_image(row, height, width)
        pixels = self.pipe.image_processor.preprocess(image, height, width)
        with torch.no_grad():
            _, image_latents, latent_ids, image_ids = self.condition_latents(pixels, height, width)
        cond.tensors["image_latents"] = image_latents
        cond.shared["image_ids"] = torch.cat([latent_ids, image_ids], dim=0)
        cond.shared["condition_image"] = image
        return cond

    def velocity(
        self, transformer: Any, latents: torch.Tensor, timestep: float, cond: Conditioning
    ) -> torch.Tensor:
        batch, seq = latents.shape[:2]
        image_latents = cond.tensors["image_latents"].expand(batch, -1, -1)
        model_input = torch.cat([latents, image_latents], dim=1)
        return super().velocity(transformer, model_input, timestep, cond)[:, :seq]


class QwenImageEditAdapter(RolloutAdapter):
    """Qwen-Image-Edit: true CFG with a negative prompt and the pipeline's norm rescale.

    True CFG runs when ``true_cfg`` is on and ``guidance_scale`` > 1. The released run passes
    no negative prompt, so its pipeline never runs true CFG (``sampling.true_cfg`` false)."""

    pipeline_module = "diffusers.pipelines.qwenimage.pipeline_qwenimage_edit"
    prepare_latents_takes_image = True

    @property
    def use_true_cfg(self) -> bool:
        return self.true_cfg and self.guidance_scale > 1

    def encode(self, row: PromptRow, height: int, width: int) -> Conditioning:
        image = load_condition_image(row, height, width)
        pixels = self.pipe.image_processor.preprocess(image, height, width).unsqueeze(2)
        with torch.no_grad():
            embeds, mask = self.pipe.encode_prompt(
                prompt=[row.prompt],
                image=image,
                device=self.device,
                max_sequence_length=self.max_sequence_length,
            )
            tensors = {"prompt_embeds": embeds, "prompt_mask": _mask_or_ones(mask, embeds)}
            if self.use_true_cfg:
                negative, negative_mask = self.pipe.encode_prompt(
                    prompt=[self.negative_prompt],
                    image=image,
                    device=self.device,
                    max_sequence_length=self.max_sequence_length,
                )
                tensors.update(negative_embeds=negative, negative_mask=_mask_or_ones(negative_mask, negative))
            _, image_latents = self.condition_latents(pixels, height, width)
        tensors["image_latents"] = image_latents
        latent_h, latent_w = self.latent_size(height, width)
        shape = (1, latent_h // 2, latent_w // 2)
        return Conditioning(tensors=tensors, shared={"img_shape": [shape, shape], "condition_image": image})

    def velocity(
        self, transformer: Any, latents: torch.Tensor, timestep: float, cond: Conditioning
    ) -> torch.Tensor:
        batch, seq = latents.shape[:2]
        model_input = torch.cat([latents, cond.tensors["image_latents"].expand(batch, -1, -1)], dim=1)
        t = self._timestep(timestep, latents)

        def run(embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return transformer(
                hidden_states=model_input,
                timestep=t,
                guidance=None,
                encoder_hidden_states_mask=mask.expand(batch, -1),
                encoder_hidden_states=embeds.expand(batch, -1, -1),
                img_shapes=[cond.shared["img_shape"]] * batch,
                return_dict=False,
            )[0][:, :seq]

        velocity = run(cond.tensors["prompt_embeds"], cond.tensors["prompt_mask"])
        if not self.use_true_cfg:
            return velocity
        negative = run(cond.tensors["negative_embeds"], cond.tensors["negative_mask"])
        combined = negative + self.guidance_scale * (velocity - negative)
        return combined * (
            torch.norm(velocity, dim=-1, keepdim=True) / torch.norm(combined, dim=-1, keepdim=True)
        )

    def decode(self, latents: torch.Tensor, height: int, width: int) -> list:
        pipe = self.pipe
        latents = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor).to(pipe.vae.dtype)
        z_dim = pipe.vae.config.z_dim
        mean = (
            torch.tensor(pipe.vae.config.latents_mean)
            .view(1, z_dim, 1, 1, 1)
            .to(latents.device, latents.dtype)
        )
        std = (
            torch.tensor(pipe.vae.config.latents_std)
            .view(1, z_dim, 1, 1, 1)
            .to(latents.device, latents.dtype)
        )
        with torch.no_grad():
            image = pipe.vae.decode(latents * std + mean, return_dict=False)[0][:, :, 0]
        return pipe.image_processor.postprocess(image, output_type="pil")


def _mask_or_ones(mask: torch.Tensor | None, embeds: torch.Tensor) -> torch.Tensor:
    if mask is None:
        return torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
    return mask


def load_condition_image(row: PromptRow, height: int, width: int):
    """The edit row's image as RGB PIL, resized to the rollout size (the condition size)."""
    from PIL import Image

    from paco_core.images import open_image_file

    image = open_image_file(row.image_path, what="edit row image")
    return image.resize((width, height), Image.Resampling.LANCZOS)


def build_rollout_adapter(kind: str, pipe: Any, **options: Any) -> RolloutAdapter:
    """The adapter of a pipeline kind's family (its ``rollout_adapter``), built on ``pipe``."""
    if kind not in trainable_kinds():
        raise ConfigError(
            f"training supports the pipeline kinds {', '.join(trainable_kinds())}, got {kind!r}"
        )
    adapter_class = load_reference(family(kind).rollout_adapter or "")
    return adapter_class(pipe, **options)
