"""The result cards: one square picture per shipped workflow, for its thumbnail.

A card (``Card``) has the workflow's title on top, its result pictures in between, its scores and
a caption under them. The ``*_card`` functions lay out each kind of result; the ones given a run
read it through ``RunResult``'s methods (``tools/workflow_results.py``, which runs the workflows
and chooses the card for each).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

CARD_SIZE = (768, 768)
"""The Templates browser shows thumbnails on square cards (264 x 264 px): a square fills one."""
BACKGROUND, PANEL_BACKGROUND, TEXT, DIM_TEXT, ACCENT, NOTE = (
    (24, 26, 31), (40, 43, 51), (235, 236, 240), (170, 174, 186), (255, 196, 0), (255, 170, 120),
)  # fmt: skip


def font(size: int, bold: bool = False):
    from PIL import ImageFont

    for name in (
        ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf")
        if bold
        else ("DejaVuSans.ttf", "LiberationSans-Regular.ttf")
    ):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def open_image(data: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


def fitted(image, box: tuple[int, int]):
    """``image`` scaled to fit ``box``; blocky (nearest) when enlarged a lot, so tiny
    pixels stay pixels rather than blur."""
    from PIL import Image

    scale = min(box[0] / image.width, box[1] / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    method = Image.Resampling.NEAREST if scale >= 2 else Image.Resampling.LANCZOS
    return image.resize(size, method)


def wrap(draw, text: str, text_font, width: int) -> list[str]:
    lines = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}".strip()
            if draw.textlength(candidate, font=text_font) <= width or not line:
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


LABEL_HEIGHT = 28
"""Room for a label above a picture."""


@dataclass
class Card:
    """A square result card: title on top, score lines and caption at the bottom, pictures
    in between."""

    title: str
    caption: str
    lines: list[str]
    """Score lines under the pictures (the first in the accent colour)."""

    def __post_init__(self):
        from PIL import Image, ImageDraw

        self.image = Image.new("RGB", CARD_SIZE, BACKGROUND)
        self.draw = ImageDraw.Draw(self.image)
        self.margin = 24
        width = CARD_SIZE[0] - 2 * self.margin
        size = 46
        while size > 24 and self.draw.textlength(self.title, font=font(size, bold=True)) > width:
            size -= 2
        self.draw.text((self.margin, 16), self.title, font=font(size, bold=True), fill=TEXT)
        self.top = 82
        caption_font, line_font = font(25), font(27, bold=True)
        caption_lines = wrap(self.draw, self.caption, caption_font, width)
        y = CARD_SIZE[1] - 14 - 31 * len(caption_lines)
        for line in caption_lines:
            self.draw.text((self.margin, y), line, font=caption_font, fill=NOTE)
            y += 31
        score_lines = [
            (line, index == 0)
            for index, text in enumerate(self.lines)
            for line in wrap(self.draw, text, line_font if index == 0 else font(23), width)
        ]
        y = CARD_SIZE[1] - 14 - 31 * len(caption_lines) - 12 - 34 * len(score_lines)
        self.bottom = y - 12
        for line, is_first in score_lines:
            self.draw.text(
                (self.margin, y),
                line,
                font=line_font if is_first else font(23),
                fill=ACCENT if is_first else TEXT,
            )
            y += 34

    @property
    def area(self) -> tuple[int, int, int, int]:
        """(left, top, width, height) left for the pictures."""
        return self.margin, self.top, CARD_SIZE[0] - 2 * self.margin, self.bottom - self.top

    def paste(self, image, left: int, top: int, label: str = "") -> None:
        """Paste ``image`` at (left, top), below ``label`` when given (LABEL_HEIGHT more)."""
        if label:
            self.draw.text((left, top), label, font=font(22), fill=DIM_TEXT)
            top += LABEL_HEIGHT
        self.image.paste(image, (left, top))

    def png(self) -> bytes:
        buffer = io.BytesIO()
        self.image.save(buffer, "PNG")
        return buffer.getvalue()


def tiled(images: list, columns: int, cell: int, gap: int):
    """``images`` fitted into ``cell``-sized squares, ``columns`` a row, ``gap`` apart."""
    from PIL import Image

    rows = -(-len(images) // columns)
    sheet = Image.new(
        "RGB", (columns * cell + (columns - 1) * gap, rows * cell + (rows - 1) * gap), BACKGROUND
    )
    for index, image in enumerate(images):
        fitted_image = fitted(image, (cell, cell))
        x = (index % columns) * (cell + gap) + (cell - fitted_image.width) // 2
        y = (index // columns) * (cell + gap) + (cell - fitted_image.height) // 2
        sheet.paste(fitted_image, (x, y))
    return sheet


def set_card(title: str, caption: str, pictures: list[bytes], heatmap: bytes | None, report: str) -> Card:
    """The set (its panels 2x2, or its grid), the judge's pair heatmap beside it, the set's
    score under them and the report's details under the heatmap."""
    first, *details = report.splitlines() or [""]
    weakest = next((line for line in details if line.startswith("weakest pair")), "")
    score = re.match(r"set consistency (\d\.\d{3})", first)
    pairs = re.search(r"\((\d+ pairs of \d+ images)\)", first)
    headline = (
        f"set consistency {score.group(1)}" + (f" ({pairs.group(1)})" if pairs else "") if score else first
    )
    card = Card(title, caption, [line for line in (headline, weakest) if line])
    left, top, width, height = card.area
    images = [open_image(data) for data in pictures]
    label = "the set (4 panels)" if len(images) == 4 else "the set"
    if heatmap is None:
        picture = (
            tiled(images, 2, (height - LABEL_HEIGHT - 10) // 2, 10)
            if len(images) == 4
            else fitted(images[0], (width, height - LABEL_HEIGHT))
        )
        card.paste(
            picture,
            left + (width - picture.width) // 2,
            top + (height - LABEL_HEIGHT - picture.height) // 2,
            label,
        )
        return card
    side = min(height - LABEL_HEIGHT, round(width * 0.52))
    picture = tiled(images, 2, (side - 10) // 2, 10) if len(images) == 4 else fitted(images[0], (side, side))
    y = top + (height - LABEL_HEIGHT - picture.height) // 2
    card.paste(picture, left, y, label)
    right = left + picture.width + 24
    heat = fitted(open_image(heatmap), (left + width - right, height - LABEL_HEIGHT))
    card.paste(heat, right, y, "judge: pair scores")
    return card


def best_of_n_card(title: str, caption: str, candidates: bytes, ranking: str) -> Card:
    """The 4 candidate grids (2x2, set 1 top left) with the winner outlined, the ranking below."""
    lines = ranking.splitlines()
    winner = re.match(r"best: set (\d+)", lines[0]) if lines else None
    places = [re.match(r"\d+\. set (\d+) \(seed \d+\): (\d\.\d{3})", line) for line in lines[1:]]
    order = " > ".join(f"set {m.group(1)} {m.group(2)}" for m in places if m)
    card = Card(title, caption, [lines[0], f"ranking: {order}"] if lines and order else lines[:1])
    left, top, width, height = card.area
    image = fitted(open_image(candidates), (width, height - LABEL_HEIGHT))
    x, y = left + (width - image.width) // 2, top + (height - LABEL_HEIGHT - image.height) // 2
    card.paste(image, x, y, "4 candidate sets (set 1 top left)")
    y += LABEL_HEIGHT
    half_w, half_h = image.width // 2, image.height // 2
    card.draw.rectangle((x + half_w - 3, y, x + half_w + 2, y + image.height), fill=BACKGROUND)
    card.draw.rectangle((x, y + half_h - 3, x + image.width, y + half_h + 2), fill=BACKGROUND)
    if winner:
        index = int(winner.group(1)) - 1
        cx, cy = x + (index % 2) * half_w, y + (index // 2) * half_h
        card.draw.rectangle((cx + 1, cy + 1, cx + half_w - 2, cy + half_h - 2), outline=ACCENT, width=6)
        card.draw.text(
            (cx + 14, cy + 10),
            f"best: set {index + 1}",
            font=font(30, bold=True),
            fill=ACCENT,
            stroke_width=4,
            stroke_fill=BACKGROUND,
        )
    return card


def edit_card(title: str, caption: str, chain: list[bytes], report: str, labels: list[str]) -> Card:
    """The reference and its edits (2x2 for four), the first edit's score and instruction below."""
    found = re.fullmatch(
        r'edit 1 "(.*)": overall (0\.\d{3}) \(consistency (0\.\d{3}), following (0\.\d{3})\)', report.strip()
    )
    lines = (
        [
            f"edit 1 score {found.group(2)} (consistency {found.group(3)}, following {found.group(4)})",
            f'edit 1: "{found.group(1)}"',
        ]
        if found
        else report.splitlines()[:1]
    )
    card = Card(title, caption, lines)
    left, top, width, height = card.area
    columns = 2 if len(chain) == 4 else len(chain)
    rows = -(-len(chain) // columns)
    gap = 20
    cell = min(
        (width - gap * (columns - 1)) // columns, (height - rows * LABEL_HEIGHT - gap * (rows - 1)) // rows
    )
    row_width = columns * cell + gap * (columns - 1)
    used = rows * (cell + LABEL_HEIGHT) + (rows - 1) * gap
    for index, (data, label) in enumerate(zip(chain, labels, strict=False)):
        image = fitted(open_image(data), (cell, cell))
        x = left + (width - row_width) // 2 + (index % columns) * (cell + gap)
        y = top + (height - used) // 2 + (index // columns) * (cell + LABEL_HEIGHT + gap)
        card.paste(image, x, y, label)
    return card


def training_card(
    title: str, caption: str, curve: bytes, pictures: list[tuple[str, bytes]], status: str, reward: str = ""
) -> Card:
    """The job's reward curve on top; its latest sample grid (and the set made with its LoRA)
    below; the job's status and latest eval reward (``reward``'s when given) under them."""
    first, *rest = status.splitlines() or [""]
    evaluated = next((line for line in rest if line.startswith(f"eval {reward}")), "")
    card = Card(title, caption, [line for line in (first, evaluated) if line])
    left, top, width, height = card.area
    gap = 24
    cell = (width - gap * (len(pictures) - 1)) // len(pictures)
    curve_image = fitted(open_image(curve), (width, height - 2 * LABEL_HEIGHT - 12 - min(cell, 190)))
    row_height = height - 2 * LABEL_HEIGHT - 12 - curve_image.height
    card.paste(
        curve_image, left + (width - curve_image.width) // 2, top, "reward per step (PaCo Training Job)"
    )
    y = top + LABEL_HEIGHT + curve_image.height + 12
    row = [fitted(open_image(data), (cell, row_height)) for _, data in pictures]
    x = left + (width - sum(image.width for image in row) - gap * (len(row) - 1)) // 2
    for (label, _), image in zip(pictures, row, strict=True):
        card.paste(image, x, y, label)
        x += max(image.width, round(card.draw.textlength(label, font=font(22)))) + gap
    return card


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
    return [int(number) - 1 for number in re.findall(r"#(\d+)", text)]


def reference_set_card(title: str, caption: str, result):
    """The set with the reference cell(s) outlined and each new panel's score against the reference
    written on it (keeps / drifts), the judge's pair heatmap beside it; the set score and which
    panels keep the identity under them."""
    from PIL import ImageDraw

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
        draw.text(
            (box[0] + 10, box[1] + 8),
            "reference",
            font=font(22, bold=True),
            fill=ACCENT,
            stroke_width=3,
            stroke_fill=BACKGROUND,
        )
    for line in report:
        panel = re.match(r"panel #(\d+): against the reference (\d\.\d{3}) -> (keeps|drifts)", line)
        if panel:
            box = grid_cell_box(layout, int(panel.group(1)) - 1, picture.size)
            keeps = panel.group(3) == "keeps"
            draw.text(
                (box[0] + 10, box[1] + 8),
                f"{panel.group(3)} {panel.group(2)}",
                font=font(22, bold=True),
                fill=TEXT if keeps else NOTE,
                stroke_width=3,
                stroke_fill=BACKGROUND,
            )
    card.paste(picture, left, top, "the set (reference outlined)")
    if heatmap:
        right = left + picture.width + 24
        heat = fitted(open_image(heatmap[0]), (left + width - right, height - LABEL_HEIGHT))
        card.paste(heat, right, top, "judge: pair scores")
    return card


def repair_card(title: str, caption: str, result):
    """Your set before and the repaired set after (the redrawn panels outlined), the judge's pair
    heatmaps under them; the scores before -> after and the rounds (panel, score) from the log."""
    from PIL import ImageDraw

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
        f"round {m.group(1)}: #{m.group(2)} "
        + ("redrawn" if m.group(3).startswith("kept") else "kept")
        + f", set {m.group(4)}"
        for m in rounds
        if m
    ) + (f" ({scores.group(3)})" if scores else "")
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


def pool_card(title: str, caption: str, result):
    """The result card: the choice picture (every candidate in a row, the chosen panels framed,
    the assembled set last) with the assembled score against best-of-4 above it."""

    report = result.text_of("PreviewAny").splitlines()
    headline = report[0].split(" from ")[0] if report else ""
    against = next((line for line in report if line.startswith("best whole set")), "")
    against = against.replace("best whole set (best-of-4): ", "best whole set of 4: ")
    card = Card(title, caption, [line for line in (headline, against) if line])
    left, top, width, height = card.area
    shown = result.images_from("PaCoPoolAssemble", 4)
    if shown:
        image = fitted(open_image(shown[0]), (width, height - LABEL_HEIGHT))
        x, y = left + (width - image.width) // 2, top + (height - LABEL_HEIGHT - image.height) // 2
        card.paste(image, x, y, "chosen panels framed; the assembled set last")
    return card
