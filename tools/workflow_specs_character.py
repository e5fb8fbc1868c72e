"""The shipped workflow "train a LoRA for my character" (workflows/paco-train-character.json).

References of the character -> PaCo Prompt Set -> PaCo Train LoRA (the reference reward judges
every panel against the references) -> PaCo Training Job -> a set with the trained LoRA.
Registered in ``workflow_convert.SHIPPED_WORKFLOWS``; the walk-through is
docs/train-your-character.md.
"""

from __future__ import annotations

CHARACTER = "a red-haired girl with a green scarf and round glasses"
CHARACTER_LORA_NAME = "my-character"
CHARACTER_PANELS = "\n".join(
    (
        "She reads a book on a park bench.",
        "She laughs in a rainy street at night.",
        "She cooks pancakes in a cozy kitchen.",
        "She waves from a snowy mountain path.",
    )
)


def character_training_workflow(layouts) -> dict:
    """Reference images (LoadImage: a batch of views of the character works best) and a prompt set
    built from a one-line description train a LoRA with the reference reward weighted with the
    set-consistency reward; PaCo Training Job hands the best LoRA to a set of new scenes."""
    from workflow_convert import EXAMPLE_INPUT_IMAGE, GROUP_COLORS, WorkflowBuilder, _models_note

    builder = WorkflowBuilder(layouts)
    loader = builder.add("PaCoPipelineLoader", 0, model="FLUX.1-dev")
    judge = builder.add("PaCoJudgeLoader", 0, judge_name="PaCo-Reward-7B")
    lora = builder.add("PaCoLora", 0, lora_name="paco_t2is.safetensors", strength=1.0)
    _models_note(builder, 0)
    references = builder.add("LoadImage", 1, title="References of your character", image=EXAMPLE_INPUT_IMAGE)
    prompt_set = builder.add("PaCoPromptSet", 1, subject=CHARACTER, style="Watercolor illustration.",
                             layout="2x2", rows_per_scene=4, held_out_scenes=1, seed=0)  # fmt: skip
    train = builder.add(
        "PaCoTrainLora", 2, pipeline="FLUX.1-dev", preset="t2is-flux", training_prompts="",
        rewards="reference=1, consistency=0.5", iterations=300, learning_rate=3e-4, group_size=16,
        train_resolution=512, lora_name=CHARACTER_LORA_NAME, new_run=False,
    )  # fmt: skip
    watch = builder.add("PaCoTrainingJob", 2, lora="best")
    generate = builder.add(
        "PaCoGenerateSet", 3, theme=f"depicting {CHARACTER}.", description="Watercolor illustration.",
        panels=CHARACTER_PANELS, layout="2x2", panel_width=512, panel_height=512, steps=28, guidance=3.5,
        seed=42, num_sets=1,
    )  # fmt: skip
    save = builder.add("SaveImage", 3, title="Your character with the trained LoRA", filename_prefix="PaCo/character")

    builder.connect(references, "IMAGE", train, "references")
    builder.connect(prompt_set, "prompt_set", train, "prompt_set")
    builder.connect(judge, "judge", train, "judge")
    builder.connect(train, "job", watch, "job")
    builder.connect(loader, "pipeline", lora, "pipeline")
    builder.connect(watch, "lora_name", lora, "lora_name")
    builder.connect(lora, "pipeline", generate, "pipeline")
    builder.connect(generate, "grids", save, "images")

    builder.group("1. Models", [loader, judge, lora], GROUP_COLORS["models"])
    builder.group("2. Your character: references and prompts", [references, prompt_set], GROUP_COLORS["output"])
    builder.group("3. Train and watch (returns at once)", [train, watch], GROUP_COLORS["judge"])
    builder.group("4. New scenes with the trained LoRA", [generate, save], GROUP_COLORS["generate"])
    return builder.build("paco-train-character")
