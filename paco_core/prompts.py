"""Layouts and text-to-image-set (grid) prompts in the PaCo / T2IS format.

One image holds a whole set as an ``R x C`` grid of panels, read row-major. Its prompt:

    FOUR-PANEL Images with a 2x2 grid layout {theme}{shared description} [TOP]-[LEFT]:{p1} ...

exactly as in the T2IS rows the PaCo LoRAs were trained on: the shared description
follows the theme's closing full stop without a space (``...in armor.All images...``)
and each panel prompt follows its tag without a space.

Panel tags by layout (the T2IS convention, extended where the data set is silent):

- 1x2 / 1x3: ``[LEFT]:`` ``[MIDDLE]:`` ``[RIGHT]:``; 2x1 / 3x1: ``[TOP]:`` ``[MIDDLE]:`` ``[BOTTOM]:``.
- 2 to 4 rows by 2 to 4 columns: ``[ROW]-[COLUMN]:`` with rows TOP / (MIDDLE-TOP,
  MIDDLE-BOTTOM or MIDDLE) / BOTTOM and columns LEFT / (MIDDLE-LEFT, MIDDLE-RIGHT or
  MIDDLE) / RIGHT; so 2x2 ``[TOP]-[LEFT]:``, 2x4 ``[TOP]-[MIDDLE-LEFT]:``, 3x3's centre
  ``[MIDDLE]-[MIDDLE]:``.
- Everything else (1x1, 1x4 and longer strips, more than 4 rows or columns):
  ``PANEL-1:`` ... ``PANEL-N:`` as T2IS does for 1x5 and 1x7.

Example:
    >>> prompt = build_grid_prompt("a knight.", "All images in ink.", ["he rides", "he rests"], "1x2")
    >>> prompt
    'TWO-PANEL Images with a 1x2 grid layout a knight.All images in ink. [LEFT]:he rides [RIGHT]:he rests'
    >>> parse_grid_prompt(prompt).panel_prompts
    ('he rides', 'he rests')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from paco_core.errors import InputError

MAX_GRID_SIDE = 16
"""Largest number of rows or columns a layout may have."""

COMMON_LAYOUTS = ("1x2", "1x3", "1x4", "1x5", "1x7", "2x2", "2x3", "2x4", "3x3")
"""The layouts offered first in menus (the T2IS ones plus 1x4 and 3x3)."""

NUMBER_WORDS = (
    "ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE", "TEN",
    "ELEVEN", "TWELVE", "THIRTEEN", "FOURTEEN", "FIFTEEN", "SIXTEEN", "SEVENTEEN", "EIGHTEEN",
    "NINETEEN", "TWENTY",
)  # fmt: skip

_LAYOUT_RE = re.compile(r"(\d+)\s*[x×]\s*(\d+)")
_HEADER_RE = re.compile(r"^\s*(?P<word>[A-Za-z0-9]+)-PANEL Images with an? \d+\s*[x×]\s*\d+ grid layout")
_ANY_TAG_RE = re.compile(r"\[[A-Z]+(?:-[A-Z]+)?\](?:-\[[A-Z]+(?:-[A-Z]+)?\])?:|PANEL-\d+:")
# Where the shared description starts: right after the theme's closing punctuation
# (optionally a closing quote), glued to an upper-case letter; or, in rows whose theme
# has no full stop, "All"/"Both" glued to the theme's last word.
_SHARED_START_RE = re.compile(r"[.!?][\"'’”]?(?=[A-Z])|[a-z](?=(?:All|Both)\b)")
_SENTENCE_END_RE = re.compile(r"[.!?][\"'’”]?$")

JUDGE_THEME_SOURCES = ("preamble", "theme")
"""Where the judge's theme of a set comes from (``judge_theme``): ``preamble``, the grid
prompt's text before its first panel tag (the released PaCo-GRPO reward code); ``theme``,
the set's own theme (a data row's ``theme`` field, a node's theme input)."""
DEFAULT_JUDGE_THEME_SOURCE = "preamble"

_SIDE_WORDS = {
    1: ("",),
    2: ("{first}", "{last}"),
    3: ("{first}", "MIDDLE", "{last}"),
    4: ("{first}", "MIDDLE-{first}", "MIDDLE-{last}", "{last}"),
}


@dataclass(frozen=True)
class Layout:
    """A grid of ``rows`` x ``cols`` equal panels, read row-major.

    Args:
        rows: number of panel rows, 1 to ``MAX_GRID_SIDE``.
        cols: number of panel columns, 1 to ``MAX_GRID_SIDE``.
    """

    rows: int
    cols: int

    def __post_init__(self) -> None:
        for name in ("rows", "cols"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_GRID_SIDE:
                raise InputError(
                    f"layout `{name}` should be a whole number from 1 to {MAX_GRID_SIDE}, got {value!r}"
                )

    @property
    def num_panels(self) -> int:
        return self.rows * self.cols

    @property
    def panel_tags(self) -> tuple[str, ...]:
        return panel_tags(self)

    @property
    def number_word(self) -> str:
        return number_word(self.num_panels)

    def __str__(self) -> str:
        return f"{self.rows}x{self.cols}"


def prompt_lines(text: str) -> list[str]:
    """The non-blank lines of a multi-line text box, stripped: one prompt or instruction each."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def parse_layout(layout: Layout | str) -> Layout:
    """A ``Layout`` from ``"2x2"``, ``"1 x 5"``, ``"2×3"`` (or a ``Layout``, returned as is).

    Raises:
        InputError: the text is not ``<rows>x<cols>`` or a side is out of range.
    """
    if isinstance(layout, Layout):
        return layout
    if not isinstance(layout, str):
        raise InputError(f"layout should be text like '2x2' or a Layout, got {type(layout).__name__}")
    match = re.fullmatch(r"\s*(\d+)\s*[x×X]\s*(\d+)\s*", layout)
    if match is None:
        raise InputError(f"layout should look like '2x2' (rows x columns), got {layout!r}")
    return Layout(int(match.group(1)), int(match.group(2)))


def layout_choices() -> list[str]:
    """Layouts for a dropdown: the common ones first, then every other grid up to 4x4
    and strips up to 1x8 / 8x1."""
    extra = [f"{r}x{c}" for r in range(1, 5) for c in range(1, 5)]
    extra += [f"1x{n}" for n in range(5, 9)] + [f"{n}x1" for n in range(5, 9)]
    return list(COMMON_LAYOUTS) + [name for name in extra if name not in COMMON_LAYOUTS]


def number_word(count: int) -> str:
    """``4 -> "FOUR"`` (digits above twenty: ``"25"``), as in ``FOUR-PANEL``."""
    return NUMBER_WORDS[count] if 0 <= count < len(NUMBER_WORDS) else str(count)


def _side_words(count: int, first: str, last: str) -> tuple[str, ...] | None:
    pattern = _SIDE_WORDS.get(count)
    return None if pattern is None else tuple(p.format(first=first, last=last) for p in pattern)


def panel_tags(layout: Layout | str) -> tuple[str, ...]:
    """The tag before each panel prompt, row-major, with its colon (module docstring)."""
    layout = parse_layout(layout)
    row_words = _side_words(layout.rows, "TOP", "BOTTOM")
    col_words = _side_words(layout.cols, "LEFT", "RIGHT")
    if layout.rows == 1 and layout.cols in (2, 3):
        return tuple(f"[{c}]:" for c in col_words)
    if layout.cols == 1 and layout.rows in (2, 3):
        return tuple(f"[{r}]:" for r in row_words)
    if layout.rows > 1 and layout.cols > 1 and row_words and col_words:
        return tuple(f"[{r}]-[{c}]:" for r in row_words for c in col_words)
    return tuple(f"PANEL-{i}:" for i in range(1, layout.num_panels + 1))


def _preamble(layout: Layout, theme: str, shared_description: str) -> str:
    header = f"{layout.number_word}-PANEL Images with a {layout} grid layout"
    if not shared_description:
        return f"{header} {theme}"
    stop = "" if _SENTENCE_END_RE.search(theme) else "."
    return f"{header} {theme}{stop}{shared_description[0].upper()}{shared_description[1:]}"


def _check_text(name: str, text: str) -> str:
    if not isinstance(text, str):
        raise InputError(f"`{name}` should be text, got {type(text).__name__}")
    text = " ".join(text.split())
    tag = _ANY_TAG_RE.search(text)
    if tag:
        raise InputError(
            f"`{name}` contains the panel tag {tag.group(0)!r}, which would break the grid prompt; "
            f"remove it (tags are added for you): {text[:80]!r}"
        )
    return text


def build_grid_prompt(
    theme: str,
    shared_description: str,
    panel_prompts: Sequence[str],
    layout: Layout | str,
) -> str:
    """Compose one grid prompt from its parts.

    Args:
        theme: what the whole set shows, e.g. ``"depicting a knight in ink style."``.
            A full stop is added if it ends without sentence punctuation and a shared
            description follows.
        shared_description: what every panel shares (style, setting, identity); may be "".
            It starts a sentence, so its first letter is capitalised.
        panel_prompts: one prompt per panel, row-major; exactly ``rows*cols`` of them.
        layout: ``Layout`` or text such as ``"2x2"``.

    Returns:
        The prompt in the T2IS format (module docstring).

    Raises:
        InputError: empty theme or panel prompt, wrong number of panel prompts, or a
            text that contains a panel tag.
    """
    layout = parse_layout(layout)
    theme = _check_text("theme", theme)
    shared_description = _check_text("shared_description", shared_description)
    if not theme:
        raise InputError("`theme` is empty: say what the whole set shows (e.g. 'a knight in four scenes.')")
    if isinstance(panel_prompts, str):
        raise InputError("`panel_prompts` should be a list of prompts (one per panel), got one string")
    prompts = [_check_text(f"panel prompt {i}", p) for i, p in enumerate(panel_prompts, start=1)]
    if len(prompts) != layout.num_panels:
        raise InputError(
            f"layout {layout} has {layout.num_panels} panels, got {len(prompts)} panel prompts; "
            f"give exactly one prompt per panel (row-major) or pick a layout with {len(prompts)} panels"
        )
    empty = [i for i, p in enumerate(prompts, start=1) if not p]
    if empty:
        raise InputError(f"panel prompt(s) {empty} are empty: every panel needs a prompt")
    panels = " ".join(f"{tag}{text}" for tag, text in zip(layout.panel_tags, prompts, strict=True))
    return f"{_preamble(layout, theme, shared_description)} {panels}"


@dataclass(frozen=True)
class GridPrompt:
    """A grid prompt taken apart by ``parse_grid_prompt``.

    Attributes:
        layout: the grid (1x1 for a prompt without a layout).
        theme: the text after the header up to the shared description (the whole text
            before the first tag when the two cannot be told apart).
        shared_description: what all panels share; "" when not separable.
        panel_prompts: one prompt per panel, row-major; () for a plain prompt.
        judge_theme: the text before the first panel tag, header included: what the
            PaCo-Reward judge was given as the set's theme in the paper's T2IS runs.
    """

    layout: Layout
    theme: str
    shared_description: str
    panel_prompts: tuple[str, ...]
    judge_theme: str


def _split_theme(body: str) -> tuple[str, str]:
    match = _SHARED_START_RE.search(body)
    if match is None:
        return body.strip(), ""
    return body[: match.end()].strip(), body[match.end() :].strip()


def parse_grid_prompt(prompt: str) -> GridPrompt:
    """Take a grid prompt apart: layout, theme, shared description, panel prompts.

    The layout is the first ``RxC`` in the prompt (``x`` or ``×``; none means 1x1). A
    prompt with neither panel tags nor an ``N-PANEL Images with a ...`` header is a
    single image (1x1, no panel prompts) whose theme is the whole prompt, even if it
    mentions a size such as "1920x1080".

    Raises:
        InputError: the panel tags do not match the layout (missing, extra, out of
            order), a panel prompt is empty, or the ``N-PANEL`` word contradicts the layout.
    """
    if not isinstance(prompt, str):
        raise InputError(f"prompt should be text, got {type(prompt).__name__}")
    seen = [m.group(0) for m in _ANY_TAG_RE.finditer(prompt)]
    if not seen and _HEADER_RE.match(prompt) is None:
        text = prompt.strip()
        return GridPrompt(Layout(1, 1), text, "", (), text)
    found = _LAYOUT_RE.search(prompt)
    layout = Layout(int(found.group(1)), int(found.group(2))) if found else Layout(1, 1)
    tags = layout.panel_tags
    if seen != list(tags):
        raise InputError(
            f"the prompt's layout {layout} needs the panel tags {list(tags)} in this order, "
            f"found {seen}; fix the tags or the layout"
        )
    positions = [m.start() for m in _ANY_TAG_RE.finditer(prompt)] + [len(prompt)]
    panel_prompts = tuple(
        prompt[start + len(tag) : end].strip()
        for tag, start, end in zip(tags, positions[:-1], positions[1:], strict=True)
    )
    empty = [i for i, p in enumerate(panel_prompts, start=1) if not p]
    if empty:
        raise InputError(f"panel prompt(s) {empty} of the {layout} prompt are empty")

    preamble = prompt[: positions[0]].strip()
    header = _HEADER_RE.match(preamble)
    body = preamble
    if header:
        if header.group("word").upper() != layout.number_word:
            raise InputError(
                f"the prompt says {header.group('word')}-PANEL but its layout {layout} has "
                f"{layout.num_panels} panels ({layout.number_word}-PANEL); make them agree"
            )
        body = preamble[header.end() :]
    theme, shared = _split_theme(body)
    return GridPrompt(layout, theme, shared, panel_prompts, preamble)


def judge_theme(
    grid_prompt: str, *, source: str = DEFAULT_JUDGE_THEME_SOURCE, theme: str | None = None
) -> str:
    """The text the PaCo-Reward judge is given as the theme of a set: the one rule used by
    training rewards, the judge nodes' inputs (through PaCo Grid Prompt / Generate Set),
    the CLI and the shipped workflows.

    Args:
        grid_prompt: the prompt the set was generated from (a plain prompt is its own theme).
        source: ``"preamble"`` (default, as the released PaCo-GRPO code): the text before
            the first panel tag, header included, e.g. ``"FOUR-PANEL Images with a 2x2 grid
            layout a fox.All images ..."``. ``"theme"``: ``theme`` when it is not blank,
            else the theme part parsed from the prompt (e.g. ``"a fox."``).
        theme: the set's own theme (a row's ``theme`` field, a node's theme input).

    Raises:
        InputError: an unknown ``source``, or a grid prompt whose tags do not fit its layout.
    """
    if source not in JUDGE_THEME_SOURCES:
        raise InputError(f"judge theme source should be one of {list(JUDGE_THEME_SOURCES)}, got {source!r}")
    if source == "theme" and theme is not None and theme.strip():
        return " ".join(theme.split())
    parsed = parse_grid_prompt(grid_prompt)
    return parsed.judge_theme if source == "preamble" else parsed.theme
