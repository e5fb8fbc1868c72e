"""The exact prompt texts the released PaCo-Reward judge was trained and evaluated with.

Keep them verbatim: the judge's Yes/No probability depends on the wording, including
the quote characters and the "Yes" and "No" phrasing (which differs between the set
and the edit prompts, as in the released code).
"""

from __future__ import annotations

from paco_core.errors import InputError

SET_CONSISTENCY_TEMPLATE = (
    'Given two subfigures generated based on the theme: "{theme}", do the two images maintain '
    'consistency in terms of style, logic and identity? Answer "Yes" and "No" first, and then '
    "provide detailed reasons."
)
"""Text-to-image-set consistency of two panels of one set; ``{theme}`` is the set's theme prompt."""

REFERENCE_CONSISTENCY_PROMPT = (
    "Do the two images maintain consistency in terms of style, logic and identity? "
    'Answer "Yes" and "No" first, and then provide detailed reasons.'
)
"""Two images without a theme (ConsistencyRank: the reference image first, the candidate second)."""

EDIT_CONSISTENCY_TEMPLATE = (
    "Compare the edited image (second) with the original image (first). Instruction: '{instruction}'. "
    "Except for the parts that are intentionally changed according to the instruction, does the edited "
    "image remain consistent with the original in style, logic, and identity? Answer 'Yes' or 'No' first, "
    "then provide detailed reasons."
)
"""Editing: is the edited image (second) still consistent with the original (first)?"""

EDIT_FOLLOWING_TEMPLATE = (
    "Compare the edited image (second) with the original image (first). Instruction: '{instruction}'. "
    "Does the edited image accurately follow this instruction? Answer 'Yes' or 'No' first, then provide "
    "detailed reasons."
)
"""Editing: does the edited image (second) follow the instruction?"""


def set_consistency_prompt(theme: str | None) -> str:
    """The prompt for two panels of one set.

    Args:
        theme: the set's theme (main prompt). ``None`` or blank gives the theme-less
            reference prompt, which the judge was also trained with.

    Returns:
        The prompt text.
    """
    if theme is None or not theme.strip():
        return REFERENCE_CONSISTENCY_PROMPT
    return SET_CONSISTENCY_TEMPLATE.format(theme=theme.strip())


def edit_consistency_prompt(instruction: str) -> str:
    """The edit-consistency prompt for one instruction (original image first)."""
    return EDIT_CONSISTENCY_TEMPLATE.format(instruction=check_instruction(instruction))


def edit_following_prompt(instruction: str) -> str:
    """The instruction-following prompt for one instruction (original image first)."""
    return EDIT_FOLLOWING_TEMPLATE.format(instruction=check_instruction(instruction))


def check_instruction(instruction: str) -> str:
    """The instruction stripped of outer whitespace; raises if it is empty."""
    if not isinstance(instruction, str) or not instruction.strip():
        raise InputError(
            f"the edit instruction should be a non-empty text (the judge compares the edit with it), "
            f"got {instruction!r}."
        )
    return instruction.strip()
