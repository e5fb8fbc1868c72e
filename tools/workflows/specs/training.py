"""The training workflow: PaCo Train LoRA as a background job, watched, its best LoRA used."""

from __future__ import annotations

from tools.workflows.builder import GROUP_COLORS, WorkflowBuilder
from tools.workflows.format import NodeLayout
from tools.workflows.specs.common import (
    FOX_THEME,
    SHIPPED_MODEL_NAMES,
    generate_set,
    judge_loader,
    models_note,
    train_lora,
    use_trained_lora,
)

TRAINING_PROMPTS = """[2x2] a red fox with a vibrant red coat, white belly and bushy tail, watercolor
The fox sits on a mossy log in an autumn forest.
The fox leaps over a frozen stream in the snow.
The fox sleeps curled under a pine tree at dusk.
The fox watches the full moon from a hilltop.

[1x3] an old lighthouse keeper with a grey beard and a yellow raincoat, ink and wash
He climbs the spiral stairs with a lantern.
He lights the great lamp at the top of the tower.
He waves at a passing ship in the morning fog."""
"""The training workflow's example prompts: one set per block (a theme line, one line per panel)."""
TRAINED_LORA_NAME = "paco-sets"
SHORT_FOX_PANELS = "\n".join(
    (
        "The fox in a knitted coat in a snowy woodland.",
        "The fox exploring a golden autumn forest.",
        "The fox in a woolen scarf by a meadow fence.",
        "The fox on a hilltop under the Milky Way.",
    )
)


def train_lora_workflow(layouts: dict[str, NodeLayout]) -> dict:
    """PaCo Train LoRA starts a background job (the queue moves on); PaCo Training Job shows its
    status, latest sample and reward curves on the node and hands its best LoRA to PaCo LoRA -> PaCo
    Generate Set. Queue again at any time to refresh; the set is made once the first checkpoint
    exists (before that the LoRA's users are skipped)."""
    builder = WorkflowBuilder(layouts)
    loader = builder.add("PaCoPipelineLoader", 0, model="FLUX.1-dev")
    judge = judge_loader(builder, 0)
    lora = builder.add("PaCoLora", 0, lora_name=SHIPPED_MODEL_NAMES["loras"][0], strength=1.0)
    models_note(builder, 0)
    train = train_lora(
        builder, 1, training_prompts=TRAINING_PROMPTS, rewards="consistency=1", lora_name=TRAINED_LORA_NAME
    )
    watch = builder.add("PaCoTrainingJob", 1, lora="best")
    generate = generate_set(builder, 2, theme=FOX_THEME, description="", panels=SHORT_FOX_PANELS)
    save = builder.add("SaveImage", 2, title="Set with the trained LoRA", filename_prefix="PaCo/trained_lora")

    builder.connect(judge, "judge", train, "judge")
    builder.connect(train, "job", watch, "job")
    use_trained_lora(builder, watch, loader, lora, generate, save)

    builder.group("1. Models", [loader, judge, lora], GROUP_COLORS["models"])
    builder.group("2. Train (returns at once), watch (queue again)", [train, watch], GROUP_COLORS["judge"])
    builder.group("3. A set with its best LoRA", [generate, save], GROUP_COLORS["generate"])
    return builder.build("paco-train-lora")


WORKFLOWS = {"paco-train-lora": train_lora_workflow}
