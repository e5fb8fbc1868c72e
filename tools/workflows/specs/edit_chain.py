"""The edit chain workflow: a picture edited three times in a row, the first edit scored."""

from __future__ import annotations

from tools.workflows.builder import GROUP_COLORS, WorkflowBuilder
from tools.workflows.format import NodeLayout
from tools.workflows.specs.common import (
    EXAMPLE_INPUT_IMAGE,
    judge_loader,
    models_note,
)

EDIT_INSTRUCTIONS = (
    "Change the season to winter and cover the ground with fresh snow.",
    "Make it night, lit by warm lantern light.",
    "Turn the picture into a watercolor painting, keeping every shape and the composition the same.",
)


def edit_chain_workflow(layouts: dict[str, NodeLayout]) -> dict:
    """A picture edited three times in a row with FLUX.1-Kontext-dev; the judge scores the first
    edit against the chain's own first instruction."""
    builder = WorkflowBuilder(layouts)
    loader = builder.add("PaCoPipelineLoader", 0, model="FLUX.1-Kontext-dev")
    judge = judge_loader(builder, 0)
    models_note(builder, 1)
    reference = builder.add("LoadImage", 1, title="Reference", image=EXAMPLE_INPUT_IMAGE)
    chain = builder.add(
        "PaCoEditChain",
        2,
        instructions="\n".join(EDIT_INSTRUCTIONS),
        from_reference=False,
        include_reference=True,
        steps=28,
        model_guidance=True,
        seed=42,
        max_area=1024 * 1024,
    )
    save = builder.add("SaveImage", 2, title="Reference and edits", filename_prefix="PaCo/edit_chain")
    first_edit = builder.add("ImageFromBatch", 3, title="Edit 1 (batch item 1)", batch_index=1, length=1)
    score = builder.add("PaCoEditScore", 3)
    report = builder.add("PreviewAny", 3, title="Edit 1 scores")

    builder.connect(loader, "pipeline", chain, "pipeline")
    builder.connect(reference, "IMAGE", chain, "image")
    builder.connect(chain, "images", save, "images")
    builder.connect(chain, "images", first_edit, "image")
    builder.connect(judge, "judge", score, "judge")
    builder.connect(reference, "IMAGE", score, "original")
    builder.connect(first_edit, "IMAGE", score, "edited")
    builder.connect(chain, "first_instruction", score, "instruction")
    builder.connect(score, "report", report, "source")

    builder.group("1. Models", [loader, judge], GROUP_COLORS["models"])
    builder.group("2. Reference", [reference], GROUP_COLORS["output"])
    builder.group("3. Edit chain (each step edits the last)", [chain, save], GROUP_COLORS["generate"])
    builder.group("4. Score the first edit", [first_edit, score, report], GROUP_COLORS["judge"])
    return builder.build("paco-edit-chain")


WORKFLOWS = {"paco-edit-chain": edit_chain_workflow}
