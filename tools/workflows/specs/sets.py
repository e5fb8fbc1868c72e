"""The set workflows: one consistent set judged; the best of 4 candidate sets."""

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

SAMURAI_THEME = "depicting a futuristic samurai's upper body in cyberpunk style with neon-lit armor."
SAMURAI_DESCRIPTION = (
    "All images maintain a sleek high-tech helmet and armor with glowing neon accents, set against a dark "
    "cyberpunk backdrop with holographic light effects. The character's identity and design remain unified."
)
SAMURAI_PANELS = "\n".join(
    (
        "The samurai gazes forward calmly, neon-blue lines tracing his angular visor.",
        "A confident smirk beneath the visor, lit by a subtle neon-pink glow; rain dots the shadowy background.",
        "The visor flares bright crimson as he narrows his eyes, orange energy surging across his armor.",
        "A diagonal crack splits the visor, leaking golden energy mist; the circuits flicker green.",
    )
)


def consistent_set_workflow(layouts: dict[str, NodeLayout]) -> dict:
    """FLUX.1-dev + PaCo LoRA -> a 2x2 set -> saved grid, previewed panels; the judge scores the
    panels against the set's judge theme (the grid prompt's preamble, as PaCo-RL trained)."""
    builder = WorkflowBuilder(layouts)
    loader, lora, judge = models_and_judge(builder)
    generate = generate_set(builder, 1, theme=FOX_THEME, description=FOX_DESCRIPTION, panels=FOX_PANELS)
    save_grid = builder.add("SaveImage", 2, title="Grid", filename_prefix="PaCo/consistent_set")
    panels = builder.add("PreviewImage", 2, title="Panels")
    score = builder.add("PaCoSetConsistency", 3, layout="batch", both_orders=False)
    heatmap = builder.add("PreviewImage", 3, title="Pair scores")
    report = builder.add("PreviewAny", 3, title="Judge report")

    builder.connect(lora, "pipeline", generate, "pipeline")
    builder.connect(generate, "grids", save_grid, "images")
    builder.connect(generate, "panels", panels, "images")
    builder.connect(judge, "judge", score, "judge")
    builder.connect(generate, "panels", score, "images")
    builder.connect(generate, "judge_theme", score, "theme")
    builder.connect(score, "heatmap", heatmap, "images")
    builder.connect(score, "report", report, "source")

    builder.group("1. Models", [loader, lora, judge], GROUP_COLORS["models"])
    builder.group("2. Generate a consistent set", [generate], GROUP_COLORS["generate"])
    builder.group("3. Save", [save_grid, panels], GROUP_COLORS["output"])
    builder.group("4. Judge the set (PaCo-Reward)", [score, heatmap, report], GROUP_COLORS["judge"])
    return builder.build("paco-consistent-set")


def best_of_n_workflow(layouts: dict[str, NodeLayout]) -> dict:
    """Four candidate sets (seeds 42..45) -> the judge ranks them -> the most consistent one is saved."""
    builder = WorkflowBuilder(layouts)
    loader, lora, judge = models_and_judge(builder)
    generate = generate_set(
        builder, 1, theme=SAMURAI_THEME, description=SAMURAI_DESCRIPTION, panels=SAMURAI_PANELS, num_sets=4
    )
    side_by_side = builder.add("PaCoComposeGrid", 2, title="The 4 candidates side by side", layout="2x2")
    candidates = builder.add("PreviewImage", 2, title="All candidates (set 1 top left)", height=460)
    rank = builder.add("PaCoRankSets", 3, layout="2x2", both_orders=False)
    best = builder.add("SaveImage", 3, title="Best set", filename_prefix="PaCo/best_of_4")
    ranking = builder.add("PreviewAny", 3, title="Ranking (which set and seed won)")

    builder.connect(lora, "pipeline", generate, "pipeline")
    builder.connect(generate, "grids", side_by_side, "panels")
    builder.connect(side_by_side, "grid", candidates, "images")
    builder.connect(judge, "judge", rank, "judge")
    builder.connect(generate, "grids", rank, "images")
    builder.connect(generate, "judge_theme", rank, "theme")
    builder.connect(generate, "first_seed", rank, "first_seed")
    builder.connect(rank, "best", best, "images")
    builder.connect(rank, "report", ranking, "source")

    builder.group("1. Models", [loader, lora, judge], GROUP_COLORS["models"])
    builder.group("2. Generate 4 candidate sets", [generate], GROUP_COLORS["generate"])
    builder.group("3. The candidates", [side_by_side, candidates], GROUP_COLORS["output"])
    builder.group("4. Rank them, keep the best", [rank, best, ranking], GROUP_COLORS["judge"])
    return builder.build("paco-best-of-n")


WORKFLOWS = {"paco-consistent-set": consistent_set_workflow, "paco-best-of-n": best_of_n_workflow}
