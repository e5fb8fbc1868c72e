"""FLUX.1-Kontext-dev (kind "flux-kontext"): instruction edits of one image, FLUX architecture.

The PaCo paper's editing model on FLUX (the released ``edit-kontext`` run; the released
config names FLUX.1-dev, a bug: the preset uses Kontext). Its transformer files look like
FLUX.1-dev's, so ComfyUI files make it only when the kind is named.
"""

from __future__ import annotations

from paco_core.families.flux import FLUX_ARCHITECTURE
from paco_core.families.record import EDIT, Family, edit_preset

KIND = "flux-kontext"

FAMILY = Family(
    kind=KIND,
    title="FLUX.1-Kontext-dev",
    task=EDIT,
    pipeline_class="FluxKontextPipeline",
    diffusers_module="diffusers.pipelines.flux.pipeline_flux_kontext",
    architecture=FLUX_ARCHITECTURE,
    hub_id="black-forest-labs/FLUX.1-Kontext-dev",
    config_folder=KIND,
    default_steps=28,
    default_guidance=2.5,
    num_references=1,
    edit_call="paco_core.generate:kontext_edit_call",
    rollout_adapter="paco_core.rl.rollout_adapters:FluxKontextAdapter",
    presets={
        "edit-kontext": edit_preset(
            FLUX_ARCHITECTURE.lora_targets,
            {"num_steps": 8, "noise_steps": [1], "noise_level": 0.9, "guidance_scale": 2.5},
        ),
    },
    tiny_model="paco_core.testing.flux:save_tiny_flux_kontext",
    tiny_comfy_files="paco_core.testing.comfy_layout:write_flux_kontext_files",
)
