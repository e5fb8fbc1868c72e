"""Layouts, panel tags and grid prompts (paco_core.prompts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paco_core.errors import InputError
from paco_core.prompts import (
    COMMON_LAYOUTS,
    GridPrompt,
    Layout,
    build_grid_prompt,
    layout_choices,
    number_word,
    panel_tags,
    parse_grid_prompt,
    parse_layout,
)

FIXTURE_ROWS = [
    json.loads(line)
    for line in (Path(__file__).parent / "fixtures" / "t2is_rows.jsonl")
    .read_text(encoding="utf-8")
    .splitlines()
]
ROWS_WITHOUT_THEME_STOP = {"0436", "0494"}  # "...containerAll images": no full stop in the data


@pytest.mark.parametrize(
    ("text", "rows", "cols"),
    [("2x2", 2, 2), (" 1 x 5 ", 1, 5), ("2×3", 2, 3), ("2X4", 2, 4), ("16x1", 16, 1)],
)
def test_parse_layout_accepts_common_spellings(text, rows, cols):
    layout = parse_layout(text)
    assert (layout.rows, layout.cols, layout.num_panels, str(layout)) == (
        rows,
        cols,
        rows * cols,
        f"{rows}x{cols}",
    )


def test_parse_layout_returns_a_layout_unchanged():
    layout = Layout(3, 2)
    assert parse_layout(layout) is layout


@pytest.mark.parametrize("text", ["2by2", "2x", "x2", "2x2x2", ""])
def test_parse_layout_rejects_malformed_text(text):
    with pytest.raises(InputError, match=r"layout should look like '2x2'.*got"):
        parse_layout(text)


def test_parse_layout_rejects_non_text():
    with pytest.raises(InputError, match="layout should be text like '2x2' or a Layout, got int"):
        parse_layout(4)


@pytest.mark.parametrize(
    ("rows", "cols", "bad"), [(0, 2, "rows"), (2, 17, "cols"), (2.0, 2, "rows"), (True, 2, "rows")]
)
def test_layout_rejects_out_of_range_sides(rows, cols, bad):
    with pytest.raises(InputError, match=f"layout `{bad}` should be a whole number from 1 to 16"):
        Layout(rows, cols)


@pytest.mark.parametrize(
    ("layout", "tags"),
    [
        ("1x2", ("[LEFT]:", "[RIGHT]:")),
        ("1x3", ("[LEFT]:", "[MIDDLE]:", "[RIGHT]:")),
        ("2x1", ("[TOP]:", "[BOTTOM]:")),
        ("3x1", ("[TOP]:", "[MIDDLE]:", "[BOTTOM]:")),
        ("2x2", ("[TOP]-[LEFT]:", "[TOP]-[RIGHT]:", "[BOTTOM]-[LEFT]:", "[BOTTOM]-[RIGHT]:")),
        (
            "2x3",
            ("[TOP]-[LEFT]:", "[TOP]-[MIDDLE]:", "[TOP]-[RIGHT]:")
            + ("[BOTTOM]-[LEFT]:", "[BOTTOM]-[MIDDLE]:", "[BOTTOM]-[RIGHT]:"),
        ),
        (
            "2x4",
            ("[TOP]-[LEFT]:", "[TOP]-[MIDDLE-LEFT]:", "[TOP]-[MIDDLE-RIGHT]:", "[TOP]-[RIGHT]:")
            + (
                "[BOTTOM]-[LEFT]:",
                "[BOTTOM]-[MIDDLE-LEFT]:",
                "[BOTTOM]-[MIDDLE-RIGHT]:",
                "[BOTTOM]-[RIGHT]:",
            ),
        ),
        ("1x1", ("PANEL-1:",)),
        ("1x5", tuple(f"PANEL-{i}:" for i in range(1, 6))),
        ("1x7", tuple(f"PANEL-{i}:" for i in range(1, 8))),
        ("5x2", tuple(f"PANEL-{i}:" for i in range(1, 11))),
    ],
)
def test_panel_tags_follow_the_t2is_convention(layout, tags):
    assert panel_tags(layout) == tags
    assert parse_layout(layout).panel_tags == tags


def test_panel_tags_for_3x3_and_4x4_extend_the_convention():
    assert panel_tags("3x3")[4] == "[MIDDLE]-[MIDDLE]:"
    assert panel_tags("3x3")[3] == "[MIDDLE]-[LEFT]:"
    assert panel_tags("4x4")[4:8] == (
        "[MIDDLE-TOP]-[LEFT]:",
        "[MIDDLE-TOP]-[MIDDLE-LEFT]:",
        "[MIDDLE-TOP]-[MIDDLE-RIGHT]:",
        "[MIDDLE-TOP]-[RIGHT]:",
    )


@pytest.mark.parametrize("name", layout_choices())
def test_every_menu_layout_has_distinct_tags(name):
    tags = panel_tags(name)
    assert len(tags) == len(set(tags)) == parse_layout(name).num_panels


def test_layout_choices_start_with_the_common_layouts_and_have_no_duplicates():
    choices = layout_choices()
    assert tuple(choices[: len(COMMON_LAYOUTS)]) == COMMON_LAYOUTS
    assert len(choices) == len(set(choices))


def test_number_word():
    assert [number_word(n) for n in (2, 4, 9, 20, 25)] == ["TWO", "FOUR", "NINE", "TWENTY", "25"]


def test_build_grid_prompt_writes_the_t2is_format():
    prompt = build_grid_prompt(
        "depicting a knight in ink style.",
        "All images share the armour.",
        ["He rides.", "He rests.", "He fights.", "He sleeps."],
        "2x2",
    )
    assert prompt == (
        "FOUR-PANEL Images with a 2x2 grid layout depicting a knight in ink style.All images share the armour. "
        "[TOP]-[LEFT]:He rides. [TOP]-[RIGHT]:He rests. [BOTTOM]-[LEFT]:He fights. [BOTTOM]-[RIGHT]:He sleeps."
    )


def test_build_grid_prompt_adds_a_stop_and_a_capital_between_theme_and_shared_description():
    prompt = build_grid_prompt("a knight", "all images in ink.", ["a", "b"], "1x2")
    assert prompt.startswith("TWO-PANEL Images with a 1x2 grid layout a knight.All images in ink. [LEFT]:a")


def test_build_grid_prompt_without_shared_description():
    prompt = build_grid_prompt("a knight", "", ["a", "b", "c"], "1x3")
    assert prompt == "THREE-PANEL Images with a 1x3 grid layout a knight [LEFT]:a [MIDDLE]:b [RIGHT]:c"
    assert parse_grid_prompt(prompt).theme == "a knight"


def test_build_grid_prompt_collapses_whitespace_and_newlines():
    prompt = build_grid_prompt("a  knight.\n", "All\nin ink.", [" he\n rides ", "rests"], "1x2")
    assert "\n" not in prompt and "  " not in prompt
    assert parse_grid_prompt(prompt).panel_prompts == ("he rides", "rests")


def test_build_grid_prompt_rejects_the_wrong_number_of_panel_prompts():
    with pytest.raises(InputError, match=r"layout 2x2 has 4 panels, got 3 panel prompts"):
        build_grid_prompt("a knight.", "", ["a", "b", "c"], "2x2")


def test_build_grid_prompt_rejects_an_empty_theme():
    with pytest.raises(InputError, match=r"`theme` is empty"):
        build_grid_prompt("  ", "", ["a", "b"], "1x2")


def test_build_grid_prompt_rejects_empty_panel_prompts():
    with pytest.raises(InputError, match=r"panel prompt\(s\) \[2\] are empty"):
        build_grid_prompt("a knight.", "", ["a", " "], "1x2")


def test_build_grid_prompt_rejects_a_tag_inside_a_text():
    with pytest.raises(InputError, match=r"`panel prompt 2` contains the panel tag '\[LEFT\]:'"):
        build_grid_prompt("a knight.", "", ["a", "see [LEFT]:b"], "1x2")


def test_build_grid_prompt_rejects_one_string_as_panel_prompts():
    with pytest.raises(InputError, match="`panel_prompts` should be a list of prompts"):
        build_grid_prompt("a knight.", "", "ab", "1x2")


def test_build_grid_prompt_rejects_non_text():
    with pytest.raises(InputError, match="`theme` should be text, got int"):
        build_grid_prompt(3, "", ["a", "b"], "1x2")


@pytest.mark.parametrize("name", layout_choices())
def test_build_then_parse_gives_the_parts_back(name):
    layout = parse_layout(name)
    panels = tuple(f"Panel {i} shows the knight, Dr. Who's friend." for i in range(layout.num_panels))
    prompt = build_grid_prompt("depicting Dr. Who's knight.", "All images share 3.5 styles.", panels, name)
    assert parse_grid_prompt(prompt) == GridPrompt(
        layout=layout,
        theme="depicting Dr. Who's knight.",
        shared_description="All images share 3.5 styles.",
        panel_prompts=panels,
        judge_theme=prompt[: prompt.index(layout.panel_tags[0])].strip(),
    )


@pytest.mark.parametrize("row", FIXTURE_ROWS, ids=[r["idx"] for r in FIXTURE_ROWS])
def test_parse_then_build_reproduces_each_t2is_row(row):
    parsed = parse_grid_prompt(row["prompt"])
    assert str(parsed.layout) == row["layout"]
    assert len(parsed.panel_prompts) == parsed.layout.num_panels
    assert parsed.judge_theme == row["prompt"].split(parsed.layout.panel_tags[0])[0].strip()
    assert parsed.shared_description, "theme and shared description should be told apart"
    rebuilt = build_grid_prompt(parsed.theme, parsed.shared_description, parsed.panel_prompts, parsed.layout)
    if row["idx"] in ROWS_WITHOUT_THEME_STOP:
        assert rebuilt == row["prompt"].replace("All images", ".All images", 1)
    else:
        assert rebuilt == row["prompt"]


def test_parse_splits_theme_after_an_abbreviation_and_a_quote():
    rows = {row["idx"]: parse_grid_prompt(row["prompt"]) for row in FIXTURE_ROWS}
    assert rows["0266"].theme == (
        "chronicling Dr. Elena Marquez's underwater archaeology expedition exploring the SS Atlantica wreck."
    )
    assert rows["0266"].shared_description.startswith("All panels maintain a realistic comic style")
    assert rows["0289"].theme.endswith("following the story of 'The Boy Who Cried Wolf.'")
    assert rows["0436"].theme == "fluid pressure dynamics within a sealed transparent container"
    assert rows["0436"].shared_description.startswith("All images feature a consistent scientific")


def test_parse_plain_prompt_is_one_panel():
    parsed = parse_grid_prompt("  a red fox in the snow ")
    assert parsed == GridPrompt(Layout(1, 1), "a red fox in the snow", "", (), "a red fox in the snow")


@pytest.mark.parametrize("text", ["a 1920x1080 wallpaper of a fox", "a 3x3 rubik's cube"])
def test_parse_plain_prompt_mentioning_a_size_is_one_panel(text):
    assert parse_grid_prompt(text) == GridPrompt(Layout(1, 1), text, "", (), text)


def test_parse_rejects_a_header_without_tags():
    with pytest.raises(
        InputError, match=r"layout 1x2 needs the panel tags \['\[LEFT\]:', '\[RIGHT\]:'\] .* found \[\]"
    ):
        parse_grid_prompt("TWO-PANEL Images with a 1x2 grid layout a fox.")


def test_parse_rejects_tags_without_a_layout():
    with pytest.raises(InputError, match=r"layout 1x1 needs the panel tags \['PANEL-1:'\]"):
        parse_grid_prompt("a fox [LEFT]:sits [RIGHT]:runs")


def test_parse_takes_the_layout_from_the_unicode_sign():
    parsed = parse_grid_prompt(
        "TWO-PANEL Images with a 1×2 grid layout a fox.All in snow. [LEFT]:sits [RIGHT]:runs"
    )
    assert (parsed.layout, parsed.theme, parsed.panel_prompts) == (Layout(1, 2), "a fox.", ("sits", "runs"))


def test_parse_without_the_header_keeps_the_text_before_the_tags_as_theme():
    parsed = parse_grid_prompt("a 1x2 set of a fox [LEFT]:sits [RIGHT]:runs")
    assert (parsed.theme, parsed.judge_theme, parsed.panel_prompts) == (
        "a 1x2 set of a fox",
        "a 1x2 set of a fox",
        ("sits", "runs"),
    )


def test_parse_rejects_tags_that_do_not_match_the_layout():
    with pytest.raises(
        InputError, match=r"layout 2x2 needs the panel tags .* found \['\[LEFT\]:', '\[RIGHT\]:'\]"
    ):
        parse_grid_prompt("FOUR-PANEL Images with a 2x2 grid layout a fox. [LEFT]:sits [RIGHT]:runs")


def test_parse_rejects_tags_out_of_order():
    with pytest.raises(InputError, match=r"in this order"):
        parse_grid_prompt("TWO-PANEL Images with a 1x2 grid layout a fox. [RIGHT]:runs [LEFT]:sits")


def test_parse_rejects_a_number_word_that_contradicts_the_layout():
    with pytest.raises(InputError, match=r"says THREE-PANEL but its layout 1x2 has 2 panels \(TWO-PANEL\)"):
        parse_grid_prompt("THREE-PANEL Images with a 1x2 grid layout a fox. [LEFT]:sits [RIGHT]:runs")


def test_parse_rejects_an_empty_panel_prompt():
    with pytest.raises(InputError, match=r"panel prompt\(s\) \[1\] of the 1x2 prompt are empty"):
        parse_grid_prompt("TWO-PANEL Images with a 1x2 grid layout a fox. [LEFT]: [RIGHT]:runs")


def test_parse_rejects_non_text():
    with pytest.raises(InputError, match="prompt should be text, got NoneType"):
        parse_grid_prompt(None)


# --------------------------------------------------------------------------- the judge's theme


def test_the_judge_theme_is_the_preamble_by_default_as_in_the_released_code():
    from paco_core.prompts import DEFAULT_JUDGE_THEME_SOURCE, judge_theme

    prompt = build_grid_prompt("a fox.", "All images in ink.", ["it sits", "it runs"], "1x2")
    assert DEFAULT_JUDGE_THEME_SOURCE == "preamble"
    assert judge_theme(prompt) == "TWO-PANEL Images with a 1x2 grid layout a fox.All images in ink."
    assert judge_theme(prompt, theme="ignored unless asked") == judge_theme(prompt)
    assert judge_theme(prompt) == parse_grid_prompt(prompt).judge_theme


def test_the_theme_source_takes_the_given_theme_or_the_parsed_one():
    from paco_core.prompts import judge_theme

    prompt = build_grid_prompt("a fox.", "All images in ink.", ["it sits", "it runs"], "1x2")
    assert judge_theme(prompt, source="theme", theme="  a red\nfox ") == "a red fox"
    assert judge_theme(prompt, source="theme", theme="") == "a fox."
    assert judge_theme(prompt, source="theme") == "a fox."
    assert judge_theme("a plain prompt", source="theme") == judge_theme("a plain prompt") == "a plain prompt"


def test_an_unknown_judge_theme_source_is_refused():
    from paco_core.prompts import judge_theme

    with pytest.raises(
        InputError, match=r"judge theme source should be one of \['preamble', 'theme'\], got 'row'"
    ):
        judge_theme("a fox", source="row")
