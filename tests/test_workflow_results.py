"""tools/workflow_results.py: the tiny-run prompts and the result cards (no ComfyUI needed).

Each shipped workflow's real API prompt (as the frontend queues it) gets the images and
texts its output nodes show in a run, written in the nodes' own report formats; the card
composed from them must be square, show the pictures, and mark what it says it marks.
"""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from tools.workflow_cards import ACCENT, CARD_SIZE, LABEL_HEIGHT
from tools.workflow_results import (
    NATIVE_STAND_INS,
    TINY_CHARACTER,
    TINY_JUDGE,
    TINY_LORA,
    TINY_PANEL,
    TINY_REFERENCE,
    TINY_SET,
    TITLES,
    RunResult,
    compose_card,
    load_run,
    qwen_edit_chain_prompt,
    run_name,
    save_run,
    tiny_prompt,
)
from tools.workflows.api_prompt import to_api_prompt
from tools.workflows.node_layouts import node_layouts
from tools.workflows.specs import NATIVE_WORKFLOWS, WORKFLOWS_DIR

NAMES = sorted(path.stem for path in WORKFLOWS_DIR.glob("*.json"))
SET_REPORT = (
    'set consistency 0.378 for "FOUR-PANEL Images ..." (6 pairs of 4 images)\n'
    "per image: #1 0.381, #2 0.369, #3 0.376, #4 0.386\nweakest pair: #2 and #3 (0.361)"
)
RANKING = (
    "best: set 3 (seed 44), consistency 0.307 of 4 candidate sets\n1. set 3 (seed 44): 0.307\n"
    "2. set 2 (seed 43): 0.288\n3. set 4 (seed 45): 0.287\n4. set 1 (seed 42): 0.282"
)
EDIT_REPORT = 'edit 1 "Make it snow.": overall 0.364 (consistency 0.347, following 0.383)'
POOL_REPORT = (
    "assembled set consistency 0.380 from 4 candidate sets of 4 panels\n"
    "choice: panel 1 from set 1, panel 2 from set 4, panel 3 from set 1, panel 4 from set 1\n"
    "best whole set (best-of-4): set 1, 0.378; assembled is +0.002"
)
REFERENCE_REPORT = (
    "set of your character (FLUX grid, references held by masked denoising): set consistency 0.350 over 4 "
    "cells (reference cells #1, pixel-identical to the references)\npanels among themselves: 0.348\n"
    "panel #2: against the reference 0.336 -> drifts from the reference\n"
    "panel #3: against the reference 0.371 -> keeps the reference's identity\n"
    "panel #4: against the reference 0.346 -> drifts from the reference\n"
    "keep the identity (score >= 0.35): #3 (1 of 3 panels)\ncost: 1.4 s, peak memory 1087 MiB (process RSS)"
)
REPAIR_REPORT = (
    "repair of the odd panel (grid inpainting): set consistency 0.335 -> 0.358 (target 0.850; rounds used up)\n"
    "round 1: panel #4 (mean 0.329), 2 tries: 0.338, 0.344 -> kept try 2; set 0.344\n"
    "round 2: panel #2 (mean 0.342), 2 tries: 0.340, 0.339 -> no try raised the score, set kept; set 0.344\n"
    "round 3: panel #2 (mean 0.342), 2 tries: 0.355, 0.358 -> kept try 2; set 0.358\n"
    "changed panels: #2, #4; every other panel is pixel-identical to the input\n"
    "cost: 6.4 s, peak memory 1095 MiB (process RSS); 24 denoising steps, 18 judge pairs"
)
"""The consistency nodes' reports (paco_core.consistency.report), as their ui text and report output."""
JOB_STATUS = "job-4e93109c · paco-sets: completed, step 3/3\neval consistency = 0.235 (step 3)"
COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]


@pytest.fixture(scope="module")
def prompts() -> dict[str, dict]:
    layouts = node_layouts()
    return {
        name: to_api_prompt(json.loads((WORKFLOWS_DIR / f"{name}.json").read_text()), layouts)
        for name in NAMES
    }


def png(colour, size=(32, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def quadrants(size: int = 64) -> bytes:
    """A 2x2 grid of four colours (the candidates picture of best-of-N)."""
    image = Image.new("RGB", (size, size))
    for index, colour in enumerate(COLOURS):
        image.paste(
            colour,
            (
                (index % 2) * size // 2,
                (index // 2) * size // 2,
                *(((index % 2) + 1) * size // 2, ((index // 2) + 1) * size // 2),
            ),
        )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def shown(prompt: dict) -> RunResult:
    """What a run of ``prompt`` shows, by output node type, in the nodes' formats."""
    result = RunResult(prompt)
    for node_id, node in prompt.items():
        kind, source = node["class_type"], node["inputs"].get("images")
        if kind == "LoadImage":
            result.images[node_id] = [png((120, 160, 200))]
        elif kind in ("SaveImage", "PreviewImage"):
            producer = prompt[source[0]]["class_type"]
            if producer == "PaCoGenerateSet" and source[1] == 0:
                result.images[node_id] = [png(colour) for colour in COLOURS]
            elif producer in ("PaCoComposeGrid", "VAEDecode", "PaCoPoolAssemble") or [
                producer,
                source[1],
            ] in (
                ["PaCoReferenceSet", 0],
                ["PaCoRepairSet", 0],
            ):
                result.images[node_id] = [quadrants()]
            elif producer == "PaCoEditChain":
                result.images[node_id] = [png((120, 160, 200)), *(png(c) for c in COLOURS[:3])]
            else:
                result.images[node_id] = [png((90, 90, 90), (64, 64))]
        elif kind == "PaCoTrainingJob":
            result.images[node_id] = [png((100, 100, 100), (64, 64)), png((255, 255, 255), (320, 180))]
            result.texts[node_id] = [JOB_STATUS]
        elif kind in ("PaCoReferenceSet", "PaCoRepairSet"):  # ui.PreviewText(report)
            result.texts[node_id] = [REFERENCE_REPORT if kind == "PaCoReferenceSet" else REPAIR_REPORT]
        elif kind == "PreviewAny":
            producer = prompt[node["inputs"]["source"][0]]["class_type"]
            report = {
                "PaCoSetConsistency": SET_REPORT,
                "PaCoRankSets": RANKING,
                "PaCoEditScore": EDIT_REPORT,
                "PaCoPoolAssemble": POOL_REPORT,
                "PaCoReferenceSet": REFERENCE_REPORT,
                "PaCoRepairSet": REPAIR_REPORT,
            }
            result.texts[node_id] = [report[producer]]
    return result


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("tiny", [False, True], ids=["real", "tiny"])
def test_every_shipped_workflow_gets_a_square_card_with_a_title(name, tiny, prompts):
    assert name in TITLES, f"give {name} a title in tools/workflow_results.py"
    source = run_name(name, tiny)
    prompt = prompts.get(source) or qwen_edit_chain_prompt(prompts["paco-edit-chain"])
    card = compose_card(name, shown(prompt), tiny)
    assert card.image.size == CARD_SIZE
    assert ("tiny test models: images are noise" in card.caption) == tiny
    if tiny and name in NATIVE_WORKFLOWS:
        assert "needs real model files" in card.caption, "a stand-in result says so"
    if name not in ("paco-train-lora", "paco-train-character"):  # a training card shows the job's sample
        assert set(card.image.getdata()) & set(COLOURS), f"the {name} card should show the run's pictures"


def test_the_best_of_n_card_outlines_the_winning_set(prompts):
    card = compose_card("paco-best-of-n", shown(prompts["paco-best-of-n"]), tiny=False)
    image = card.image
    # set 3 is the bottom-left quadrant (set 1 top left, row-major): the outline's pixels are there only
    accent = [
        (x, y)
        for x in range(image.width)
        for y in range(card.top, card.bottom)
        if image.getpixel((x, y)) == ACCENT
    ]
    middle_x = sum(x for x, _ in accent) / len(accent)
    middle_y = sum(y for _, y in accent) / len(accent)
    assert middle_x < image.width / 2 and middle_y > (card.top + card.bottom) / 2, (middle_x, middle_y)
    assert card.lines == [
        RANKING.splitlines()[0],
        "ranking: set 3 0.307 > set 2 0.288 > set 4 0.287 > set 1 0.282",
    ]


def test_cards_carry_the_scores(prompts):
    consistent = compose_card("paco-consistent-set", shown(prompts["paco-consistent-set"]), tiny=True)
    assert consistent.lines == [
        "set consistency 0.378 (6 pairs of 4 images)",
        "weakest pair: #2 and #3 (0.361)",
    ]
    edit = compose_card("paco-edit-chain", shown(prompts["paco-edit-chain"]), tiny=True)
    assert edit.lines == [
        "edit 1 score 0.364 (consistency 0.347, following 0.383)",
        'edit 1: "Make it snow."',
    ]
    training = compose_card("paco-train-lora", shown(prompts["paco-train-lora"]), tiny=True)
    assert training.lines == JOB_STATUS.splitlines()


def accent_cells(card, picture_box: tuple[int, int, int, int]) -> set[int]:
    """Which quarters (0..3, row-major) of ``picture_box`` hold accent-coloured pixels."""
    left, top, right, bottom = picture_box
    half_x, half_y = (left + right) / 2, (top + bottom) / 2
    return {
        (y >= half_y) * 2 + (x >= half_x)
        for x in range(left, right)
        for y in range(top, bottom)
        if card.image.getpixel((x, y)) == ACCENT
    }


def test_the_character_set_card_outlines_the_reference_and_says_who_keeps_the_identity(prompts):
    card = compose_card("paco-character-set", shown(prompts["paco-character-set"]), tiny=False)
    assert card.lines == [
        "set consistency 0.350 (4 cells, reference #1)",
        "keep the identity (score >= 0.35): #3 (1 of 3 panels)",
    ]
    left, top, width, height = card.area
    # the set is the top-left picture (at most 62% of the width), below its label; the reference is cell 1
    side = min(height - LABEL_HEIGHT, round(width * 0.62))
    assert accent_cells(card, (left, top + LABEL_HEIGHT, left + side, top + LABEL_HEIGHT + side)) == {0}
    assert (90, 90, 90) in set(card.image.crop((left + side, top, left + width, card.bottom)).getdata()), (
        "the heatmap beside the set"
    )


def test_the_repair_card_shows_before_and_after_with_the_redrawn_panels_outlined(prompts):
    card = compose_card("paco-repair-odd-panel", shown(prompts["paco-repair-odd-panel"]), tiny=True)
    assert card.lines == [
        "set consistency 0.335 -> 0.358",
        "round 1: #4 redrawn, set 0.344; round 2: #2 kept, set 0.344; round 3: #2 redrawn, set 0.358 "
        "(rounds used up)",
    ]
    middle = card.image.width // 2
    before = (0, card.top, middle, card.bottom)
    assert accent_cells(card, before) == set(), "nothing is outlined in the set before"
    # the after picture: the set's colours and the outline, in the right half; panels #2 and #4 are
    # its right column
    after = [
        (x, y)
        for x in range(middle, card.image.width)
        for y in range(card.top, card.bottom)
        if card.image.getpixel((x, y)) in (*COLOURS, ACCENT)
    ]
    xs, ys = [x for x, _ in after], [y for _, y in after]
    assert accent_cells(card, (min(xs), min(ys), max(xs) + 1, max(ys) + 1)) == {1, 3}
    pixels = set(card.image.getdata())
    assert (120, 160, 200) in pixels and set(COLOURS) <= pixels, "the set before and the set after"


def test_the_tiny_prompt_uses_the_tiny_models_and_keeps_links(prompts):
    prompt = tiny_prompt(json.loads(json.dumps(prompts["paco-train-lora"])))
    inputs = {node["class_type"]: node["inputs"] for node in prompt.values()}
    assert inputs["PaCoPipelineLoader"]["model"] == "tiny-flux"
    assert inputs["PaCoJudgeLoader"]["judge_name"] == TINY_JUDGE
    assert isinstance(inputs["PaCoLora"]["lora_name"], list), "the LoRA still comes from the training job"
    assert inputs["PaCoGenerateSet"]["panel_width"] == TINY_PANEL
    assert json.loads(inputs["PaCoTrainLora"]["advanced_json"])["lora"]["rank"] == 4
    chain = tiny_prompt(json.loads(json.dumps(prompts["paco-consistent-set"])))
    (lora,) = [node["inputs"] for node in chain.values() if node["class_type"] == "PaCoLora"]
    assert lora["lora_name"] == TINY_LORA
    edit = tiny_prompt(json.loads(json.dumps(prompts["paco-edit-chain"])))
    (load,) = [node["inputs"] for node in edit.values() if node["class_type"] == "LoadImage"]
    assert load["image"] == TINY_REFERENCE
    qwen = qwen_edit_chain_prompt(edit)
    (chain_inputs,) = [node["inputs"] for node in qwen.values() if node["class_type"] == "PaCoEditChain"]
    assert "\n" not in chain_inputs["instructions"], "one edit"
    assert set(NATIVE_STAND_INS) == set(NATIVE_WORKFLOWS)
    character = tiny_prompt(json.loads(json.dumps(prompts["paco-character-set"])))
    inputs = {node["class_type"]: node["inputs"] for node in character.values()}
    assert (
        inputs["PaCoPipelineLoader"]["model"] == "tiny-flux" and inputs["PaCoLora"]["lora_name"] == TINY_LORA
    )
    assert inputs["PaCoJudgeLoader"]["judge_name"] == TINY_JUDGE
    assert (inputs["PaCoReferenceSet"]["panel_width"], inputs["PaCoReferenceSet"]["steps"]) == (TINY_PANEL, 4)
    assert inputs["LoadImage"]["image"] == TINY_CHARACTER, "the set is drawn around a character"
    repair = tiny_prompt(json.loads(json.dumps(prompts["paco-repair-odd-panel"])))
    inputs = {node["class_type"]: node["inputs"] for node in repair.values()}
    assert inputs["PaCoPipelineLoader"]["model"] == "tiny-flux" and inputs["PaCoRepairSet"]["steps"] == 4
    assert inputs["LoadImage"]["image"] == TINY_SET, "the repair gets a set to repair, not the reference"


def test_a_saved_run_composes_the_same_card(prompts, tmp_path):
    result = shown(prompts["paco-consistent-set"])
    save_run(result, tmp_path / "run")
    loaded = load_run(tmp_path / "run")
    assert loaded.images == result.images and loaded.texts == result.texts
    first = compose_card("paco-consistent-set", result, tiny=True).png()
    assert compose_card("paco-consistent-set", loaded, tiny=True).png() == first
    with pytest.raises(SystemExit, match="holds no saved run"):
        load_run(tmp_path / "nothing")


def test_the_character_training_card_shows_the_reference_reward_and_your_references(prompts):
    result = shown(prompts["paco-train-character"])
    status = (
        "job-80218e6f · my-character: completed, step 3/3\ntrain aggregated = 0.4177 (step 3)\n"
        "eval consistency = 0.2509 (step 3)\neval reference = 0.3153 (step 3)"
    )
    (job,) = result.node_ids("PaCoTrainingJob")
    result.texts[job] = [status]
    card = compose_card("paco-train-character", result, tiny=True)
    assert card.lines == [status.splitlines()[0], "eval reference = 0.3153 (step 3)"]
    assert (120, 160, 200) in set(card.image.getdata()), "the references LoadImage read"
