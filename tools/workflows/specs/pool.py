"""The shipped workflow "the most consistent set from a pool".

FLUX.1-dev with the PaCo LoRA draws 4 candidate sets of the same 4 panels (seeds 42..45);
PaCo Most Consistent Set From a Pool scores every pair of panels across the candidates once
and keeps, per panel, the candidate that makes the most consistent set; the assembled grid
is saved; the choice picture shows every candidate (with its own score, what best-of-N
ranks) with the chosen panels framed; the pair heatmaps and the report compare the assembled
set with the best whole set.
"""

from __future__ import annotations

from tools.workflows.builder import GROUP_COLORS, WorkflowBuilder
from tools.workflows.format import NodeLayout
from tools.workflows.specs.common import (
    FOX_DESCRIPTION,
    FOX_PANELS,
    FOX_THEME,
    generate_set,
    models_and_judge,
)

POOL_WORKFLOW = "paco-pool"
NUM_CANDIDATES = 4


def pool_workflow(layouts: dict[str, NodeLayout]) -> dict:
    """Generate 4 candidate sets -> assemble the most consistent set -> save it, show the rest."""
    builder = WorkflowBuilder(layouts)
    loader, lora, judge = models_and_judge(builder)
    generate = generate_set(
        builder, 1, theme=FOX_THEME, description=FOX_DESCRIPTION, panels=FOX_PANELS, num_sets=NUM_CANDIDATES
    )
    pool = builder.add("PaCoPoolAssemble", 2, layout="2x2", both_orders=False)
    report = builder.add("PreviewAny", 2, title="Report (assembled vs best of 4)")
    heatmaps = builder.add("PreviewImage", 2, title="Pair scores: assembled, best whole set")
    assembled = builder.add("SaveImage", 3, title="Assembled set", filename_prefix="PaCo/pool_assembled")
    choice = builder.add("PreviewImage", 3, title="Every candidate; the chosen panels framed", height=460)

    builder.connect(lora, "pipeline", generate, "pipeline")
    builder.connect(judge, "judge", pool, "judge")
    builder.connect(generate, "grids", pool, "images")
    builder.connect(generate, "judge_theme", pool, "theme")
    builder.connect(pool, "report", report, "source")
    builder.connect(pool, "grid", assembled, "images")
    builder.connect(pool, "choice_picture", choice, "images")
    builder.connect(pool, "heatmaps", heatmaps, "images")

    builder.group("1. Models", [loader, lora, judge], GROUP_COLORS["models"])
    builder.group(f"2. Generate {NUM_CANDIDATES} candidate sets", [generate], GROUP_COLORS["generate"])
    builder.group("3. One candidate per panel", [pool, report, heatmaps], GROUP_COLORS["judge"])
    builder.group("4. The assembled set", [assembled, choice], GROUP_COLORS["output"])
    return builder.build(POOL_WORKFLOW)


WORKFLOWS = {POOL_WORKFLOW: pool_workflow}
