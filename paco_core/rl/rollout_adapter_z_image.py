"""The rollout adapter of Z-Image (``paco_core.families.z_image``): sets, true CFG.

Z-Image differs from FLUX in three ways the sampler must see through; the adapter hides
them so the SDE step (``paco_core.rl.sde``) sees the usual flow-matching velocity:

- latents are not packed: ``(B, C, H/8, W/8)``; the transformer takes a list of per-image
  ``(C, 1, h, w)`` tensors and a list of per-prompt text features of their own lengths;
- its timestep runs the other way: ``(1000 - t) / 1000`` (1 = clean);
- it predicts the negative velocity: the pipeline steps with ``-output``, and so does this.

True CFG follows ``ZImagePipeline``: ``pos + g * (pos - neg)`` with ``g`` > 0, the negative
prompt's features encoded once per row.
"""

from __future__ import annotations

from typing import Any

import torch

from paco_core.rl.data import PromptRow
from paco_core.rl.rollout_adapters import Conditioning, RolloutAdapter


class ZImageAdapter(RolloutAdapter):
    """Z-Image (base): text-to-image; one grid image per set prompt."""

    pipeline_module = "diffusers.pipelines.z_image.pipeline_z_image"

    @property
    def num_latent_channels(self) -> int:
        return self.pipe.transformer.config.in_channels

    @property
    def use_cfg(self) -> bool:
        return self.true_cfg and self.guidance_scale > 0

    def initial_noise(
        self, batch_size: int, height: int, width: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Unpacked initial latents ``(B, C, h, w)``, drawn on the CPU and moved to the device."""
        latents = self.pipe.prepare_latents(
            batch_size, self.num_latent_channels, height, width, torch.float32, torch.device("cpu"), generator
        )
        return latents.to(self.device, self.dtype)

    def encode(self, row: PromptRow, height: int, width: int) -> Conditioning:
        with torch.no_grad():
            positive, negative = self.pipe.encode_prompt(
                prompt=[row.prompt],
                device=self.device,
                do_classifier_free_guidance=self.use_cfg,
                negative_prompt=[self.negative_prompt],
                max_sequence_length=self.max_sequence_length,
            )
        tensors = {"prompt_embeds": positive[0]}
        if self.use_cfg:
            tensors["negative_embeds"] = negative[0]
        return Conditioning(tensors=tensors)

    def velocity(
        self, transformer: Any, latents: torch.Tensor, timestep: float, cond: Conditioning
    ) -> torch.Tensor:
        batch = latents.shape[0]
        images = list(latents.to(self.dtype).unsqueeze(2).unbind(0))  # B x (C, 1, h, w)
        texts = [cond.tensors["prompt_embeds"]] * batch
        if self.use_cfg:
            images, texts = images * 2, texts + [cond.tensors["negative_embeds"]] * batch
        t = torch.full(
            (len(images),), (1000.0 - timestep) / 1000.0, device=latents.device, dtype=torch.float32
        )
        output = torch.stack(transformer(images, t, texts, return_dict=False)[0]).squeeze(2)
        if self.use_cfg:
            positive, negative = output[:batch].float(), output[batch:].float()
            output = positive + self.guidance_scale * (positive - negative)
        return -output

    def decode(self, latents: torch.Tensor, height: int, width: int) -> list:
        pipe = self.pipe
        latents = latents / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
        with torch.no_grad():
            image = pipe.vae.decode(latents.to(pipe.vae.dtype), return_dict=False)[0]
        return pipe.image_processor.postprocess(image, output_type="pil")
