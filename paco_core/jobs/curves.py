"""Reward curves of a run folder, drawn with PIL (no matplotlib, no numpy).

:func:`reward_series` picks the reward means from ``metrics.jsonl``: training
``rewards/<name>/mean`` (one line per reward, ``aggregated`` included) and evaluation
``eval/rewards/<name>/mean``. :func:`draw_reward_curves` draws them on one chart: axes
with ticks, training as solid lines, evaluation as dashed lines with dots, the same colour
for the same reward, and a legend.

Example:
    >>> image = draw_reward_curves({"train clip_t": [(1, 0.2), (2, 0.3)]})
    >>> image.size
    (768, 432)
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

from paco_core.run_folder import RunFolder

_TRAIN_RE = re.compile(r"^rewards/(?P<name>[^/]+)/mean$")
_EVAL_RE = re.compile(r"^eval/rewards/(?P<name>[^/]+)/mean$")
PALETTE = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)  # fmt: skip
BACKGROUND, AXIS, GRID, TEXT = (255, 255, 255), (60, 60, 60), (225, 225, 225), (30, 30, 30)


def reward_series(run_dir: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """``{"train <reward>": [(step, mean)...], "eval <reward>": [...]}`` from the run's metrics."""
    folder = RunFolder(run_dir)
    series: dict[str, list[tuple[int, float]]] = {}
    for name in folder.metric_names():
        train, evaluation = _TRAIN_RE.match(name), _EVAL_RE.match(name)
        if not (train or evaluation):
            continue
        label = f"train {train['name']}" if train else f"eval {evaluation['name']}"
        points = [(int(s), float(v)) for s, v in folder.metric_series(name) if _finite(v)]
        if points:
            series[label] = points
    return dict(sorted(series.items(), key=lambda item: (item[0].split(" ", 1)[1], item[0])))


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def draw_reward_curves(
    series: dict[str, list[tuple[int, float]]], size: tuple[int, int] = (768, 432), title: str = ""
):
    """A PIL RGB image of the curves (an empty chart saying "no metrics yet" when there are none)."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = size
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    left, right, top, bottom = 56, width - 16, 28, height - 36
    if title:
        draw.text((left, 8), title, fill=TEXT, font=font)
    points = [p for line in series.values() for p in line]
    if not points:
        draw.rectangle((left, top, right, bottom), outline=AXIS)
        draw.text(((left + right) // 2 - 40, (top + bottom) // 2), "no metrics yet", fill=TEXT, font=font)
        return image
    steps = [s for s, _ in points]
    values = [v for _, v in points]
    x0, x1 = min(steps), max(steps)
    y0, y1 = min(values), max(values)
    if x0 == x1:
        x0, x1 = x0 - 1, x1 + 1
    pad = (y1 - y0) * 0.08 or max(abs(y0) * 0.1, 0.05)
    y0, y1 = y0 - pad, y1 + pad

    def to_xy(step: float, value: float) -> tuple[float, float]:
        return (
            left + (step - x0) / (x1 - x0) * (right - left),
            bottom - (value - y0) / (y1 - y0) * (bottom - top),
        )

    for i in range(5):  # grid and y ticks
        value = y0 + (y1 - y0) * i / 4
        _, y = to_xy(x0, value)
        draw.line((left, y, right, y), fill=GRID)
        draw.text((4, y - 6), f"{value:.3g}", fill=TEXT, font=font)
    for step in sorted({round(x0 + (x1 - x0) * i / 4) for i in range(5)}):  # x ticks (whole steps)
        x, _ = to_xy(step, y0)
        draw.line((x, bottom, x, bottom + 4), fill=AXIS)
        draw.text((x - 8, bottom + 6), str(step), fill=TEXT, font=font)
    draw.line((left, top, left, bottom), fill=AXIS)
    draw.line((left, bottom, right, bottom), fill=AXIS)
    draw.text((right - 30, bottom + 20), "step", fill=TEXT, font=font)

    rewards = sorted({label.split(" ", 1)[1] for label in series})
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(rewards)}
    legend_y = top + 4
    for label, line in series.items():
        kind, name = label.split(" ", 1)
        colour = colours[name]
        xy = [to_xy(s, v) for s, v in sorted(line)]
        if kind == "train":
            if len(xy) > 1:
                draw.line(xy, fill=colour, width=2)
            else:
                _dot(draw, xy[0], colour, 2)
        else:
            for a, b in zip(xy, xy[1:], strict=False):
                _dashed(draw, a, b, colour)
            for point in xy:
                _dot(draw, point, colour, 3)
        # legend: a short sample of the line's style, then its label
        lx = right - 150
        if kind == "train":
            draw.line((lx, legend_y + 6, lx + 20, legend_y + 6), fill=colour, width=2)
        else:
            _dashed(draw, (lx, legend_y + 6), (lx + 20, legend_y + 6), colour)
            _dot(draw, (lx + 10, legend_y + 6), colour, 3)
        draw.text((lx + 26, legend_y), label, fill=TEXT, font=font)
        legend_y += 14
    return image


def _dot(draw, point, colour, radius: int) -> None:
    x, y = point
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)


def _dashed(draw, a, b, colour, dash: float = 6.0) -> None:
    (xa, ya), (xb, yb) = a, b
    length = math.hypot(xb - xa, yb - ya)
    if length == 0:
        return
    count = max(1, int(length // dash))
    for i in range(0, count, 2):
        t0, t1 = i / count, min(1.0, (i + 1) / count)
        draw.line(
            (xa + (xb - xa) * t0, ya + (yb - ya) * t0, xa + (xb - xa) * t1, ya + (yb - ya) * t1),
            fill=colour,
            width=2,
        )
