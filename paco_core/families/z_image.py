"""Z-Image (kind "z-image"): consistent multi-image sets as one grid image, beyond the paper.

Tongyi-MAI's Z-Image is a 6B single-stream flow-matching transformer (``ZImagePipeline`` in
diffusers >= 0.36) with a Qwen3-4B text encoder and FLUX.1's 16-channel VAE design. Two
releases share the architecture: **Z-Image** (the non-distilled base: true classifier-free
guidance, 28-50 steps) and **Z-Image-Turbo** (step-distilled: 8 steps, no guidance). PaCo-GRPO
needs the base (its policy is the guided velocity it samples with); sets generate with
either. Why this family and not FLUX.2 [klein]: docs/families.md.

What this module declares, beyond the :class:`Family` record:

- ComfyUI's files: the transformer in ``models/diffusion_models`` in the original Z-Image
  layout (fused ``attention.qkv``, ``attention.out``, ``q_norm`` / ``k_norm``,
  ``x_embedder`` / ``final_layer``), converted here both ways (:func:`comfy_to_diffusers`,
  :func:`diffusers_to_comfy`); the text encoder ``qwen_3_4b.safetensors`` in
  ``models/text_encoders`` (Qwen3 in the release names, ``model.layers...``, no LM head);
  the VAE file in ``models/vae`` has FLUX.1's ``ae`` layout and is read as FLUX's (the ``ae``
  file role). ComfyUI's tokenizer folder for Qwen3 is
  ``text_encoders/qwen25_tokenizer`` (the same vocabulary), whose Qwen2.5 chat template
  would add a system prompt Z-Image never saw: :data:`CHAT_TEMPLATE` replaces it.
- Sets: the prompt is encoded once per grid prompt (:func:`encode_set_prompt`), with the
  negative prompt when guidance is on.
- LoRA: diffusers names (``transformer.layers.0.attention.to_q.lora_A.weight``), which
  ComfyUI's LoRA loader maps onto its fused ``qkv`` (``transformer.``, ``diffusion_model.``
  and bare prefixes); training targets the attention projections and the SwiGLU
  feed-forward (``w1``, ``w2``, ``w3``) of every block, the refiners' included.

This module imports only the standard library and the record (torch inside functions): the
rollout adapter lives in ``paco_core.rl.rollout_adapter_z_image`` and the tiny models in
``paco_core.testing.z_image``, the layers they belong to.
"""

from __future__ import annotations

from paco_core.families.flux import AE
from paco_core.families.record import SETS, Architecture, Family, FileRole

KIND = "z-image"

QWEN3_4B = FileRole(
    name="qwen_3_4b",
    title="Qwen3-4B",
    component="text_encoder",
    help="qwen_3_4b.safetensors (models/text_encoders)",
    layout="transformers",
    key_markers=(("model.layers.0.self_attn.q_norm.weight",), ("layers.0.self_attn.q_norm.weight",)),
    convert=f"{__name__}:text_encoder_to_diffusers",
    specificity=1,
)
"""ComfyUI's Qwen3-4B text encoder file: Qwen3 has per-head query/key norms (``q_norm``), which
Qwen2.5-VL lacks; both have ``model.layers.0.self_attn.q_proj``, so this role is the more specific."""

ATTENTION_TARGETS: tuple[str, ...] = (
    "attention.to_q",
    "attention.to_k",
    "attention.to_v",
    "attention.to_out.0",
)
FEED_FORWARD_TARGETS: tuple[str, ...] = ("feed_forward.w1", "feed_forward.w2", "feed_forward.w3")

Z_IMAGE_ARCHITECTURE = Architecture(
    name="z-image",
    title="Z-Image",
    transformer_class="ZImageTransformer2DModel",
    transformer_markers=(
        ("noise_refiner.0.attention.qkv.weight", "cap_embedder.1.weight"),  # the original (ComfyUI) names
        ("noise_refiner.0.attention.to_q.weight", "cap_embedder.1.weight"),  # diffusers names
    ),
    single_file_transformer=False,
    text_encoders=(QWEN3_4B.name,),
    vae=AE.name,
    lora_markers=(".attention.to_q", ".feed_forward.w", "noise_refiner.", "context_refiner.", "cap_embedder"),
    attention_targets=ATTENTION_TARGETS,
    lora_targets=(*ATTENTION_TARGETS, *FEED_FORWARD_TARGETS),
    file_roles=(QWEN3_4B,),
    transformer_from_comfy=f"{__name__}:comfy_to_diffusers",
    comfy_clip_type="lumina2",
)
"""One stream of blocks over image and text tokens; refiner blocks before it for each."""

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Qwen3's chat template for Z-Image's one user message with thinking on: no system prompt,
no think block (``<|im_start|>user\\n{prompt}<|im_end|>\\n<|im_start|>assistant\\n``, the text
ComfyUI's own Z-Image text encoder builds)."""

# ---- the preset ----------------------------------------------------------------------------

T2IS_PRESET = "t2is-z-image"

_T2IS: dict = {
    "lora": {"target_modules": list(Z_IMAGE_ARCHITECTURE.lora_targets)},
    "sampling": {"num_steps": 10, "noise_steps": [1], "noise_level": 0.68, "guidance_scale": 4.0,
                 "true_cfg": True, "negative_prompt": "", "train_resolution": 512, "eval_resolution": 1024,
                 "reference_resolution": 1024, "eval_num_steps": 28},
    "advantages": {"global_std": True},
    "rewards": {"rewards": [{"name": "consistency", "weight": 0.2}, {"name": "clip_t", "weight": 1.0},
                            {"name": "pickscore", "weight": 1.0}],
                "aggregation": "log_tamed", "log_tame_threshold": 0.2, "log_tame_rewards": ["consistency", "clip_t"]},
    "checkpoint_every": 10, "eval_every": 10,
}  # fmt: skip
"""Beyond the paper: the released FLUX.1-dev T2IS run (``t2is-flux``) carried over to Z-Image.

- Kept from the FLUX run: 10 sampling steps with the SDE at step 1 (the same place in the
  schedule), 512 training / 1024 evaluation (the paper's resolution decoupling), LoRA rank 64
  / alpha 128, lr 3e-4, global std, the same three rewards and weights, and the paper's
  log-tamed aggregation (delta 0.2) that keeps sets from collapsing into duplicates.
- noise level 0.68 instead of 0.7: Z-Image's schedule is shifted by 3 (FLUX's at 512 by
  about 1.88), so step 1 sits at sigma 0.964 -> 0.923 instead of 0.944 -> 0.883; a = 0.68
  gives the same transition std (std_t * sqrt(-dt) = 0.72) as FLUX's a = 0.7.
- guidance 4.0 as true CFG with an empty negative prompt: the base model's recommended
  range (3-5; Z-Image computes ``pos + g * (pos - neg)``). FLUX.1-dev's 3.5 is a distilled
  guidance embedding Z-Image does not have. Each step runs the transformer twice; Z-Image
  (6B) is about half FLUX.1-dev (12B), so an iteration costs about the same.
- targets: attention and feed-forward of every block (FLUX's choice in Z-Image's names).
- evaluation 28 steps (the base model's lower recommended count) instead of FLUX's 20.
- the base model, not Turbo: Turbo's 8 distilled steps run without guidance and were not
  trained as a stochastic policy; a LoRA trained on the base is the usual way to Turbo.
"""

# ---- sets ------------------------------------------------------------------------------------


def encode_set_prompt(pipe, prompt: str, *, device, max_sequence_length: int, guidance: float) -> dict:
    """The pipeline call's prompt arguments for one grid prompt, encoded once for all seeds.

    Returns:
        ``prompt_embeds`` (and ``negative_prompt_embeds`` when ``guidance`` > 0: Z-Image then
        runs true CFG with an empty negative prompt, as ``ZImagePipeline`` does).
    """
    import torch

    with torch.no_grad():
        positive, negative = pipe.encode_prompt(
            prompt=[prompt],
            device=device,
            do_classifier_free_guidance=guidance > 0,
            max_sequence_length=max_sequence_length,
        )
    arguments = {"prompt_embeds": positive}
    if guidance > 0:
        arguments["negative_prompt_embeds"] = negative
    return arguments


# ---- ComfyUI's transformer layout ------------------------------------------------------------

_RENAMES = (
    (".attention.to_out.0.", ".attention.out."),
    (".attention.norm_q.", ".attention.q_norm."),
    (".attention.norm_k.", ".attention.k_norm."),
)
"""diffusers -> original names inside a block (the reverse reads them back)."""


def _patch_key(config: dict) -> str:
    """diffusers keeps the patch embedder and final layer per patch size: ``all_x_embedder.2-1``."""
    return f"{config.get('all_patch_size', [2])[0]}-{config.get('all_f_patch_size', [1])[0]}"


def diffusers_to_comfy(state_dict: dict, config: dict) -> dict:
    """A diffusers ``ZImageTransformer2DModel`` state dict in the original layout ComfyUI keeps.

    ``to_q`` / ``to_k`` / ``to_v`` are stacked into one ``qkv`` matrix (q rows first).
    """
    import torch

    patch = _patch_key(config)
    out: dict = {}
    for key, tensor in state_dict.items():
        if ".attention.to_k." in key or ".attention.to_v." in key:
            continue
        if ".attention.to_q." in key:
            parts = [state_dict[key.replace(".to_q.", f".to_{name}.")] for name in "qkv"]
            out[key.replace(".attention.to_q.", ".attention.qkv.")] = torch.cat(parts, dim=0)
            continue
        new = key.replace(f"all_x_embedder.{patch}.", "x_embedder.").replace(
            f"all_final_layer.{patch}.", "final_layer."
        )
        for old, replacement in _RENAMES:
            new = new.replace(old, replacement)
        out[new] = tensor
    return out


def comfy_to_diffusers(state_dict: dict, config: dict) -> dict:
    """ComfyUI's Z-Image transformer weights (original layout) in diffusers names.

    The fused ``qkv`` splits into three equal parts (Z-Image has as many key/value heads as
    query heads); an unused ``norm_final.weight`` some files carry is dropped.
    """
    patch = _patch_key(config)
    out: dict = {}
    for key, tensor in state_dict.items():
        if key == "norm_final.weight":
            continue
        if ".attention.qkv." in key:
            for name, part in zip("qkv", tensor.chunk(3, dim=0), strict=True):
                out[key.replace(".attention.qkv.", f".attention.to_{name}.")] = part
            continue
        new = key
        if new.startswith("x_embedder."):
            new = f"all_x_embedder.{patch}." + new.removeprefix("x_embedder.")
        elif new.startswith("final_layer."):
            new = f"all_final_layer.{patch}." + new.removeprefix("final_layer.")
        for replacement, old in _RENAMES:
            new = new.replace(old, replacement)
        out[new] = tensor
    return out


# ---- ComfyUI's text encoder file --------------------------------------------------------------


def text_encoder_to_diffusers(state_dict: dict) -> dict:
    """``qwen_3_4b.safetensors`` (release names, ``model.`` prefix, no LM head) in ``Qwen3Model`` names."""
    return {
        key.removeprefix("model."): tensor for key, tensor in state_dict.items() if key != "lm_head.weight"
    }


def text_encoder_to_comfy(state_dict: dict) -> dict:
    """A ``Qwen3Model`` state dict in the release names ComfyUI's ``qwen_3_4b`` file uses."""
    return {f"model.{key}": tensor for key, tensor in state_dict.items()}


FAMILY = Family(
    kind=KIND,
    title="Z-Image",
    task=SETS,
    pipeline_class="ZImagePipeline",
    diffusers_module="diffusers.pipelines.z_image.pipeline_z_image",
    architecture=Z_IMAGE_ARCHITECTURE,
    hub_id="Tongyi-MAI/Z-Image",
    config_folder=KIND,
    default_for_architecture=True,
    default_steps=28,
    default_guidance=4.0,
    rollout_adapter="paco_core.rl.rollout_adapter_z_image:ZImageAdapter",
    presets_beyond_the_paper={T2IS_PRESET: _T2IS},
    tiny_model="paco_core.testing.z_image:save_tiny_z_image",
    tiny_comfy_files="paco_core.testing.z_image:write_z_image_files",
    encode_set_prompt=f"{__name__}:encode_set_prompt",
    chat_template=CHAT_TEMPLATE,
)
