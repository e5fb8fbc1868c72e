"""Training prompts typed into a text box -> JSONL prompt rows for ``data.train_file``.

The PaCo Train LoRA node takes prompts as blocks separated by blank lines; this module
turns them into the rows ``paco_core.rl.data`` reads (no torch, no numpy).

**Set blocks** (FLUX presets), one set per block::

    [2x2] a red fox in a snowy forest, watercolor
    The fox sits on a log.
    The fox leaps over a stream.
    The fox sleeps under a pine.
    The fox watches the moon.

The first line is the theme (what the whole set shows), optionally starting with the
layout in brackets; each further line is one panel, row-major. Without a layout the panel
count decides: 2 -> 1x2, 3 -> 1x3, 4 -> 2x2, 6 -> 2x3, 8 -> 2x4, 9 -> 3x3, else 1xN. A
block of one line that already is a grid prompt (``FOUR-PANEL Images with a 2x2 grid
layout ... [TOP]-[LEFT]:...``) is used as it is.

**Edit blocks** (Kontext / Qwen-Image-Edit presets), one source image per block::

    cube.png
    make the cube blue
    put the cube on a beach

The first line names an image in the input folder; each further line is one instruction
(one row each).

Example:
    >>> rows = set_rows_from_text("a fox\\nsits\\nruns")
    >>> rows[0]["layout"]
    '1x2'
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from paco_core.errors import InputError

DEFAULT_LAYOUTS = {2: "1x2", 3: "1x3", 4: "2x2", 6: "2x3", 8: "2x4", 9: "3x3"}
"""The layout of a set block that does not name one, by its number of panels."""

_LAYOUT_PREFIX_RE = re.compile(r"^\[\s*(\d+\s*[x×X]\s*\d+)\s*\]\s*")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def text_blocks(text: str) -> list[list[str]]:
    """The blocks of a text box: runs of non-blank lines (stripped), split at blank lines."""
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in (text or "").splitlines():
        if line.strip():
            current.append(line.strip())
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def set_rows_from_text(text: str) -> list[dict[str, Any]]:
    """One set row (``prompt``, ``theme``, ``layout``) per block.

    Raises:
        InputError: no block, a block with a theme but no panel, a bad layout, or a panel
            count that does not fill the named layout (the message names the block).
    """
    from paco_core import prompts

    rows = []
    for number, block in enumerate(text_blocks(text), start=1):
        where = f"training_prompts block {number} ({block[0][:40]!r})"
        if len(block) == 1 and prompts.parse_grid_prompt(block[0]).panel_prompts:
            parsed = prompts.parse_grid_prompt(block[0])
            rows.append({"prompt": block[0], "theme": parsed.theme, "layout": str(parsed.layout)})
            continue
        theme, panels = block[0], block[1:]
        match = _LAYOUT_PREFIX_RE.match(theme)
        layout = (
            match.group(1).replace(" ", "") if match else DEFAULT_LAYOUTS.get(len(panels), f"1x{len(panels)}")
        )
        theme = theme[match.end() :] if match else theme
        if not panels:
            raise InputError(
                f"{where} has a theme but no panel lines: put one panel prompt per line under the theme, "
                "and separate sets with a blank line"
            )
        try:
            prompt = prompts.build_grid_prompt(theme, "", panels, layout)
        except InputError as error:
            raise InputError(f"{where}: {error}") from error
        rows.append({"prompt": prompt, "theme": theme, "layout": str(prompts.parse_layout(layout))})
    if not rows:
        raise InputError(
            "training_prompts is empty: write one set per block (a theme line, then one line per panel), "
            "or choose a JSONL file in prompts_file"
        )
    return rows


def edit_rows_from_text(text: str, image_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """One edit row (``image``, ``instruction``) per instruction line; images relative to ``image_dir``.

    Raises:
        InputError: no block, a block without instruction, an image name that leaves
            ``image_dir`` or does not exist there.
    """
    root = Path(image_dir).resolve()
    rows = []
    for number, block in enumerate(text_blocks(text), start=1):
        name, instructions = block[0], block[1:]
        where = f"training_prompts block {number}"
        if not name.lower().endswith(_IMAGE_SUFFIXES):
            raise InputError(
                f"{where} should start with an image name from the input folder (e.g. cube.png), got {name!r}"
            )
        image = (root / name).resolve()
        if root not in image.parents:
            raise InputError(f"{where}: image {name!r} is outside the input folder; name a file inside it")
        if not image.is_file():
            raise InputError(
                f"{where}: image {name!r} is not in the input folder {str(root)!r}; upload it first"
            )
        if not instructions:
            raise InputError(
                f"{where} ({name}) has no instruction: put one edit instruction per line under it"
            )
        rows.extend({"image": str(image.relative_to(root)), "instruction": line} for line in instructions)
    if not rows:
        raise InputError(
            "training_prompts is empty: write one block per image (the image name, then one instruction per "
            "line), or choose a JSONL file in prompts_file"
        )
    return rows


def write_rows(path: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    """Write ``rows`` as JSONL (sorted keys), atomically."""
    from paco_core.io import atomic_write_text

    return atomic_write_text(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
