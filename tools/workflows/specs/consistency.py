"""The consistency tools' shipped workflows: "a set of your character" and "repair the odd panel"."""

from __future__ import annotations

from tools.workflows.builder import GROUP_COLORS, WorkflowBuilder
from tools.workflows.format import NodeLayout
from tools.workflows.specs.common import (
    EXAMPLE_INPUT_IMAGE,
    models_and_judge,
)

CHARACTER_THEME = "the character of the reference picture in three everyday scenes, one consistent look."
CHARACTER_PANELS = "\n".join(
    (
        "The character walks through a busy market at noon.",
        "The character reads a book by a window on a rainy afternoon.",
        "The character waves goodbye at a train station at dusk.",
    )
)
REPAIR_THEME = "a red fox with a vibrant red coat, white belly, and bushy tail in four seasons."
"""The set's theme, typed where the set comes from a file (wire PaCo Generate Set's judge_theme otherwise)."""


def reference_set_workflow(layouts: dict[str, NodeLayout]) -> dict:
    """A reference picture in the grid's first cell; FLUX.1-dev + PaCo LoRA draws three more panels
    around it; the judge says which panels keep the reference's identity."""
    builder = WorkflowBuilder(layouts)
    loader, lora, judge = models_and_judge(builder)
    reference = builder.add("LoadImage", 1, title="Your reference", image=EXAMPLE_INPUT_IMAGE)
    make = builder.add(
        "PaCoReferenceSet",
        2,
        theme=CHARACTER_THEME,
        description="",
        panels=CHARACTER_PANELS,
        layout="2x2",
        panel_width=512,
        panel_height=512,
        steps=28,
        seed=42,
        identity_threshold=0.5,
    )
    save = builder.add(
        "SaveImage", 3, title="The set (reference top left)", filename_prefix="PaCo/character_set"
    )
    heatmap = builder.add("PreviewImage", 3, title="Pair scores (row/column 1: the reference)")
    report = builder.add("PreviewAny", 3, title="Who keeps the identity")

    builder.connect(lora, "pipeline", make, "pipeline")
    builder.connect(judge, "judge", make, "judge")
    builder.connect(reference, "IMAGE", make, "references")
    builder.connect(make, "grid", save, "images")
    builder.connect(make, "heatmap", heatmap, "images")
    builder.connect(make, "report", report, "source")

    builder.group("1. Models", [loader, lora, judge], GROUP_COLORS["models"])
    builder.group("2. Reference", [reference], GROUP_COLORS["output"])
    builder.group("3. A set around the reference", [make], GROUP_COLORS["generate"])
    builder.group("4. The set and the judge's verdict", [save, heatmap, report], GROUP_COLORS["judge"])
    return builder.build("paco-character-set")


def repair_workflow(layouts: dict[str, NodeLayout]) -> dict:
    """Your set (one grid image), its weakest panel redrawn by FLUX.1-dev + PaCo LoRA (up to 3 rounds
    of 2 tries) until the judge's set score reaches 0.85; the pair heatmaps before and after."""
    builder = WorkflowBuilder(layouts)
    loader, lora, judge = models_and_judge(builder)
    your_set = builder.add("LoadImage", 1, title="Your set (one 2x2 grid image)", image=EXAMPLE_INPUT_IMAGE)
    heatmap_before = builder.add("PreviewImage", 1, title="Pair scores before", height=260)
    repair = builder.add(
        "PaCoRepairSet",
        2,
        theme=REPAIR_THEME,
        layout="2x2",
        target_score=0.85,
        tries_per_round=2,
        max_rounds=3,
        steps=28,
        seed=42,
    )
    after = builder.add("SaveImage", 3, title="After", filename_prefix="PaCo/repaired_set", height=260)
    heatmap_after = builder.add("PreviewImage", 3, title="Pair scores after", height=260)
    report = builder.add("PreviewAny", 3, title="Repair log (panel, tries, scores)")

    builder.connect(lora, "pipeline", repair, "pipeline")
    builder.connect(judge, "judge", repair, "judge")
    builder.connect(your_set, "IMAGE", repair, "images")
    builder.connect(repair, "grid", after, "images")
    builder.connect(repair, "heatmap_before", heatmap_before, "images")
    builder.connect(repair, "heatmap_after", heatmap_after, "images")
    builder.connect(repair, "report", report, "source")

    builder.group("1. Models", [loader, lora, judge], GROUP_COLORS["models"])
    builder.group("2. Your set", [your_set, heatmap_before], GROUP_COLORS["output"])
    builder.group("3. Repair the odd panel", [repair], GROUP_COLORS["judge"])
    builder.group("4. After, and the log", [after, heatmap_after, report], GROUP_COLORS["output"])
    return builder.build("paco-repair-odd-panel")


WORKFLOWS = {
    "paco-character-set": reference_set_workflow,
    "paco-repair-odd-panel": repair_workflow,
}
