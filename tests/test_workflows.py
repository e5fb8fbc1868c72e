"""Contract tests for the shipped example workflows (workflows/*.json), no ComfyUI needed.

The PaCo nodes' schemas are built with an artist's models folder in place (the model
names the workflows' notes document), so the model dropdowns hold real options; the
workflows are then checked as the frontend would load them and as the server would
validate the prompt the frontend queues for them.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import pytest
from pack_loader import NodeInputError, all_node_classes, check_inputs, load_pack, reset_comfy_stub

from tools.workflows.api_prompt import to_api_prompt
from tools.workflows.builder import NODE_TITLE_HEIGHT, WorkflowBuilder
from tools.workflows.core_nodes import CORE_NODE_LAYOUTS
from tools.workflows.format import CONTROL_VALUES, Widget, WorkflowError
from tools.workflows.node_layouts import node_layouts
from tools.workflows.specs import NATIVE_WORKFLOWS, SHIPPED_WORKFLOWS, WORKFLOWS_DIR
from tools.workflows.specs.common import EXAMPLE_INPUT_IMAGE, MODEL_FOLDER_NOTE, SHIPPED_MODEL_NAMES
from tools.workflows.specs.native import NATIVE_MODEL_NAMES, NATIVE_MODEL_NOTE

WORKFLOW_FILES = sorted(WORKFLOWS_DIR.glob("*.json"))
UI_FORMAT_KEYS = {"last_node_id", "last_link_id", "nodes", "links", "groups", "config", "extra", "version"}
NODE_KEYS = {"id", "type", "pos", "size", "flags", "order", "mode", "inputs", "outputs", "properties"}
MODEL_WIDGETS = {
    ("PaCoPipelineLoader", "model"),
    ("PaCoLora", "lora_name"),
    ("PaCoJudgeLoader", "judge_name"),
    ("UNETLoader", "unet_name"),
    ("DualCLIPLoader", "clip_name1"),
    ("DualCLIPLoader", "clip_name2"),
    ("CLIPLoader", "clip_name"),
    ("VAELoader", "vae_name"),
    ("LoraLoaderModelOnly", "lora_name"),
}
"""Dropdowns of the user's model files: their shipped values are the names the note documents."""
PYTHON_TYPES = {"INT": int, "FLOAT": (int, float), "STRING": str, "BOOLEAN": bool}


def place_artist_models(base: Path) -> None:
    """The models a user puts where the workflows' notes say (empty weight files suffice
    for the dropdowns), and ComfyUI's example input picture."""
    models = base / "models"
    for name in SHIPPED_MODEL_NAMES["diffusers"]:
        (models / "diffusers" / name).mkdir(parents=True)
        (models / "diffusers" / name / "model_index.json").write_text("{}")
    (models / "loras").mkdir(parents=True)
    for name in SHIPPED_MODEL_NAMES["loras"]:  # a downloaded LoRA repository: a folder with one file
        (models / "loras" / name).mkdir()
        (models / "loras" / name / "pytorch_lora_weights.safetensors").write_bytes(b"")
    for name in SHIPPED_MODEL_NAMES["text_encoders"]:
        judge = models / "text_encoders" / name
        judge.mkdir(parents=True)
        (judge / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
        (judge / "model.safetensors").write_bytes(b"")
    (base / "input").mkdir()
    (base / "input" / EXAMPLE_INPUT_IMAGE).write_bytes(b"")


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """Node layouts with the artist's models in place; the stand-in's folders are put back after."""
    load_pack()
    import folder_paths

    previous_base = folder_paths.base_path
    base = tmp_path_factory.mktemp("artist-comfyui")
    place_artist_models(base)
    reset_comfy_stub(base)
    yield node_layouts()
    reset_comfy_stub(previous_base)


@pytest.fixture(scope="module")
def node_classes():
    return {cls.GET_SCHEMA().node_id: cls for cls in all_node_classes()}


@pytest.fixture(params=WORKFLOW_FILES, ids=lambda path: path.stem)
def workflow(request) -> dict:
    return json.loads(request.param.read_text(encoding="utf-8"))


def nodes_by_id(workflow: dict) -> dict[int, dict]:
    return {node["id"]: node for node in workflow["nodes"]}


def box(node: dict) -> tuple[float, float, float, float]:
    """Left, top, right, bottom of a node on the canvas, title bar included."""
    (x, y), (width, height) = node["pos"], node["size"]
    return x, y - NODE_TITLE_HEIGHT, x + width, y + height


def group_box(group: dict) -> tuple[float, float, float, float]:
    x, y, width, height = group["bounding"]
    return x, y, x + width, y + height


def overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def inside(inner, outer) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def widget_problems(node_type: str, widget: Widget, value, is_pack_node: bool) -> list[str]:
    where = f"{node_type}.{widget.name} = {value!r}"
    expected = PYTHON_TYPES.get(widget.io_type)
    if expected and (
        not isinstance(value, expected) or (widget.io_type != "BOOLEAN" and isinstance(value, bool))
    ):
        return [f"{where}: not a {widget.io_type}"]
    problems = []
    if widget.io_type == "COMBO" and is_pack_node and value not in widget.options:
        problems.append(f"{where}: not one of {widget.options}")
    if widget.min is not None and value < widget.min:
        problems.append(f"{where}: below {widget.min}")
    if widget.max is not None and value > widget.max:
        problems.append(f"{where}: above {widget.max}")
    return problems


# --------------------------------------------------------------------------- the files


def test_the_example_workflows_are_shipped():
    assert [path.stem for path in WORKFLOW_FILES] == sorted(SHIPPED_WORKFLOWS)


THUMBNAIL_SIZE = (768, 768)
"""The Templates browser shows thumbnails on square cards: tools/workflow_results.py's size."""


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda path: path.stem)
def test_every_workflow_has_a_square_jpeg_thumbnail(path):
    from PIL import Image

    thumbnail = path.with_suffix(".jpg")
    assert thumbnail.is_file(), f"{thumbnail.name} is missing: see docs/workflows.md (thumbnails)"
    assert thumbnail.stat().st_size <= 150_000, f"{thumbnail.name} is over 150 KB"
    with Image.open(thumbnail) as image:
        assert (image.format, image.size, image.mode) == ("JPEG", THUMBNAIL_SIZE, "RGB"), thumbnail.name


def test_no_thumbnail_without_its_workflow():
    assert sorted(path.stem for path in WORKFLOWS_DIR.glob("*.jpg")) == [path.stem for path in WORKFLOW_FILES]


def test_the_shipped_files_are_what_the_generator_writes(layouts):
    for name, build in SHIPPED_WORKFLOWS.items():
        shipped = json.loads((WORKFLOWS_DIR / f"{name}.json").read_text(encoding="utf-8"))
        assert shipped == build(layouts), f"{name}.json is stale: run python -m tools.workflow_convert"


def test_a_workflow_is_in_the_ui_format(workflow):
    assert UI_FORMAT_KEYS <= set(workflow) and workflow["version"] == 0.4
    node_ids = [node["id"] for node in workflow["nodes"]]
    link_ids = [link[0] for link in workflow["links"]]
    assert len(set(node_ids)) == len(node_ids) and len(set(link_ids)) == len(link_ids)
    assert workflow["last_node_id"] >= max(node_ids) and workflow["last_link_id"] >= max(link_ids)
    for node in workflow["nodes"]:
        assert NODE_KEYS <= set(node), node["id"]
        assert node["mode"] == 0, f"node {node['id']} ({node['type']}) is muted or bypassed"
    assert sorted(node["order"] for node in workflow["nodes"]) == list(range(len(node_ids)))


def test_every_node_is_a_paco_node_or_an_allowed_core_node(workflow, layouts):
    for node in workflow["nodes"]:
        layout = layouts.get(node["type"])
        assert layout is not None, f"{node['type']} is not a PaCo node and not in {sorted(CORE_NODE_LAYOUTS)}"
        assert layout.is_pack_node == node["type"].startswith("PaCo"), node["type"]


def workflow_widget_problems(workflow: dict, layouts) -> list[str]:
    problems = []
    for node in workflow["nodes"]:
        layout = layouts[node["type"]]
        values, controls = layout.read_widget_values(node["widgets_values"])
        for widget in layout.widgets:
            problems += widget_problems(node["type"], widget, values[widget.name], layout.is_pack_node)
        problems += [
            f"{node['type']}.{name} control {v!r}" for name, v in controls.items() if v not in CONTROL_VALUES
        ]
        if node["type"] == "LoadImage" and values["image"] != EXAMPLE_INPUT_IMAGE:
            problems.append(
                f"LoadImage.image = {values['image']!r}: ComfyUI ships input/{EXAMPLE_INPUT_IMAGE}"
            )
    return problems


def test_widget_values_fit_the_node_schemas(workflow, layouts):
    assert workflow_widget_problems(workflow, layouts) == []


def test_widget_values_that_do_not_fit_are_found(consistent_set, layouts):
    generate = node_of_type(consistent_set, "PaCoGenerateSet")
    generate["widgets_values"][3:7] = ["9x9", 512, 4096, 28.5]
    generate["widgets_values"][9] = "sometimes"
    node_of_type(consistent_set, "PaCoJudgeLoader")["widgets_values"][0] = "PaCo-Reward-13B"
    problems = workflow_widget_problems(consistent_set, layouts)
    assert sorted(problem.split(":")[0] for problem in problems) == [
        "PaCoGenerateSet.layout = '9x9'",
        "PaCoGenerateSet.panel_height = 4096",
        "PaCoGenerateSet.seed control 'sometimes'",
        "PaCoGenerateSet.steps = 28.5",
        "PaCoJudgeLoader.judge_name = 'PaCo-Reward-13B'",
    ]


def test_node_sockets_are_the_schema_sockets_in_frontend_order(workflow, layouts):
    for node in workflow["nodes"]:
        layout = layouts[node["type"]]
        inputs = [(slot["name"], slot["type"], "widget" in slot) for slot in node["inputs"]]
        expected = [(item.name, item.io_type, isinstance(item, Widget)) for item in layout.input_slots]
        assert inputs == expected, node["type"]
        assert [(slot["name"], slot["type"]) for slot in node["outputs"]] == [
            (slot.name, slot.io_type) for slot in layout.outputs
        ], node["type"]


def test_links_agree_on_both_ends(workflow, layouts):
    nodes = nodes_by_id(workflow)
    for link_id, source, source_slot, target, target_slot, link_type in workflow["links"]:
        output, target_input = nodes[source]["outputs"][source_slot], nodes[target]["inputs"][target_slot]
        assert link_id in (output["links"] or []) and target_input["link"] == link_id, link_id
        assert output["type"] == link_type and target_input["type"] in (link_type, "*"), link_id
    listed = {link[0]: link for link in workflow["links"]}
    for node in workflow["nodes"]:
        for slot, output in enumerate(node["outputs"]):
            for link_id in output["links"] or []:
                assert listed[link_id][1:3] == [node["id"], slot], link_id
        for slot, node_input in enumerate(node["inputs"]):
            if node_input["link"] is not None:
                assert listed[node_input["link"]][3:5] == [node["id"], slot], node_input
        required = {socket.name for socket in layouts[node["type"]].sockets if not socket.optional}
        linked = {item["name"] for item in node["inputs"] if item["link"] is not None}
        assert required <= linked, f"{node['type']} has unlinked sockets {required - linked}"


def test_nodes_and_groups_do_not_overlap_and_every_node_sits_in_one_group(workflow):
    boxes = {node["id"]: box(node) for node in workflow["nodes"]}
    groups = [group_box(group) for group in workflow["groups"]]
    assert [(a, b) for a, b in itertools.combinations(boxes, 2) if overlaps(boxes[a], boxes[b])] == []
    assert [
        (a, b) for a, b in itertools.combinations(range(len(groups)), 2) if overlaps(groups[a], groups[b])
    ] == []
    for node in workflow["nodes"]:
        holders = [g for g in groups if inside(boxes[node["id"]], g)]
        touched = [g for g in groups if overlaps(boxes[node["id"]], g)]
        if node["type"] == "Note":
            assert touched == [], "the note stands outside the groups"
        else:
            assert len(holders) == 1 and touched == holders, f"node {node['id']} ({node['type']})"


def test_the_note_says_where_every_chosen_model_goes(workflow, layouts):
    (note,) = [node for node in workflow["nodes"] if node["type"] == "Note"]
    text = note["widgets_values"][0]
    native = any(node["type"] == "UNETLoader" for node in workflow["nodes"])
    assert text == (NATIVE_MODEL_NOTE if native else MODEL_FOLDER_NOTE)
    folders = (
        ("diffusion_models", "text_encoders", "vae", "loras")
        if native
        else ("diffusers", "loras", "text_encoders")
    )
    for folder in folders:
        assert folder + "/" in text
    chosen = {
        value
        for node in workflow["nodes"]
        for name, value in layouts[node["type"]].read_widget_values(node["widgets_values"])[0].items()
        if (node["type"], name) in MODEL_WIDGETS
    }
    assert chosen and [name for name in chosen if name not in text] == []


def test_the_queued_prompt_passes_the_node_input_checks(workflow, layouts, node_classes):
    prompt = to_api_prompt(workflow, layouts)
    assert "Note" not in {node["class_type"] for node in prompt.values()}
    for node_id, node in prompt.items():
        for value in node["inputs"].values():
            if isinstance(value, list):
                assert value[0] in prompt and value[0] != node_id, (node_id, value)
        if node["class_type"] in node_classes:
            check_inputs(node_classes[node["class_type"]], node["inputs"])


# --------------------------------------------------------------------------- what each workflow does


def prompt_of(name: str, layouts) -> dict[str, dict]:
    return to_api_prompt(json.loads((WORKFLOWS_DIR / f"{name}.json").read_text(encoding="utf-8")), layouts)


def only(prompt: dict, class_type: str) -> dict:
    (inputs,) = [node["inputs"] for node in prompt.values() if node["class_type"] == class_type]
    return inputs


def source_type(prompt: dict, link: list) -> str:
    return prompt[link[0]]["class_type"]


def test_the_consistent_set_uses_real_model_defaults_and_judges_its_panels(layouts):
    prompt = prompt_of("paco-consistent-set", layouts)
    generate = only(prompt, "PaCoGenerateSet")
    assert only(prompt, "PaCoPipelineLoader")["model"] == "FLUX.1-dev"
    assert source_type(prompt, generate["pipeline"]) == "PaCoLora"
    assert (generate["panel_width"], generate["panel_height"], generate["steps"], generate["guidance"]) == (
        512,
        512,
        28,
        3.5,
    )
    assert generate["layout"] == "2x2" and len(generate["panels"].splitlines()) == 4
    score = only(prompt, "PaCoSetConsistency")
    assert score["images"] == [_id(prompt, "PaCoGenerateSet"), 0], "the judge scores the panels"
    assert score["layout"] == "batch"
    assert score["theme"] == [_id(prompt, "PaCoGenerateSet"), 3], "the judge sees Generate Set's judge_theme"
    assert generate["judge_theme_source"] == "preamble", "the default judge theme, as PaCo-RL trained"


def _id(prompt: dict, class_type: str) -> str:
    (node_id,) = [i for i, node in prompt.items() if node["class_type"] == class_type]
    return node_id


def test_best_of_n_ranks_four_candidate_grids(layouts):
    prompt = prompt_of("paco-best-of-n", layouts)
    assert only(prompt, "PaCoGenerateSet")["num_sets"] == 4
    rank = only(prompt, "PaCoRankSets")
    assert rank["images"] == [_id(prompt, "PaCoGenerateSet"), 1] and rank["layout"] == "2x2"
    saved = [node["inputs"]["images"] for node in prompt.values() if node["class_type"] == "SaveImage"]
    assert saved == [[_id(prompt, "PaCoRankSets"), 0]], "the best set is what gets saved"
    generate = _id(prompt, "PaCoGenerateSet")
    assert (rank["theme"], rank["first_seed"]) == ([generate, 3], [generate, 4])
    (report,) = [node["inputs"] for node in prompt.values() if node["class_type"] == "PreviewAny"]
    assert report["source"] == [_id(prompt, "PaCoRankSets"), 3], "the readable ranking is what is shown"
    side_by_side = only(prompt, "PaCoComposeGrid")
    assert side_by_side["panels"] == [generate, 1] and side_by_side["layout"] == "2x2"
    assert only(prompt, "PreviewImage")["images"] == [_id(prompt, "PaCoComposeGrid"), 0]


def test_the_edit_chain_edits_three_times_with_kontext_and_scores_edit_one(layouts):
    prompt = prompt_of("paco-edit-chain", layouts)
    chain = only(prompt, "PaCoEditChain")
    assert only(prompt, "PaCoPipelineLoader")["model"] == "FLUX.1-Kontext-dev"
    assert len(chain["instructions"].splitlines()) == 3 and chain["include_reference"] is True
    score, pick = only(prompt, "PaCoEditScore"), only(prompt, "ImageFromBatch")
    assert (pick["batch_index"], pick["length"]) == (1, 1), "item 0 is the reference, item 1 the first edit"
    assert score["instruction"] == [_id(prompt, "PaCoEditChain"), 2], (
        "wired from the chain's first_instruction"
    )
    assert source_type(prompt, score["original"]) == "LoadImage"


def test_train_lora_starts_a_job_watches_it_and_makes_a_set_with_its_lora(layouts, node_classes):
    from paco_core.jobs.training_prompts import set_rows_from_text

    prompt = prompt_of("paco-train-lora", layouts)
    train = only(prompt, "PaCoTrainLora")
    assert (train["pipeline"], train["preset"], train["prompts_file"]) == (
        "FLUX.1-dev",
        "t2is-flux",
        "(training_prompts)",
    )
    assert source_type(prompt, train["judge"]) == "PaCoJudgeLoader" and train["rewards"] == "consistency=1"
    files = ("diffusion_model", "text_encoder_1", "text_encoder_2", "vae", "checkpoint")
    assert [train[name] for name in (*files, "files_kind", "files_config")] == [
        "(checkpoint's)",
        "(none)",
        "(none)",
        "(checkpoint's)",
        "(none)",
        "auto",
        "(shipped)",
    ], "a diffusers folder: no ComfyUI file chosen"
    widgets = [widget.name for widget in layouts["PaCoTrainLora"].widgets]
    assert widgets.index("model_path") < widgets.index("files_kind"), (
        "new widgets go last: saved graphs keep theirs"
    )
    assert train["new_run"] is False, "queueing again refreshes the same job"
    rows = set_rows_from_text(train["training_prompts"])
    assert [row["layout"] for row in rows] == ["2x2", "1x3"]
    watch = only(prompt, "PaCoTrainingJob")
    assert watch["job"] == [_id(prompt, "PaCoTrainLora"), 0] and watch["lora"] == "best"
    lora = only(prompt, "PaCoLora")
    assert lora["lora_name"] == [_id(prompt, "PaCoTrainingJob"), 3], (
        "the job's LoRA, not a file picked by hand"
    )
    assert source_type(prompt, lora["pipeline"]) == "PaCoPipelineLoader"
    assert source_type(prompt, only(prompt, "PaCoGenerateSet")["pipeline"]) == "PaCoLora"
    outputs = [slot.name for slot in layouts["PaCoTrainingJob"].outputs]
    assert outputs == ["status", "sample", "reward_curve", "lora_name"]


def link_source(prompt: dict, link: list) -> tuple[str, int]:
    return prompt[link[0]]["class_type"], link[1]


def test_train_character_references_and_prompt_set_train_and_the_jobs_lora_makes_a_set_of_new_scenes(layouts):
    prompt = prompt_of("paco-train-character", layouts)
    train = only(prompt, "PaCoTrainLora")
    assert link_source(prompt, train["references"]) == ("LoadImage", 0)
    assert link_source(prompt, train["prompt_set"]) == ("PaCoPromptSet", 0)
    assert link_source(prompt, train["judge"]) == ("PaCoJudgeLoader", 0)
    assert train["rewards"] == "reference=1, consistency=0.5" and train["new_run"] is False
    watch = only(prompt, "PaCoTrainingJob")
    assert link_source(prompt, watch["job"]) == ("PaCoTrainLora", 0) and watch["lora"] == "best"
    lora = only(prompt, "PaCoLora")
    assert link_source(prompt, lora["lora_name"]) == ("PaCoTrainingJob", 3), (
        "the job's LoRA, not a file picked by hand"
    )
    loader = only(prompt, "PaCoPipelineLoader")
    assert link_source(prompt, lora["pipeline"]) == ("PaCoPipelineLoader", 0)
    assert loader["model"] == train["pipeline"], "the LoRA goes on the model it was trained on"
    generate = only(prompt, "PaCoGenerateSet")
    assert link_source(prompt, generate["pipeline"]) == ("PaCoLora", 0)
    from tools.workflows.specs.character_training import NEW_SCENES, SCENES

    panels = generate["panels"].splitlines()
    assert panels == list(NEW_SCENES) and generate["layout"] == "2x2"
    assert not any(scene.split()[-1] in panel for scene in SCENES for panel in panels), (
        "scenes it never trained on"
    )
    saved = sorted(
        link_source(prompt, node["inputs"]["images"])
        for node in prompt.values()
        if node["class_type"] == "SaveImage"
    )
    assert saved == [("PaCoGenerateSet", 1), ("PaCoTrainingJob", 1)], "the set's grid and the held-out sample"


# --------------------------------------------------------------------------- bad workflows are caught


@pytest.fixture
def consistent_set() -> dict:
    return json.loads((WORKFLOWS_DIR / "paco-consistent-set.json").read_text(encoding="utf-8"))


def node_of_type(workflow: dict, node_type: str) -> dict:
    return next(node for node in workflow["nodes"] if node["type"] == node_type)


def test_a_missing_seed_control_value_is_refused(consistent_set, layouts):
    node_of_type(consistent_set, "PaCoGenerateSet")["widgets_values"].remove("fixed")
    with pytest.raises(
        WorkflowError, match=r"PaCoGenerateSet has 12 widget values .*seed control.* gives 11"
    ):
        to_api_prompt(consistent_set, layouts)


def test_an_unknown_node_type_is_refused(consistent_set, layouts):
    node_of_type(consistent_set, "PreviewAny")["type"] = "ShowText|pysssss"
    with pytest.raises(
        WorkflowError, match=r"'ShowText\|pysssss' is neither a PaCo node nor an allowed core"
    ):
        to_api_prompt(consistent_set, layouts)


def test_a_link_missing_from_the_link_list_is_refused(consistent_set, layouts):
    consistent_set["links"].pop()
    with pytest.raises(WorkflowError, match=r"input 'source' names link 9, which is not in links"):
        to_api_prompt(consistent_set, layouts)


@pytest.mark.parametrize(
    ("widget_index", "value", "message"),
    [
        (6, 0, r"PaCoGenerateSet.steps: 0 is below the minimum 1"),
        (3, "9x9", r"PaCoGenerateSet.layout: '9x9' is not one of"),
        (7, "3.5", r"PaCoGenerateSet.guidance: expected a number"),
    ],
)
def test_the_input_checks_catch_a_bad_value(
    consistent_set, layouts, node_classes, widget_index, value, message
):
    node_of_type(consistent_set, "PaCoGenerateSet")["widgets_values"][widget_index] = value
    inputs = only(to_api_prompt(consistent_set, layouts), "PaCoGenerateSet")
    with pytest.raises(NodeInputError, match=message):
        check_inputs(node_classes["PaCoGenerateSet"], inputs)


def test_the_input_checks_catch_an_unlinked_socket(consistent_set, layouts, node_classes):
    generate = node_of_type(consistent_set, "PaCoGenerateSet")
    generate["inputs"][0]["link"] = None
    inputs = only(to_api_prompt(consistent_set, layouts), "PaCoGenerateSet")
    with pytest.raises(NodeInputError, match=r"PaCoGenerateSet: required input 'pipeline' is missing"):
        check_inputs(node_classes["PaCoGenerateSet"], inputs)


def test_the_builder_refuses_unknown_widgets_and_missing_values(layouts):
    builder = WorkflowBuilder(layouts)
    with pytest.raises(WorkflowError, match=r"PaCoLora has no widget\(s\) \['weight'\]"):
        builder.add("PaCoLora", 0, weight=1.0)
    with pytest.raises(WorkflowError, match=r"PaCoLora.lora_name has no default: give a value"):
        builder.add("PaCoLora", 0)
    loader = builder.add("PaCoPipelineLoader", 0, model="FLUX.1-dev")
    preview = builder.add("PreviewImage", 1)
    with pytest.raises(WorkflowError, match=r"PaCoPipelineLoader has no output 'grid'"):
        builder.connect(loader, "grid", preview, "images")


def test_overlapping_nodes_would_be_seen(consistent_set):
    moved = copy.deepcopy(consistent_set)
    first, second = moved["nodes"][1], moved["nodes"][2]
    second["pos"] = [first["pos"][0] + 10, first["pos"][1] + 10]
    assert overlaps(box(first), box(second))


LOW_DETAIL_SCALE = 8 / 14
"""Below this zoom ComfyUI 0.33's frontend draws nodes as blank boxes (its level-of-detail
switch: 14 px node text drawn under LiteGraph.Canvas.MinFontSizeForLOD = 8 px)."""


FIT_MARGIN = 40
"""The frontend's node bounds are a little larger than the boxes here (measured: 20-25 px)."""


@pytest.mark.parametrize("screen", [(1920, 1080), (1536, 864)])
def test_a_workflow_opens_readable(workflow, screen):
    """Opened from a file, the saved view is used; opened from the Templates browser, the
    frontend fits the nodes with its fitToBounds (zoom 0.75 of the canvas, the whole page): both
    must stay above the level-of-detail switch on a 1920 x 1080 and a 1536 x 864 screen
    (tools/workflow_thumbnails.py prints the zoom a real frontend opens each one at)."""
    assert workflow["extra"]["ds"]["scale"] >= LOW_DETAIL_SCALE
    boxes = [box(node) for node in workflow["nodes"]]
    width = max(b[2] for b in boxes) - min(b[0] for b in boxes)
    height = max(b[3] for b in boxes) - min(b[1] for b in boxes)
    fitted = min(0.75 * screen[0] / (width + FIT_MARGIN), 0.75 * screen[1] / (height + FIT_MARGIN))
    assert fitted >= LOW_DETAIL_SCALE, f"fits at {fitted:.2f} on {screen}: too large to read"


# --------------------------------------------------------------------------- native-node workflows


def links_into(prompt: dict, class_type: str) -> dict[str, str]:
    """input name -> class type of the node it is linked from, for the one node of ``class_type``."""
    return {
        name: source_type(prompt, value)
        for name, value in only(prompt, class_type).items()
        if isinstance(value, list)
    }


def test_the_native_flux_set_is_comfyuis_graph_with_the_paco_lora_and_pack_nodes(layouts):
    prompt = prompt_of("paco-native-flux-set", layouts)
    types = {node["class_type"] for node in prompt.values()}
    assert {t for t in types if t.startswith("PaCo")} == {
        "PaCoGridPrompt",
        "PaCoSplitGrid",
        "PaCoSetConsistency",
        "PaCoJudgeLoader",
    }
    assert only(prompt, "UNETLoader")["unet_name"] == "flux1-dev.safetensors"
    clip = only(prompt, "DualCLIPLoader")
    assert (clip["clip_name1"], clip["clip_name2"], clip["type"]) == (
        "clip_l.safetensors",
        "t5xxl_fp16.safetensors",
        "flux",
    )
    assert only(prompt, "LoraLoaderModelOnly")["lora_name"] == "paco_t2is.safetensors"
    assert links_into(prompt, "CLIPTextEncode") == {"clip": "DualCLIPLoader", "text": "PaCoGridPrompt"}
    assert links_into(prompt, "KSampler") == {
        "model": "LoraLoaderModelOnly",
        "positive": "FluxGuidance",
        "negative": "ConditioningZeroOut",
        "latent_image": "EmptySD3LatentImage",
    }
    latent, grid = only(prompt, "EmptySD3LatentImage"), only(prompt, "PaCoGridPrompt")
    rows, columns = map(int, grid["layout"].split("x"))
    assert (latent["width"] / columns, latent["height"] / rows) == (512, 512), "the grid of 512 px panels"
    assert links_into(prompt, "PaCoSplitGrid") == {"image": "VAEDecode", "layout": "PaCoGridPrompt"}
    assert links_into(prompt, "PaCoSetConsistency")["images"] == "PaCoSplitGrid"


@pytest.mark.parametrize(
    ("name", "loader", "lora"),
    [
        ("paco-native-kontext-edit", "flux1-kontext-dev.safetensors", "paco_kontext_edit.safetensors"),
        (
            "paco-native-qwen-edit",
            "qwen_image_edit_fp8_e4m3fn.safetensors",
            "paco_qwen_image_edit.safetensors",
        ),
    ],
)
def test_the_native_edits_use_the_paco_lora_and_score_the_edit(name, loader, lora, layouts):
    prompt = prompt_of(name, layouts)
    assert only(prompt, "UNETLoader")["unet_name"] == loader
    assert only(prompt, "LoraLoaderModelOnly")["lora_name"] == lora
    score = links_into(prompt, "PaCoEditScore")
    assert score == {
        "judge": "PaCoJudgeLoader",
        "original": score["original"],
        "edited": "VAEDecode",
        "instruction": "PrimitiveStringMultiline",
    }
    assert score["original"] in ("FluxKontextImageScale", "ImageScaleToTotalPixels")
    files = {
        v for node in prompt.values() for v in node["inputs"].values() if str(v).endswith(".safetensors")
    }
    assert files and files <= {file for names in NATIVE_MODEL_NAMES.values() for file in names}


def test_native_workflows_are_the_ones_listed(layouts):
    assert set(NATIVE_WORKFLOWS) <= set(SHIPPED_WORKFLOWS)
    for name in NATIVE_WORKFLOWS:
        assert "UNETLoader" in {node["class_type"] for node in prompt_of(name, layouts).values()}
