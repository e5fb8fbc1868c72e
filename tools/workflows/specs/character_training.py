"""The shipped workflow "train a LoRA for my character" (workflows/paco-train-character.json).

References of the character -> PaCo Prompt Set -> PaCo Train LoRA (the reference reward judges
every panel against the references) -> PaCo Training Job (its latest held-out sample, saved) ->
PaCo LoRA on FLUX.1-dev -> PaCo Generate Set: a set of new scenes made with the trained LoRA.
The walk-through is docs/train-your-character.md.
"""

from __future__ import annotations

from tools.workflows.builder import GROUP_COLORS, WorkflowBuilder
from tools.workflows.format import NodeLayout
from tools.workflows.specs.common import (
    EXAMPLE_INPUT_IMAGE,
    SHIPPED_MODEL_NAMES,
    generate_set,
    judge_loader,
    models_note,
    train_lora,
    use_trained_lora,
)

CHARACTER = "a red-haired girl with a green scarf and round glasses"
CHARACTER_LORA_NAME = "my-character"
SCENES = ("a sunny park", "a cozy kitchen", "a beach at sunset", "a library")
POSES = ("standing", "sitting", "walking")
EXPRESSIONS = ("smiling", "thoughtful", "surprised")
CAMERA_ANGLES = ("front view", "three-quarter view", "full-body shot")
"""Short lists keep the node small in the workflow; PaCo Prompt Set's own defaults are longer."""
NEW_SCENES = (
    "She reads a book under a tree in the rain.",
    "She buys apples at a busy market stall.",
    "She waves from a train window.",
    "She sketches on a rooftop at night.",
)
"""The set made with the trained LoRA: scenes it never trained on."""
NARROW_WIDTH = 330
"""PaCo Generate Set's width here (600 elsewhere), so that four columns fit a laptop screen."""


def character_training_workflow(layouts: dict[str, NodeLayout]) -> dict:
    """Reference images (LoadImage: a batch of views of the character works best) and a prompt set
    built from a one-line description train a LoRA with the reference reward weighted with the
    set-consistency reward; PaCo Training Job shows the job and saves the latest held-out set made
    with the trained LoRA, and hands the LoRA on (``lora_name``) to PaCo LoRA -> PaCo Generate Set,
    which makes a set of new scenes with it once the first checkpoint exists (until then the queue
    skips those nodes).

    Four columns, the last two narrow, keep the eleven nodes on a laptop screen
    (tests/test_workflows.py's readability rule)."""
    builder = WorkflowBuilder(layouts)
    prompt_set = builder.add(
        "PaCoPromptSet",
        0,
        subject=CHARACTER,
        style="Watercolor illustration.",
        scenes="\n".join(SCENES),
        poses="; ".join(POSES),
        expressions="; ".join(EXPRESSIONS),
        camera_angles="; ".join(CAMERA_ANGLES),
        layout="2x2",
        rows_per_scene=4,
        held_out_scenes=1,
        seed=0,
    )
    references = builder.add("LoadImage", 0, title="References of your character", image=EXAMPLE_INPUT_IMAGE)
    models_note(builder, 0)
    judge = judge_loader(builder, 1)
    train = train_lora(
        builder, 1, training_prompts="", rewards="reference=1, consistency=0.5", lora_name=CHARACTER_LORA_NAME
    )
    watch = builder.add("PaCoTrainingJob", 2, lora="best")
    held_out = builder.add(
        "SaveImage", 2, title="Held-out set, trained LoRA", filename_prefix="PaCo/character"
    )
    loader = builder.add("PaCoPipelineLoader", 2, model="FLUX.1-dev")
    lora = builder.add("PaCoLora", 2, lora_name=SHIPPED_MODEL_NAMES["loras"][0], strength=1.0)
    generate = generate_set(
        builder,
        3,
        node_width=NARROW_WIDTH,
        theme=f"{CHARACTER}, watercolor illustration.",
        description="",
        panels="\n".join(NEW_SCENES),
    )
    save = builder.add("SaveImage", 3, title="A set with your LoRA", filename_prefix="PaCo/character_set")

    builder.connect(references, "IMAGE", train, "references")
    builder.connect(prompt_set, "prompt_set", train, "prompt_set")
    builder.connect(judge, "judge", train, "judge")
    builder.connect(train, "job", watch, "job")
    builder.connect(watch, "sample", held_out, "images")
    use_trained_lora(builder, watch, loader, lora, generate, save)

    colors = GROUP_COLORS
    builder.group("1. Your prompts and references", [prompt_set, references], colors["models"])
    builder.group("2. The judge, then train (returns at once)", [judge, train], colors["judge"])
    builder.group("3. Watch (queue again)", [watch, held_out], colors["output"])
    builder.group("4. Its LoRA on FLUX.1-dev", [loader, lora], colors["models"])
    builder.group("5. A set with your LoRA", [generate, save], colors["generate"])
    return builder.build("paco-train-character")


WORKFLOWS = {"paco-train-character": character_training_workflow}
