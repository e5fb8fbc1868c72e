"""The shipped workflow "the most consistent set from a pool" (workflows/paco-pool.json): what
the generator writes, and a graph that does what its title says. The checks every workflow
gets (UI format, schemas, links, layout, the queued prompt) run over it in test_workflows.py."""

from __future__ import annotations

import json

import pytest
from pack_loader import all_node_classes, check_inputs
from test_workflows import layouts, place_artist_models  # noqa: F401  (the fixture, with the artist's models)

from tools.workflows.api_prompt import to_api_prompt
from tools.workflows.specs import SHIPPED_WORKFLOWS, WORKFLOWS_DIR
from tools.workflows.specs.pool import NUM_CANDIDATES, POOL_WORKFLOW, pool_workflow


def pool_prompt(layouts) -> dict[str, dict]:  # noqa: F811
    workflow = json.loads((WORKFLOWS_DIR / f"{POOL_WORKFLOW}.json").read_text(encoding="utf-8"))
    return to_api_prompt(workflow, layouts)


def node_id(prompt: dict, class_type: str) -> str:
    (found,) = [key for key, node in prompt.items() if node["class_type"] == class_type]
    return found


def test_the_pool_workflow_is_registered_and_its_file_is_what_the_generator_writes(layouts):  # noqa: F811
    assert SHIPPED_WORKFLOWS[POOL_WORKFLOW] is pool_workflow
    shipped = json.loads((WORKFLOWS_DIR / f"{POOL_WORKFLOW}.json").read_text(encoding="utf-8"))
    assert shipped == pool_workflow(layouts), "run python -m tools.workflow_convert"


def test_the_pool_assembles_the_candidates_of_one_prompt_and_saves_the_assembled_set(layouts):  # noqa: F811
    prompt = pool_prompt(layouts)
    generate_id, pool_id = node_id(prompt, "PaCoGenerateSet"), node_id(prompt, "PaCoPoolAssemble")
    generate, pool = prompt[generate_id]["inputs"], prompt[pool_id]["inputs"]
    assert generate["num_sets"] == NUM_CANDIDATES >= 2 and generate["layout"] == "2x2"
    assert pool["images"] == [generate_id, 1], "the pool gets Generate Set's candidate grids"
    assert pool["layout"] == generate["layout"] and pool["theme"] == [generate_id, 3]
    saved = [node["inputs"]["images"] for node in prompt.values() if node["class_type"] == "SaveImage"]
    assert saved == [[pool_id, 0]], "the assembled grid is what gets saved"
    shown = {
        tuple(node["inputs"]["images"]) for node in prompt.values() if node["class_type"] == "PreviewImage"
    }
    assert shown == {(pool_id, 3), (pool_id, 4)}  # the heatmaps, the choice picture
    (report,) = [node["inputs"] for node in prompt.values() if node["class_type"] == "PreviewAny"]
    assert report["source"] == [pool_id, 7]


def test_the_pool_workflows_prompt_passes_the_node_input_checks(layouts):  # noqa: F811
    classes = {cls.GET_SCHEMA().node_id: cls for cls in all_node_classes()}
    for node in pool_prompt(layouts).values():
        if node["class_type"] in classes:
            check_inputs(classes[node["class_type"]], node["inputs"])


@pytest.mark.parametrize("name", ["PaCoPoolAssemble", "PaCoGuardedEditChain"])
def test_the_consistency_nodes_are_listed_in_the_pack(name):
    assert name in {cls.GET_SCHEMA().node_id for cls in all_node_classes()}


def test_the_pool_card_shows_the_choice_picture_and_the_score_against_best_of_4():
    from test_workflow_results import COLOURS, shown

    from tools.workflow_results import compose_card
    from tools.workflows.node_layouts import node_layouts

    workflow = json.loads((WORKFLOWS_DIR / f"{POOL_WORKFLOW}.json").read_text(encoding="utf-8"))
    card = compose_card(POOL_WORKFLOW, shown(to_api_prompt(workflow, node_layouts())), tiny=True)
    assert card.lines == [
        "assembled set consistency 0.380",
        "best whole set of 4: set 1, 0.378; assembled is +0.002",
    ]
    assert set(card.image.getdata()) & set(COLOURS), "the card shows the choice picture"
