"""A set of your character: reference images anchor a consistent set.

Two paths, chosen by the loaded pipeline:

- **FLUX grid** (FLUX.1-dev, with the PaCo LoRA): the references occupy the first cells of the
  grid (or ``reference_cells``), the other cells are generated in context by masked denoising
  of the whole grid, the references' latents re-imposed at every step
  (``paco_core.consistency.inpaint``). The grid prompt names every cell: the references'
  cells say ``reference_prompt`` (default: the theme), the others their panel prompts.
- **Edit** (FLUX.1-Kontext-dev, Qwen-Image-Edit, -Plus): each panel is an edit of the
  reference by its panel prompt (Edit-Plus: of all references at once).

Either way the output grid holds the references in their cells, pixel-identical to the
references as fitted to the panel size (an image already of that size: to the image
itself), and the panels in the others. The judge then scores every pair of cells, so each
panel is compared with the references (its identity score: the mean of its pairs with the
references) as well as with the other panels; a panel keeps the reference's identity when
its identity score reaches ``identity_threshold``.

Example:
    >>> request = ReferenceSetRequest(theme="Mia, a red-haired courier.", panels=("she runs", "she eats",
    ...     "she sleeps"), layout="2x2", panel_width=512, panel_height=512)  # doctest: +SKIP
    >>> result = generate_reference_set(flux_with_lora, judge, [photo], request)  # doctest: +SKIP
    >>> result.keeps_identity  # doctest: +SKIP
    [True, True, False]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from paco_core.callbacks import NO_HOOKS, Hooks
from paco_core.consistency.cells import REFERENCE_FITS, check_cells, fit_reference
from paco_core.consistency.measure import Usage, measure
from paco_core.errors import InputError
from paco_core.families import family, kinds
from paco_core.prompts import DEFAULT_JUDGE_THEME_SOURCE, JUDGE_THEME_SOURCES, Layout, parse_layout
from paco_core.reward.backend import JudgeBackend
from paco_core.reward.results import SetScore

FLUX_GUIDANCE = 3.5
"""FLUX.1-dev's guidance for the grid path when ``guidance`` is None (as PaCo Generate Set)."""


def panel_path(kind: str) -> str | None:
    """How a pipeline kind's panels are made: "grid" (a sets family with an inpaint pipeline) or "edit";
    None for an unknown kind or a sets family without one (the grid path inpaints cells)."""
    if kind not in kinds() or not (family(kind).is_edit or family(kind).inpaint_pipeline_class):
        return None
    return "edit" if family(kind).is_edit else "grid"


@dataclass(frozen=True)
class ReferenceSetRequest:
    """What a reference-anchored set should show and how to sample it.

    Args:
        theme: what the whole set shows (the judge's theme).
        panels: one prompt per generated panel, row-major over the cells that are not references;
            on the edit path, each is the edit instruction of its panel.
        layout: "RxC"; it holds the references plus the panels (e.g. 1 reference + 3 panels: 2x2).
        description: what every panel shares (grid path); may be "".
        reference_prompt: what the reference cells show, in the grid prompt; "" = the theme.
        reference_cells: 0-based cell of each reference, in the references' order; () = the first cells.
        reference_fit: "pad" (whole reference, centred) or "crop" (panel filled), aspect kept.
        panel_width, panel_height: one panel in pixels (multiples of 16).
        steps: denoising steps.
        guidance: FLUX guidance / edit guidance; None = the model's default (FLUX 3.5, Kontext 2.5,
            Qwen true CFG 4.0).
        seed: seed of the grid (grid path) or of panel 1 (edit path; panel k uses seed + k - 1).
        identity_threshold: a panel whose mean score against the references reaches this keeps
            the reference's identity.
        judge_theme_source: grid path: "preamble" (the grid prompt's text before its first panel
            tag, as in PaCo-RL's training) or "theme"; the edit path always uses the theme.
        max_sequence_length: T5 / Qwen prompt tokens.
    """

    theme: str
    panels: tuple[str, ...]
    layout: str = "2x2"
    description: str = ""
    reference_prompt: str = ""
    reference_cells: tuple[int, ...] = ()
    reference_fit: str = "pad"
    panel_width: int = 512
    panel_height: int = 512
    steps: int = 28
    guidance: float | None = None
    seed: int = 0
    identity_threshold: float = 0.5
    judge_theme_source: str = DEFAULT_JUDGE_THEME_SOURCE
    max_sequence_length: int = 512

    def __post_init__(self) -> None:
        from paco_core.generate import SetRequest

        object.__setattr__(self, "panels", tuple(self.panels))
        object.__setattr__(self, "reference_cells", tuple(self.reference_cells))
        # the sampling fields share SetRequest's checks (steps, seed, guidance, panel sides)
        SetRequest(
            theme=self.theme or "-",
            panels=self.panels,
            panel_width=self.panel_width,
            panel_height=self.panel_height,
            steps=self.steps,
            seed=self.seed,
            guidance=FLUX_GUIDANCE if self.guidance is None else self.guidance,
            max_sequence_length=self.max_sequence_length,
        )
        check_score("identity_threshold", self.identity_threshold)
        if self.reference_fit not in REFERENCE_FITS:
            raise InputError(
                f"`reference_fit` should be one of {', '.join(REFERENCE_FITS)}, got {self.reference_fit!r}."
            )
        if self.judge_theme_source not in JUDGE_THEME_SOURCES:
            raise InputError(
                f"`judge_theme_source` should be one of {', '.join(JUDGE_THEME_SOURCES)}, "
                f"got {self.judge_theme_source!r}."
            )
        if not self.theme or not self.theme.strip():
            raise InputError("`theme` is empty: say what the whole set shows (e.g. 'Mia, a courier.').")


@dataclass
class ReferenceSetResult:
    """A reference-anchored set.

    Attributes:
        grid: the output grid (references in their cells, pixel-identical).
        cells: every cell's image, row-major (references included).
        references: the references as fitted to the panel size, in the given order.
        reference_cells: 0-based cell of each reference.
        panel_cells: 0-based cells holding generated panels.
        path: "grid" (FLUX masked denoising) or "edit".
        prompt: the grid prompt (grid path) or "" (edit path).
        judge_theme: the theme the judge was given.
        set_score: the judge's score of all cells (every pair).
        identity: per generated panel, the mean of its pair scores with the references.
        keeps_identity: per generated panel, identity >= the request's threshold.
        panel_score: the mean pair score among the generated panels (NaN with one panel).
        usage: time and peak memory of the whole run (generation and judge).
        settings: how it was made (model, LoRAs, request).
    """

    grid: Any
    cells: list[Any]
    references: list[Any]
    reference_cells: tuple[int, ...]
    panel_cells: tuple[int, ...]
    path: str
    prompt: str
    judge_theme: str
    set_score: SetScore
    identity: list[float]
    keeps_identity: list[bool]
    panel_score: float
    usage: Usage = field(default_factory=Usage)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def panels(self) -> list[Any]:
        """The generated panels only, in cell order."""
        return [self.cells[cell] for cell in self.panel_cells]


def check_score(name: str, value: Any) -> float:
    """A score-like input: a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"`{name}` should be a number from 0 to 1, got {value!r}.")
    if not 0 <= value <= 1:
        raise InputError(f"`{name}` should be from 0 to 1 (a judge probability), got {value!r}.")
    return float(value)


def plan_cells(
    request: ReferenceSetRequest, num_references: int
) -> tuple[Layout, tuple[int, ...], tuple[int, ...]]:
    """(layout, reference cells, panel cells), or InputError when the counts do not fit the layout."""
    layout = parse_layout(request.layout)
    if num_references < 1:
        raise InputError(
            "`references`: a reference-anchored set needs at least one reference image, got none; give the "
            "character / product / style image, or use PaCo Generate Set for a set without one."
        )
    needed = layout.num_panels - num_references
    if needed < 1 or len(request.panels) != needed:
        raise InputError(
            f"`panels`: layout {layout} has {layout.num_panels} cells; with {num_references} reference(s) it "
            f"needs {max(needed, 0)} panel prompt(s), got {len(request.panels)}. Give one prompt per "
            "generated panel or choose another layout."
        )
    if request.reference_cells:
        if len(request.reference_cells) != num_references:
            raise InputError(
                f"`reference_cells` names {len(request.reference_cells)} cell(s) for {num_references} "
                "reference(s): give one cell per reference."
            )
        reference_cells = check_cells(request.reference_cells, layout.num_panels, "reference_cells")
    else:
        reference_cells = tuple(range(num_references))
    panel_cells = tuple(cell for cell in range(layout.num_panels) if cell not in reference_cells)
    return layout, reference_cells, panel_cells


def prepare_references(references: Sequence, request: ReferenceSetRequest) -> list:
    """Each reference fitted to the panel size, aspect kept (any size or mode in)."""
    if references is None or isinstance(references, (str, bytes)):
        references = []
    return [
        fit_reference(
            image, request.panel_width, request.panel_height, request.reference_fit, f"reference {n}"
        )
        for n, image in enumerate(references, start=1)
    ]


def generate_reference_set(
    loaded,
    judge: JudgeBackend,
    references: Sequence,
    request: ReferenceSetRequest,
    *,
    hooks: Hooks = NO_HOOKS,
) -> ReferenceSetResult:
    """Generate a set anchored on reference images and judge it against them.

    Args:
        loaded: a ``LoadedPipeline``: FLUX.1-dev (grid path; with the PaCo LoRA) or an edit model.
        judge: the judge scoring every pair of cells.
        references: one or more PIL images of any size or mode (fitted to the panel size).
        request: what to generate.
        hooks: progress over the denoising steps, cancel checks.

    Returns:
        ``ReferenceSetResult``.
    """
    from paco_core.generate import base_settings
    from paco_core.images import compose_grid
    from paco_core.models.lora import lora_scope

    # 1. check and fit the inputs, before any model runs
    path = panel_path(loaded.kind)
    if path is None:
        raise InputError(f"cannot make a reference set with a {loaded.kind} pipeline.")
    fitted = prepare_references(references, request)
    layout, reference_cells, panel_cells = plan_cells(request, len(fitted))
    if path == "edit":
        from paco_core.consistency.edits import check_reference_count

        check_reference_count(loaded.kind, len(fitted))
    with measure(loaded.device) as usage:
        # 2. make the panels
        with lora_scope(loaded) as pipe:
            if path == "grid":
                grid, prompt = _grid_path(
                    pipe, loaded, fitted, layout, reference_cells, panel_cells, request, hooks
                )
                cells = _split(grid, layout)
            else:
                panels = _edit_path(pipe, loaded.kind, fitted, request, hooks)
                cells = _place(fitted, reference_cells, panels, panel_cells)
                grid, prompt = compose_grid(cells, layout), ""
        # 3. judge every pair of cells
        judge_theme = _judge_theme(request, prompt)
        set_score = _score_cells(judge, cells, judge_theme, hooks)
    identity = [
        sum(_pair(set_score, ref, cell) for ref in reference_cells) / len(reference_cells)
        for cell in panel_cells
    ]
    return ReferenceSetResult(
        grid=grid,
        cells=cells,
        references=fitted,
        reference_cells=reference_cells,
        panel_cells=panel_cells,
        path=path,
        prompt=prompt,
        judge_theme=judge_theme,
        set_score=set_score,
        identity=identity,
        keeps_identity=[score >= request.identity_threshold for score in identity],
        panel_score=_mean_among(set_score, panel_cells),
        usage=usage,
        settings={**base_settings(loaded), **asdict(request), "path": path, "prompt": prompt},
    )


def _grid_path(pipe, loaded, fitted, layout, reference_cells, panel_cells, request, hooks):
    from paco_core.consistency.inpaint import encode_grid_prompt, inpaint_cells
    from paco_core.models.pipelines import execution_device
    from paco_core.prompts import build_grid_prompt

    prompts = [""] * layout.num_panels
    for cell in reference_cells:
        prompts[cell] = request.reference_prompt.strip() or request.theme
    for cell, text in zip(panel_cells, request.panels, strict=True):
        prompts[cell] = text
    prompt = build_grid_prompt(request.theme, request.description, prompts, layout)
    embeddings = encode_grid_prompt(pipe, prompt, execution_device(loaded), request.max_sequence_length)
    start = _place(fitted, reference_cells, [_neutral(fitted[0])] * len(panel_cells), panel_cells)
    from paco_core.images import compose_grid

    grid = inpaint_cells(
        pipe,
        compose_grid(start, layout),
        layout,
        panel_cells,
        embeddings,
        steps=request.steps,
        guidance=FLUX_GUIDANCE if request.guidance is None else request.guidance,
        seed=request.seed,
        max_sequence_length=request.max_sequence_length,
        hooks=hooks,
        total=request.steps,
    )
    return grid, prompt


def _edit_path(pipe, kind, fitted, request, hooks) -> list:
    from paco_core.consistency.edits import edit_from_references

    total = request.steps * len(request.panels)
    return [
        edit_from_references(
            pipe,
            kind,
            fitted,
            instruction,
            steps=request.steps,
            guidance=request.guidance,
            seed=request.seed + index,
            hooks=hooks,
            done_before=index * request.steps,
            total=total,
            max_sequence_length=request.max_sequence_length,
        )
        for index, instruction in enumerate(request.panels)
    ]


def _neutral(image):
    """A flat grey panel: what the generated cells start from (strength 1 ignores it anyway)."""
    from PIL import Image

    return Image.new("RGB", image.size, (127, 127, 127))


def _place(references, reference_cells, panels, panel_cells) -> list:
    cells: dict[int, Any] = dict(zip(reference_cells, references, strict=True))
    cells.update(zip(panel_cells, panels, strict=True))
    return [cells[index] for index in range(len(cells))]


def _split(grid, layout) -> list:
    from paco_core.images import split_grid

    return split_grid(grid, layout)


def _judge_theme(request: ReferenceSetRequest, prompt: str) -> str:
    from paco_core.prompts import judge_theme

    if not prompt:
        return request.theme
    return judge_theme(prompt, source=request.judge_theme_source, theme=request.theme)


def _score_cells(judge, cells, theme, hooks: Hooks) -> SetScore:
    from paco_core.reward.scoring import score_set

    return score_set(judge, cells, theme, hooks=Hooks(check_cancel=hooks.check_cancel))


def _pair(result: SetScore, first: int, second: int) -> float:
    return (result.matrix[first][second] + result.matrix[second][first]) / 2


def _mean_among(result: SetScore, cells: Sequence[int]) -> float:
    pairs = [_pair(result, a, b) for i, a in enumerate(cells) for b in cells[i + 1 :]]
    return sum(pairs) / len(pairs) if pairs else float("nan")
