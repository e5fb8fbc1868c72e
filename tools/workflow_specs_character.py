"""The shipped workflow "train a LoRA for my character" (workflows/paco-train-character.json).

References of the character -> PaCo Prompt Set -> PaCo Train LoRA (the reference reward judges
every panel against the references) -> PaCo Training Job -> a held-out set made with the trained
LoRA (its latest evaluation sample, saved), and the LoRA's name for PaCo LoRA.
Registered in ``workflow_convert.SHIPPED_WORKFLOWS``; the walk-through is
docs/train-your-character.md.
"""

from __future__ import annotations

CHARACTER = "a red-haired girl with a green scarf and round glasses"
CHARACTER_LORA_NAME = "my-character"
SCENES = ("a sunny park", "a cozy kitchen", "a beach at sunset", "a library")
POSES = ("standing", "sitting", "walking")
EXPRESSIONS = ("smiling", "thoughtful", "surprised")
CAMERA_ANGLES = ("front view", "three-quarter view", "full-body shot")
"""Short lists keep the node small in the workflow; PaCo Prompt Set's own defaults are longer."""


def character_training_workflow(layouts, convert) -> dict:
    """Reference images (LoadImage: a batch of views of the character works best) and a prompt set
    built from a one-line description train a LoRA with the reference reward weighted with the
    set-consistency reward; PaCo Training Job shows the job and saves the latest held-out set made
    with the trained LoRA, and hands the LoRA on (``lora_name``) for PaCo LoRA -> PaCo Generate Set.

    ``convert`` is the ``workflow_convert`` module that calls this (run as a script it is
    ``__main__``): its builder, whose layout classes are the caller's. A PaCo LoRA -> PaCo Generate
    Set pair does not fit the screen with these nodes (tests/test_workflows.py's readability rule);
    paco-train-lora shows that part."""
    builder = convert.WorkflowBuilder(layouts)
    judge = builder.add("PaCoJudgeLoader", 0, judge_name="PaCo-Reward-7B")
    references = builder.add("LoadImage", 0, title="References of your character", image=convert.EXAMPLE_INPUT_IMAGE)
    convert._models_note(builder, 0)
    prompt_set = builder.add(
        "PaCoPromptSet", 1, subject=CHARACTER, style="Watercolor illustration.", scenes="\n".join(SCENES),
        poses="; ".join(POSES), expressions="; ".join(EXPRESSIONS), camera_angles="; ".join(CAMERA_ANGLES),
        layout="2x2", rows_per_scene=4, held_out_scenes=1, seed=0,
    )  # fmt: skip
    train = builder.add(
        "PaCoTrainLora", 1, pipeline="FLUX.1-dev", preset="t2is-flux", training_prompts="",
        rewards="reference=1, consistency=0.5", iterations=300, learning_rate=3e-4, group_size=16,
        train_resolution=512, lora_name=CHARACTER_LORA_NAME, new_run=False,
    )  # fmt: skip
    watch = builder.add("PaCoTrainingJob", 2, lora="best")
    save = builder.add("SaveImage", 2, title="A held-out set with the trained LoRA", filename_prefix="PaCo/character")

    builder.connect(references, "IMAGE", train, "references")
    builder.connect(prompt_set, "prompt_set", train, "prompt_set")
    builder.connect(judge, "judge", train, "judge")
    builder.connect(train, "job", watch, "job")
    builder.connect(watch, "sample", save, "images")

    colors = convert.GROUP_COLORS
    builder.group("1. Judge and your references", [judge, references], colors["models"])
    builder.group("2. Prompts, then train (returns at once)", [prompt_set, train], colors["judge"])
    builder.group("3. Watch (queue to refresh)", [watch, save], colors["generate"])
    return builder.build("paco-train-character")
