"""The shipped workflow "train a LoRA for my character" (workflows/paco-train-character.json) ends
with a set made with the trained LoRA, as the frontend would queue it; no ComfyUI needed (its run in a
real ComfyUI: tests/test_comfyui_character.py)."""

from __future__ import annotations

from test_workflows import layouts, only, prompt_of  # noqa: F401 (layouts is a fixture)
from workflow_specs_character import NEW_SCENES, SCENES


def source(prompt: dict, link: list) -> tuple[str, int]:
    return prompt[link[0]]["class_type"], link[1]


def test_references_and_prompt_set_train_and_the_jobs_lora_makes_a_set_of_new_scenes(layouts):  # noqa: F811
    prompt = prompt_of("paco-train-character", layouts)
    train = only(prompt, "PaCoTrainLora")
    assert source(prompt, train["references"]) == ("LoadImage", 0)
    assert source(prompt, train["prompt_set"]) == ("PaCoPromptSet", 0)
    assert source(prompt, train["judge"]) == ("PaCoJudgeLoader", 0)
    assert train["rewards"] == "reference=1, consistency=0.5" and train["new_run"] is False
    watch = only(prompt, "PaCoTrainingJob")
    assert source(prompt, watch["job"]) == ("PaCoTrainLora", 0) and watch["lora"] == "best"
    lora = only(prompt, "PaCoLora")
    assert source(prompt, lora["lora_name"]) == ("PaCoTrainingJob", 3), "the job's LoRA, not a file picked by hand"
    loader = only(prompt, "PaCoPipelineLoader")
    assert source(prompt, lora["pipeline"]) == ("PaCoPipelineLoader", 0)
    assert loader["model"] == train["pipeline"], "the LoRA goes on the model it was trained on"
    generate = only(prompt, "PaCoGenerateSet")
    assert source(prompt, generate["pipeline"]) == ("PaCoLora", 0)
    panels = generate["panels"].splitlines()
    assert panels == list(NEW_SCENES) and generate["layout"] == "2x2"
    assert not any(scene.split()[-1] in panel for scene in SCENES for panel in panels), "scenes it never trained on"
    saved = sorted(
        source(prompt, node["inputs"]["images"]) for node in prompt.values() if node["class_type"] == "SaveImage"
    )
    assert saved == [("PaCoGenerateSet", 1), ("PaCoTrainingJob", 1)], "the set's grid and the held-out sample"
