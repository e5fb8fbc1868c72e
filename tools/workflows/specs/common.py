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


def models_and_judge(builder: WorkflowBuilder) -> tuple[PlacedNode, PlacedNode, PlacedNode]:
    """Column 0: FLUX.1-dev + PaCo LoRA and the judge; the models note opens column 1."""
    loader, lora = flux_with_paco_lora(builder)
    judge = judge_loader(builder, 0)
    models_note(builder, 1)
    return loader, lora, judge


def generate_set(
    builder: WorkflowBuilder,
    column: int,
    *,
    theme: str,
    description: str,
    panels: str,
    num_sets: int = 1,
    **place,
) -> PlacedNode:
    """PaCo Generate Set as the shipped workflows use it: a 2x2 grid of 512 px panels, 28 steps,
    guidance 3.5, seed 42 (``place``: the node's title or width)."""
    return builder.add(
        "PaCoGenerateSet",
        column,
        **place,
        theme=theme,
        description=description,
        panels=panels,
        layout="2x2",
        panel_width=512,
        panel_height=512,
        steps=28,
        guidance=3.5,
        seed=42,
        num_sets=num_sets,
    )


def train_lora(
    builder: WorkflowBuilder, column: int, *, training_prompts: str, rewards: str, lora_name: str
) -> PlacedNode:
    """PaCo Train LoRA on FLUX.1-dev with the t2is-flux preset and the shipped workflows' budget."""
    return builder.add(
        "PaCoTrainLora",
        column,
        pipeline="FLUX.1-dev",
        preset="t2is-flux",
        training_prompts=training_prompts,
        rewards=rewards,
        iterations=300,
        learning_rate=3e-4,
        group_size=16,
        train_resolution=512,
        lora_name=lora_name,
        new_run=False,
    )


def use_trained_lora(
    builder: WorkflowBuilder,
    watch: PlacedNode,
    loader: PlacedNode,
    lora: PlacedNode,
    generate: PlacedNode,
    save: PlacedNode,
) -> None:
    """The watched job's LoRA on the pipeline (PaCo LoRA) -> PaCo Generate Set -> saved grids."""
    builder.connect(loader, "pipeline", lora, "pipeline")
    builder.connect(watch, "lora_name", lora, "lora_name")
    builder.connect(lora, "pipeline", generate, "pipeline")
    builder.connect(generate, "grids", save, "images")
