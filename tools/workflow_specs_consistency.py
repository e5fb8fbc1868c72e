"""The consistency tools' shipped workflows: "a set of your character" and "repair the odd panel".

Built with ``tools/workflow_convert.py``'s builder from the node schemas; that module lists them
in ``SHIPPED_WORKFLOWS``, and ``python tools/workflow_convert.py`` writes ``workflows/*.json``.
The builder is imported inside each function: ``workflow_convert`` imports this module.
"""

from __future__ import annotations

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


def reference_set_workflow(layouts: dict) -> dict:
    """A reference picture in the grid's first cell; FLUX.1-dev + PaCo LoRA draws three more panels
    around it; the judge says which panels keep the reference's identity."""
    from workflow_convert import (
        EXAMPLE_INPUT_IMAGE,
        GROUP_COLORS,
        WorkflowBuilder,
        _flux_with_paco_lora,
        _models_note,
    )

    builder = WorkflowBuilder(layouts)
    loader, lora = _flux_with_paco_lora(builder)
    judge = builder.add("PaCoJudgeLoader", 0, judge_name="PaCo-Reward-7B")
    _models_note(builder, 1)
    reference = builder.add("LoadImage", 1, title="Your reference", image=EXAMPLE_INPUT_IMAGE)
    make = builder.add(
        "PaCoReferenceSet", 2, theme=CHARACTER_THEME, description="", panels=CHARACTER_PANELS, layout="2x2",
        panel_width=512, panel_height=512, steps=28, seed=42, identity_threshold=0.5,
    )  # fmt: skip
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


def repair_workflow(layouts: dict) -> dict:
    """Your set (one grid image), its weakest panel redrawn by FLUX.1-dev + PaCo LoRA (up to 3 rounds
    of 2 tries) until the judge's set score reaches 0.85; the pair heatmaps before and after."""
    from workflow_convert import (
        EXAMPLE_INPUT_IMAGE,
        GROUP_COLORS,
        WorkflowBuilder,
        _flux_with_paco_lora,
        _models_note,
    )

    builder = WorkflowBuilder(layouts)
    loader, lora = _flux_with_paco_lora(builder)
    judge = builder.add("PaCoJudgeLoader", 0, judge_name="PaCo-Reward-7B")
    _models_note(builder, 1)
    your_set = builder.add("LoadImage", 1, title="Your set (one 2x2 grid image)", image=EXAMPLE_INPUT_IMAGE)
    heatmap_before = builder.add("PreviewImage", 1, title="Pair scores before", height=260)
    repair = builder.add(
        "PaCoRepairSet", 2, theme=REPAIR_THEME, layout="2x2", target_score=0.85, tries_per_round=2,
        max_rounds=3, steps=28, seed=42,
    )  # fmt: skip
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


CONSISTENCY_WORKFLOWS = {
    "paco-character-set": reference_set_workflow,
    "paco-repair-odd-panel": repair_workflow,
}


CHARACTER_SET_TITLE = "A set of your character"
REPAIR_TITLE = "Repair the odd panel"
"""The two workflows' thumbnail headlines (tools/workflow_results.py)."""


def grid_cell_box(layout: str, cell: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of 0-based ``cell`` (row-major) in a ``layout`` ("rows x columns")
    grid picture of ``size``."""
    rows, columns = (int(part) for part in layout.split("x"))
    row, column = divmod(cell, columns)
    width, height = size[0] / columns, size[1] / rows
    return (
        round(column * width),
        round(row * height),
        round((column + 1) * width) - 1,
        round((row + 1) * height) - 1,
    )


def node_layout(result, class_type: str) -> str:
    (node_id,) = result.node_ids(class_type)
    return result.prompt[node_id]["inputs"]["layout"]


def cell_numbers_in(text: str) -> list[int]:
    """``"#1, #3"`` -> [0, 2]."""
    import re

    return [int(number) - 1 for number in re.findall(r"#(\d+)", text)]


def reference_set_card(title: str, caption: str, result):
    """The set with the reference cell(s) outlined and each new panel's score against the reference
    written on it (keeps / drifts), the judge's pair heatmap beside it; the set score and which
    panels keep the identity under them."""
    import re

    from PIL import ImageDraw
    from workflow_results import ACCENT, BACKGROUND, LABEL_HEIGHT, NOTE, TEXT, Card, fitted, font, open_image

    report = (result.text_of("PaCoReferenceSet") or result.text_of("PreviewAny")).splitlines()
    first = report[0] if report else ""
    score = re.search(r"set consistency (\d\.\d{3}) over (\d+) cells", first)
    references = re.search(r"reference cells (#\d+(?:, #\d+)*)", first)
    headline = (
        f"set consistency {score.group(1)} ({score.group(2)} cells, reference {references.group(1)})"
        if score and references
        else first
    )
    kept = next((line for line in report if line.startswith("keep the identity")), "")
    card = Card(title, caption, [line for line in (headline, kept) if line])
    left, top, width, height = card.area
    grid = result.images_from("PaCoReferenceSet", 0)
    heatmap = result.images_from("PaCoReferenceSet", 2)
    if not grid:
        return card
    layout = node_layout(result, "PaCoReferenceSet")
    side = min(height - LABEL_HEIGHT, round(width * (0.62 if heatmap else 1.0)))
    picture = fitted(open_image(grid[0]), (side, side))
    draw = ImageDraw.Draw(picture)
    for cell in cell_numbers_in(references.group(1)) if references else []:
        box = grid_cell_box(layout, cell, picture.size)
        draw.rectangle(box, outline=ACCENT, width=5)
        draw.text((box[0] + 10, box[1] + 8), "reference", font=font(22, bold=True), fill=ACCENT,
                  stroke_width=3, stroke_fill=BACKGROUND)  # fmt: skip
    for line in report:
        panel = re.match(r"panel #(\d+): against the reference (\d\.\d{3}) -> (keeps|drifts)", line)
        if panel:
            box = grid_cell_box(layout, int(panel.group(1)) - 1, picture.size)
            keeps = panel.group(3) == "keeps"
            draw.text((box[0] + 10, box[1] + 8), f"{panel.group(3)} {panel.group(2)}", font=font(22, bold=True),
                      fill=TEXT if keeps else NOTE, stroke_width=3, stroke_fill=BACKGROUND)  # fmt: skip
    card.paste(picture, left, top, "the set (reference outlined)")
    if heatmap:
        right = left + picture.width + 24
        heat = fitted(open_image(heatmap[0]), (left + width - right, height - LABEL_HEIGHT))
        card.paste(heat, right, top, "judge: pair scores")
    return card


def repair_card(title: str, caption: str, result):
    """Your set before and the repaired set after (the redrawn panels outlined), the judge's pair
    heatmaps under them; the scores before -> after and the rounds (panel, score) from the log."""
    import re

    from PIL import ImageDraw
    from workflow_results import ACCENT, LABEL_HEIGHT, Card, fitted, open_image

    report = (result.text_of("PaCoRepairSet") or result.text_of("PreviewAny")).splitlines()
    first = report[0] if report else ""
    scores = re.search(r"set consistency (\d\.\d{3} -> \d\.\d{3}) \(target (\d\.\d{3}); (.*)\)$", first)
    headline = f"set consistency {scores.group(1)}" if scores else first
    rounds = [
        re.match(
            r"round (\d+): panel #(\d+) .* -> (kept try \d+|no try raised the score).*; set (\d\.\d{3})", line
        )
        for line in report
    ]
    rounds_line = "; ".join(
        f"round {m.group(1)}: #{m.group(2)} " + ("redrawn" if m.group(3).startswith("kept") else "kept")
        + f", set {m.group(4)}"
        for m in rounds
        if m
    ) + (f" ({scores.group(3)})" if scores else "")  # fmt: skip
    changed = next((line for line in report if line.startswith("changed panels: ")), "")
    card = Card(title, caption, [line for line in (headline, rounds_line) if line])
    left, top, width, height = card.area
    before = result.images_of("LoadImage")
    after = result.images_from("PaCoRepairSet", 0)
    heatmaps = [result.images_from("PaCoRepairSet", 2), result.images_from("PaCoRepairSet", 3)]
    gap = 24
    cell = (width - gap) // 2
    has_heatmaps = all(heatmaps)
    grid_side = min(
        cell, round((height - 2 * LABEL_HEIGHT - 12) * 0.64) if has_heatmaps else height - LABEL_HEIGHT
    )
    heat_side = height - 2 * LABEL_HEIGHT - 12 - grid_side
    layout = node_layout(result, "PaCoRepairSet")
    row_left = left + (width - 2 * grid_side - gap) // 2
    for index, (label, images) in enumerate((("before", before), ("after (redrawn outlined)", after))):
        if not images:
            continue
        picture = fitted(open_image(images[0]), (grid_side, grid_side))
        if index == 1:
            draw = ImageDraw.Draw(picture)
            for panel in cell_numbers_in(changed.split(";")[0]):
                draw.rectangle(grid_cell_box(layout, panel, picture.size), outline=ACCENT, width=5)
        card.paste(picture, row_left + index * (grid_side + gap), top, label)
    if has_heatmaps:
        for index, (label, images) in enumerate(
            (("pair scores before", heatmaps[0]), ("after", heatmaps[1]))
        ):
            heat = fitted(open_image(images[0]), (grid_side, heat_side))
            x = row_left + index * (grid_side + gap) + (grid_side - heat.width) // 2
            card.paste(heat, x, top + LABEL_HEIGHT + grid_side + 12, label)
    return card
