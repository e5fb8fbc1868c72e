"""Grid nodes: build a set prompt, split a grid image into panels, compose panels."""

from __future__ import annotations

from comfy_api.latest import io

from paco_core.prompts import DEFAULT_JUDGE_THEME_SOURCE, JUDGE_THEME_SOURCES, layout_choices

from .sockets import ComboValue

LAYOUT_TOOLTIP = (
    "Rows x columns of equal panels, read row-major (2x2: top-left, top-right, bottom-left, "
    "bottom-right). The common PaCo layouts come first."
)


def layout_input(tooltip: str = LAYOUT_TOOLTIP) -> io.Combo.Input:
    """The layout dropdown every grid node shares."""
    return io.Combo.Input("layout", options=layout_choices(), default="2x2", tooltip=tooltip)


def judge_theme_source_input() -> io.Combo.Input:
    """The option PaCo Grid Prompt and PaCo Generate Set share: where the judge's theme comes from."""
    return io.Combo.Input(
        "judge_theme_source",
        options=list(JUDGE_THEME_SOURCES),
        default=DEFAULT_JUDGE_THEME_SOURCE,
        tooltip="What the judge_theme output holds. preamble: the grid prompt's text before its first panel "
        "tag (what PaCo-RL's training judged; default). theme: the theme input alone.",
    )


class PaCoGridPrompt(io.ComfyNode):
    """Theme + shared description + one prompt per panel -> one grid prompt."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PaCoGridPrompt",
            display_name="PaCo Grid Prompt",
            category="PaCo/Prompt",
            description=(
                "Builds a text-to-image-set prompt in the PaCo/T2IS format "
                "('FOUR-PANEL Images with a 2x2 grid layout ... [TOP]-[LEFT]:...'), so one image "
                "holds a consistent set of panels. Feed it to a FLUX text encoder or PaCo Generate "
                "Set, then cut the result apart with PaCo Split Grid."
            ),
            inputs=[
                io.String.Input(
                    "theme",
                    multiline=True,
                    default="depicting a young explorer with a red scarf in a watercolor style.",
                    tooltip="What the whole set shows; one sentence, e.g. 'depicting a knight in ink style.'",
                ),
                io.String.Input(
                    "shared_description",
                    multiline=True,
                    default="All images keep the same character, scarf and soft watercolor palette.",
                    tooltip="What every panel shares (identity, style, setting). May be empty.",
                ),
                io.String.Input(
                    "panel_prompts",
                    multiline=True,
                    default=(
                        "The explorer reads a map at dawn.\nThe explorer crosses a rope bridge.\n"
                        "The explorer camps by a lake.\nThe explorer reaches a mountain top."
                    ),
                    tooltip="One prompt per line, one line per panel, row-major. Empty lines are ignored.",
                ),
                layout_input(),
                judge_theme_source_input(),
            ],
            outputs=[
                io.String.Output(
                    "prompt", display_name="prompt", tooltip="The grid prompt for the whole image."
                ),
                io.Int.Output(
                    "num_panels",
                    display_name="num_panels",
                    tooltip="Number of panels, read back from the built prompt.",
                ),
                io.String.Output(
                    "judge_theme",
                    display_name="judge_theme",
                    tooltip="The set's theme as the judge sees it (judge_theme_source; by default the text "
                    "before the first panel tag), for PaCo Set Consistency / Rank Sets.",
                ),
                ComboValue.Output(
                    "layout_out",  # an output id may not repeat an input id (ComfyUI 0.3.6x rejects it)
                    display_name="layout",
                    tooltip="The chosen layout, to wire into the layout input of Split Grid or Generate Set.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        theme: str,
        shared_description: str,
        panel_prompts: str,
        layout: str,
        judge_theme_source: str = DEFAULT_JUDGE_THEME_SOURCE,
    ) -> io.NodeOutput:
        from paco_core.prompts import build_grid_prompt, judge_theme, parse_grid_prompt, prompt_lines

        lines = prompt_lines(panel_prompts)
        prompt = build_grid_prompt(theme, shared_description, lines, layout)
        parsed = parse_grid_prompt(prompt)
        seen = judge_theme(prompt, source=judge_theme_source, theme=theme)
        return io.NodeOutput(prompt, parsed.layout.num_panels, seen, layout)


class PaCoSplitGrid(io.ComfyNode):
    """One grid image (or a batch of them) -> its panels as an IMAGE batch."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PaCoSplitGrid",
            display_name="PaCo Split Grid",
            category="PaCo/Image",
            description=(
                "Cuts each grid image into its rows x columns equal panels, row-major, and returns "
                "them as one IMAGE batch (grid 1's panels, then grid 2's ...). Width and height must "
                "divide by the columns and rows."
            ),
            inputs=[
                io.Image.Input("image", tooltip="The grid image(s) to cut, e.g. a generated 2x2 set."),
                layout_input(),
            ],
            outputs=[
                io.Image.Output(
                    "panels", display_name="panels", tooltip="The panels as one IMAGE batch, row-major."
                ),
            ],
        )

    @classmethod
    def execute(cls, image, layout: str) -> io.NodeOutput:
        from paco_core.images import split_grid

        return io.NodeOutput(split_grid(image, layout))


class PaCoComposeGrid(io.ComfyNode):
    """An IMAGE batch of panels -> one grid image."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PaCoComposeGrid",
            display_name="PaCo Compose Grid",
            category="PaCo/Image",
            description=(
                "Places a batch of equally sized panels side by side into a rows x columns grid, "
                "row-major. A batch of k*rows*columns panels gives k grids."
            ),
            inputs=[
                io.Image.Input("panels", tooltip="The panels, one per batch item, row-major."),
                layout_input(),
            ],
            outputs=[
                io.Image.Output("grid", display_name="grid", tooltip="The composed grid image(s)."),
            ],
        )

    @classmethod
    def execute(cls, panels, layout: str) -> io.NodeOutput:
        from paco_core.images import compose_grid

        return io.NodeOutput(compose_grid(panels, layout))


NODES = [PaCoGridPrompt, PaCoSplitGrid, PaCoComposeGrid]
