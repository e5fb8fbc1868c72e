"""The ComfyUI core nodes the shipped workflows may use, by hand: their shapes in ``/object_info`` order."""

from __future__ import annotations

from paco_core.families import FLUX
from tools.workflows.format import NodeLayout, Slot, Widget

CORE_NODE_LAYOUTS: dict[str, NodeLayout] = {
    layout.node_type: layout
    for layout in (
        NodeLayout(
            "SaveImage",
            (Slot("images", "IMAGE"),),
            (Widget("filename_prefix", "STRING", "ComfyUI"),),
            (Slot("images", "IMAGE"),),
        ),
        NodeLayout("PreviewImage", (Slot("images", "IMAGE"),), outputs=(Slot("images", "IMAGE"),)),
        NodeLayout("PreviewAny", (Slot("source", "*"),), outputs=(Slot("STRING", "STRING"),)),
        NodeLayout(
            "LoadImage",
            widgets=(Widget("image", "COMBO"), Widget("upload", "IMAGEUPLOAD", "image", in_prompt=False)),
            outputs=(Slot("IMAGE", "IMAGE"), Slot("MASK", "MASK")),
        ),
        NodeLayout(
            "ImageFromBatch",
            (Slot("image", "IMAGE"),),
            (
                Widget("batch_index", "INT", 0, min=-16384, max=16384),
                Widget("length", "INT", 1, min=1, max=4096),
            ),
            (Slot("IMAGE", "IMAGE"),),
        ),
        NodeLayout(
            "PrimitiveStringMultiline",
            widgets=(Widget("value", "STRING", multiline=True),),
            outputs=(Slot("STRING", "STRING"),),
        ),
        NodeLayout("Note", widgets=(Widget("text", "STRING", "", multiline=True),), is_virtual=True),
        # ComfyUI's own model loaders and sampling nodes, for the native-node workflows.
        NodeLayout(
            "UNETLoader",
            widgets=(Widget("unet_name", "COMBO"), Widget("weight_dtype", "COMBO", "default")),
            outputs=(Slot("MODEL", "MODEL"),),
        ),
        NodeLayout(
            "DualCLIPLoader",
            widgets=(
                Widget("clip_name1", "COMBO"),
                Widget("clip_name2", "COMBO"),
                Widget("type", "COMBO", FLUX.architecture.comfy_clip_type),
                Widget("device", "COMBO", "default", optional=True),
            ),
            outputs=(Slot("CLIP", "CLIP"),),
        ),
        NodeLayout(
            "CLIPLoader",
            widgets=(
                Widget("clip_name", "COMBO"),
                Widget("type", "COMBO"),
                Widget("device", "COMBO", "default", optional=True),
            ),
            outputs=(Slot("CLIP", "CLIP"),),
        ),
        NodeLayout("VAELoader", widgets=(Widget("vae_name", "COMBO"),), outputs=(Slot("VAE", "VAE"),)),
        NodeLayout(
            "LoraLoaderModelOnly",
            (Slot("model", "MODEL"),),
            (Widget("lora_name", "COMBO"), Widget("strength_model", "FLOAT", 1.0, min=-100.0, max=100.0)),
            (Slot("MODEL", "MODEL"),),
        ),
        NodeLayout(
            "CLIPTextEncode",
            (Slot("clip", "CLIP"),),
            (Widget("text", "STRING", "", multiline=True),),
            (Slot("CONDITIONING", "CONDITIONING"),),
        ),
        NodeLayout(
            "FluxGuidance",
            (Slot("conditioning", "CONDITIONING"),),
            (Widget("guidance", "FLOAT", 3.5, min=0.0, max=100.0),),
            (Slot("CONDITIONING", "CONDITIONING"),),
        ),
        NodeLayout(
            "ConditioningZeroOut",
            (Slot("conditioning", "CONDITIONING"),),
            outputs=(Slot("CONDITIONING", "CONDITIONING"),),
        ),
        NodeLayout(
            "EmptySD3LatentImage",
            widgets=(
                Widget("width", "INT", 1024, min=16, max=16384),
                Widget("height", "INT", 1024, min=16, max=16384),
                Widget("batch_size", "INT", 1, min=1, max=4096),
            ),
            outputs=(Slot("LATENT", "LATENT"),),
        ),
        NodeLayout(
            "KSampler",
            (
                Slot("model", "MODEL"),
                Slot("positive", "CONDITIONING"),
                Slot("negative", "CONDITIONING"),
                Slot("latent_image", "LATENT"),
            ),
            (
                Widget("seed", "INT", 0, min=0, max=18446744073709551615, has_control=True),
                Widget("steps", "INT", 20, min=1, max=10000),
                Widget("cfg", "FLOAT", 8.0, min=0.0, max=100.0),
                Widget("sampler_name", "COMBO", "euler"),
                Widget("scheduler", "COMBO", "simple"),
                Widget("denoise", "FLOAT", 1.0, min=0.0, max=1.0),
            ),
            (Slot("LATENT", "LATENT"),),
        ),
        NodeLayout(
            "VAEDecode", (Slot("samples", "LATENT"), Slot("vae", "VAE")), outputs=(Slot("IMAGE", "IMAGE"),)
        ),
        NodeLayout(
            "VAEEncode", (Slot("pixels", "IMAGE"), Slot("vae", "VAE")), outputs=(Slot("LATENT", "LATENT"),)
        ),
        NodeLayout("FluxKontextImageScale", (Slot("image", "IMAGE"),), outputs=(Slot("IMAGE", "IMAGE"),)),
        NodeLayout(
            "ReferenceLatent",
            (Slot("conditioning", "CONDITIONING"), Slot("latent", "LATENT", optional=True)),
            outputs=(Slot("CONDITIONING", "CONDITIONING"),),
        ),
        NodeLayout(
            "TextEncodeQwenImageEdit",
            (
                Slot("clip", "CLIP"),
                Slot("vae", "VAE", optional=True),
                Slot("image", "IMAGE", optional=True),
            ),
            (Widget("prompt", "STRING", "", multiline=True),),
            (Slot("CONDITIONING", "CONDITIONING"),),
        ),
        NodeLayout(
            "ImageScaleToTotalPixels",
            (Slot("image", "IMAGE"),),
            (
                Widget("upscale_method", "COMBO", "lanczos"),
                Widget("megapixels", "FLOAT", 1.0, min=0.01, max=16.0),
                Widget("resolution_steps", "INT", 1, min=1, max=256),
            ),
            (Slot("IMAGE", "IMAGE"),),
        ),
        NodeLayout(
            "ModelSamplingAuraFlow",
            (Slot("model", "MODEL"),),
            (Widget("shift", "FLOAT", 1.73, min=0.0, max=100.0),),
            (Slot("MODEL", "MODEL"),),
        ),
    )
}
"""The core nodes the shipped workflows may use, with their inputs in ``/object_info``
order (checked against a real ComfyUI by tests/test_comfyui_integration.py)."""
