"""What the shipped workflows share: the models note, the model names the tests place, the example
picture, the fox set's prompts, and the FLUX.1-dev + PaCo LoRA loaders."""

from __future__ import annotations

from tools.workflows.builder import PlacedNode, WorkflowBuilder

MODEL_FOLDER_NOTE = """\
Where the models go (ComfyUI/models/...); then press R to refresh:
diffusers/FLUX.1-dev/  the whole diffusers folder of
    black-forest-labs/FLUX.1-dev (the one holding model_index.json)
diffusers/FLUX.1-Kontext-dev/  the same for FLUX.1-Kontext-dev
loras/PaCo-FLUX.1-dev-Lora/  hf download X-GenGroup/PaCo-FLUX.1-dev-Lora
    --local-dir models/loras/PaCo-FLUX.1-dev-Lora  ('(none)': base model)
text_encoders/PaCo-Reward-7B/  the judge X-GenGroup/PaCo-Reward-7B
    (downloaded the same way), or a judge server URL
Memory: FLUX.1-dev in bf16 needs about 33 GB of GPU memory with
offload 'none' (choose 'model' on smaller cards); the judge about
16 GB more (keep_loaded off on both loaders to share one GPU)."""
"""Shown in every shipped workflow; the tests place models under exactly these names."""

SHIPPED_MODEL_NAMES = {
    "diffusers": ("FLUX.1-dev", "FLUX.1-Kontext-dev"),
    "loras": ("PaCo-FLUX.1-dev-Lora",),  # the folder `hf download ... --local-dir` makes
    "text_encoders": ("PaCo-Reward-7B",),
}
JUDGE_NAME = SHIPPED_MODEL_NAMES["text_encoders"][0]
EXAMPLE_INPUT_IMAGE = "example.png"
"""The picture ComfyUI ships in its input/ folder."""
DARK_NOTE = ("#222", "#000")

FOX_THEME = "a red fox with a vibrant red coat, white belly, and bushy tail in various scenarios."
FOX_DESCRIPTION = (
    "All images maintain hyper-realistic detail, with consistent rendering of the fox's fur texture, "
    "proportions, and coloration. The environments emphasize natural lighting and vivid atmospheres while "
    "keeping the fox as the focal point."
)
FOX_PANELS = "\n".join(
    (
        "A red fox wearing a thick, knitted warm coat in a snowy woodland. Soft snowflakes fall around it, "
        "and distant pine trees frame the wintry scene.",
        "The fox exploring a dense autumn forest, surrounded by golden leaves and moss-covered rocks. Sunlight "
        "filters through the canopy, casting dappled shadows on its fur.",
        "The fox wrapped in a patterned woolen scarf, sitting near a rustic wooden fence in a meadow, "
        "late-afternoon light on the white fur of its chest.",
        "The fox perched on a hilltop under a starry night sky, its head tilted upward, the Milky Way "
        "stretching above.",
    )
)


def models_note(builder: WorkflowBuilder, column: int) -> PlacedNode:
    return builder.add("Note", column, title="Read me: models", color=DARK_NOTE, text=MODEL_FOLDER_NOTE)


def flux_with_paco_lora(builder: WorkflowBuilder) -> tuple[PlacedNode, PlacedNode]:
    loader = builder.add("PaCoPipelineLoader", 0, model="FLUX.1-dev")
    lora = builder.add("PaCoLora", 0, lora_name=SHIPPED_MODEL_NAMES["loras"][0], strength=1.0)
    builder.connect(loader, "pipeline", lora, "pipeline")
    return loader, lora


def judge_loader(builder: WorkflowBuilder, column: int) -> PlacedNode:
    """PaCo Judge Loader with the PaCo-Reward-7B judge."""
    return builder.add("PaCoJudgeLoader", column, judge_name=JUDGE_NAME)
