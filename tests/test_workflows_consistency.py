"""The consistency tools' shipped workflows ("a set of your character", "repair the odd panel"):
what each one does. The checks every workflow gets (UI format, schemas, links, layout,
readability, queued prompt) run over these files too, in tests/test_workflows.py."""

from __future__ import annotations

import json

import pytest
from pack_loader import check_inputs
from test_workflows import layouts, node_classes, only  # noqa: F401  (layouts, node_classes: fixtures)

from tools.workflows.api_prompt import to_api_prompt
from tools.workflows.specs import SHIPPED_WORKFLOWS, WORKFLOWS_DIR
from tools.workflows.specs.consistency import WORKFLOWS as CONSISTENCY_WORKFLOWS


def prompt_of(name: str, layouts) -> dict:  # noqa: F811  (the fixture's value)
    return to_api_prompt(json.loads((WORKFLOWS_DIR / f"{name}.json").read_text(encoding="utf-8")), layouts)


def sources(prompt: dict, class_type: str) -> dict[str, str]:
    return {
        name: prompt[value[0]]["class_type"]
        for name, value in only(prompt, class_type).items()
        if isinstance(value, list)
    }


def test_both_are_shipped_and_generated():
    assert set(CONSISTENCY_WORKFLOWS) <= set(SHIPPED_WORKFLOWS)
    for name in CONSISTENCY_WORKFLOWS:
        assert (WORKFLOWS_DIR / f"{name}.json").is_file()


def test_a_set_of_your_character_anchors_flux_with_the_paco_lora_on_a_loaded_picture(layouts, node_classes):  # noqa: F811
    prompt = prompt_of("paco-character-set", layouts)
    assert sources(prompt, "PaCoReferenceSet") == {
        "pipeline": "PaCoLora",
        "judge": "PaCoJudgeLoader",
        "references": "LoadImage",
    }
    node = only(prompt, "PaCoReferenceSet")
    assert node["layout"] == "2x2" and len(node["panels"].splitlines()) == 3  # 1 reference + 3 panels
    assert only(prompt, "PaCoPipelineLoader")["model"] == "FLUX.1-dev"
    check_inputs(node_classes["PaCoReferenceSet"], node)
    saved = [n for n in prompt.values() if n["class_type"] == "SaveImage"]
    assert [prompt[n["inputs"]["images"][0]]["class_type"] for n in saved] == ["PaCoReferenceSet"]


def test_repair_the_odd_panel_shows_heatmaps_before_and_after_and_the_log(layouts, node_classes):  # noqa: F811
    prompt = prompt_of("paco-repair-odd-panel", layouts)
    assert sources(prompt, "PaCoRepairSet") == {
        "pipeline": "PaCoLora",
        "judge": "PaCoJudgeLoader",
        "images": "LoadImage",
    }
    node = only(prompt, "PaCoRepairSet")
    assert (node["target_score"], node["tries_per_round"], node["max_rounds"]) == (0.85, 2, 3)
    assert node["theme"].strip() and node["layout"] == "2x2"
    check_inputs(node_classes["PaCoRepairSet"], node)
    shown = {
        prompt[n["inputs"]["images"][0]]["class_type"] + "." + str(n["inputs"]["images"][1])
        for n in prompt.values()
        if n["class_type"] in ("SaveImage", "PreviewImage")
    }
    outputs = [slot.name for slot in layouts["PaCoRepairSet"].outputs]
    assert shown == {
        f"PaCoRepairSet.{outputs.index(name)}" for name in ("grid", "heatmap_before", "heatmap_after")
    }


@pytest.mark.parametrize("name", sorted(CONSISTENCY_WORKFLOWS))
def test_each_has_a_models_note_and_groups(name):
    workflow = json.loads((WORKFLOWS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    assert [node["type"] for node in workflow["nodes"]].count("Note") == 1
    assert len(workflow["groups"]) == 4
