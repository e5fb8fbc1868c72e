"""Run the shipped workflows on a running ComfyUI and compose one result card per workflow.

A card shows what a workflow makes, for its thumbnail in ComfyUI's Templates browser: the
workflow's title, its result images (the set grid and the judge's pair heatmap, the
candidate grids with the winner marked, the reference and its edits, the set around your
reference with who keeps its identity, the set before and after a repair, the reward curve
and sample grid of a training job), its scores, and a caption saying what made the picture.
Give the cards to ``python -m tools.workflow_thumbnails --result NAME=CARD`` to write the shipped
``workflows/<name>.jpg``.

    # with real weights in the server's models folder (the files each workflow's note names):
    python -m tools.workflow_results --url http://127.0.0.1:8188 --out /tmp/results
    # offline, with the tiny test models (images are noise; the native workflows, which
    # need ComfyUI's own CLIP/T5/VAE files, get the matching PaCo-node result):
    python -m tools.workflow_results --setup-tiny /tmp/tiny-models
    python main.py --cpu --models-directory /tmp/tiny-models ...   # in ComfyUI, pack linked
    python -m tools.workflow_results --url http://127.0.0.1:8188 --out /tmp/results --tiny

Each workflow is converted with ``tools.workflows.api_prompt`` into the API prompt the
frontend queues, posted to ``/prompt``, and its saved and previewed images and texts are
read back over HTTP (``/history``, ``/view``), so the server may run anywhere. The training
workflows are queued once (each starts a job), then again once the job has ended (the job's
status, sample and reward curve, and a set with its best LoRA). Writes ``OUT/<name>.png``
(the card) and ``OUT/<name>/`` (the images the run made), and prints the
``--result`` arguments for the thumbnail tool.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from paco_core.families import FLUX, FLUX_KONTEXT, QWEN_IMAGE_EDIT
from paco_core.testing.comfyui_models import TINY_JUDGE_NAME, TINY_LORA_NAME, TINY_PIPELINE_NAMES
from paco_core.testing.training import TINY_TRAINING
from tools.workflow_cards import (
    Card,
    best_of_n_card,
    edit_card,
    open_image,
    pool_card,
    reference_set_card,
    repair_card,
    set_card,
    training_card,
)
from tools.workflows.api_prompt import to_api_prompt
from tools.workflows.node_layouts import node_layouts
from tools.workflows.specs import NATIVE_WORKFLOWS, WORKFLOWS_DIR
from tools.workflows.specs.pool import POOL_WORKFLOW

TITLES = {
    "paco-consistent-set": "Consistent set + judge",
    "paco-best-of-n": "Best of 4 sets",
    "paco-edit-chain": "Edit chain + edit score",
    "paco-native-flux-set": "Native FLUX set + judge",
    "paco-native-kontext-edit": "Native Kontext edit + score",
    "paco-native-qwen-edit": "Native Qwen-Image edit + score",
    "paco-train-lora": "Train a PaCo LoRA",
    "paco-train-character": "Train a LoRA for your character",
    POOL_WORKFLOW: "Most consistent set from a pool",
    "paco-character-set": "A set of your character",
    "paco-repair-odd-panel": "Repair the odd panel",
}
"""The title on each card (the thumbnail's headline); a workflow not listed gets its file name."""

# The tiny run: model names as --setup-tiny lays them out, small panels, few steps.
TINY_PIPELINES = {
    FLUX.title: TINY_PIPELINE_NAMES[FLUX.kind],
    FLUX_KONTEXT.title: TINY_PIPELINE_NAMES[FLUX_KONTEXT.kind],
}
TINY_QWEN_EDIT = TINY_PIPELINE_NAMES[QWEN_IMAGE_EDIT.kind]
TINY_LORA = TINY_LORA_NAME
TINY_JUDGE = TINY_JUDGE_NAME
TINY_PANEL = 128
TINY_STEPS = 4
TINY_REFERENCE = "paco_thumbnail_reference.png"
TINY_SET = "paco_thumbnail_set.png"
TINY_CHARACTER = "paco_thumbnail_character.png"
TINY_LOADED = {
    ("PaCoRepairSet", "images"): TINY_SET,
    ("PaCoReferenceSet", "references"): TINY_CHARACTER,
    ("PaCoTrainLora", "references"): TINY_CHARACTER,
}
"""In a tiny run, the picture a LoadImage gives to these (node, input)s: the set to repair (four
takes of the drawn scene, one odd) and a drawn character (to draw a set around, to train on);
every other LoadImage gives TINY_REFERENCE."""
TINY_TRAINING_ITERATIONS = 3
TINY_CAPTION = "tiny test models: images are noise"
NATIVE_STAND_INS = {
    "paco-native-flux-set": "paco-consistent-set",
    "paco-native-kontext-edit": "paco-edit-chain",
    "paco-native-qwen-edit": "paco-qwen-edit-chain",
}
"""In a tiny run, the PaCo-node run whose result stands in for each native workflow: the tiny
text encoders and VAEs cannot go through ComfyUI's own CLIP/T5/VAE loaders."""
QWEN_EDIT_CHAIN = "paco-qwen-edit-chain"
"""A tiny-run-only variant of paco-edit-chain on the tiny Qwen-Image-Edit (one edit)."""


@dataclass
class RunResult:
    """What one queued prompt made: images and texts by node id, in node order."""

    prompt: dict
    images: dict[str, list[bytes]] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)

    def node_ids(self, class_type: str) -> list[str]:
        return [i for i, node in self.prompt.items() if node["class_type"] == class_type]

    def images_of(self, class_type: str, index: int = 0) -> list[bytes]:
        ids = self.node_ids(class_type)
        return self.images.get(ids[index], []) if len(ids) > index else []

    def images_from(self, source_class: str, output: int) -> list[bytes]:
        """The images shown by the first node whose ``images`` input is output ``output`` of a
        ``source_class`` node."""
        for node_id, node in self.prompt.items():
            source = node["inputs"].get("images")
            if isinstance(source, list) and [self.prompt[source[0]]["class_type"], source[1]] == [
                source_class,
                output,
            ]:
                if self.images.get(node_id):
                    return self.images[node_id]
        return []

    def text_of(self, class_type: str) -> str:
        for node_id in self.node_ids(class_type):
            if self.texts.get(node_id):
                return self.texts[node_id][0]
        return ""


# ---------------------------------------------------------------- tiny models folder


def setup_tiny_models(models_dir: Path) -> Path:
    """A ComfyUI models folder with the tiny models under the names ``--tiny`` uses
    (``paco tiny-models --comfyui`` lays out the same)."""
    from paco_core.testing.comfyui_models import install_tiny_models

    install_tiny_models(models_dir)
    return models_dir


def tiny_reference() -> bytes:
    """A drawn picture to edit (sun, hill, sky): not noise, so the edits' change shows."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (TINY_PANEL, TINY_PANEL), (110, 170, 230))
    draw = ImageDraw.Draw(image)
    draw.ellipse((78, 14, 114, 50), fill=(255, 200, 60))
    draw.ellipse((-40, 80, 170, 220), fill=(70, 150, 80))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def tiny_set() -> bytes:
    """A 2x2 grid of the drawn picture (day, dusk, and a night panel that does not belong), for the
    repair: the odd panel is the one a real judge would send back."""
    from PIL import Image, ImageEnhance, ImageOps

    day = open_image(tiny_reference())
    takes = [
        day,
        ImageEnhance.Brightness(day).enhance(0.8),
        ImageOps.mirror(day),
        ImageOps.invert(day),
    ]
    grid = Image.new("RGB", (2 * TINY_PANEL, 2 * TINY_PANEL))
    for index, take in enumerate(takes):
        grid.paste(take, ((index % 2) * TINY_PANEL, (index // 2) * TINY_PANEL))
    buffer = io.BytesIO()
    grid.save(buffer, "PNG")
    return buffer.getvalue()


def tiny_character() -> bytes:
    """A drawn character (a figure in a red coat and a yellow scarf) for the set around a reference."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (TINY_PANEL, TINY_PANEL), (70, 120, 190))
    draw = ImageDraw.Draw(image)
    draw.ellipse((46, 12, 82, 48), fill=(240, 200, 170))
    draw.pieslice((42, 6, 86, 46), 180, 360, fill=(200, 60, 40))
    draw.rounded_rectangle((36, 54, 92, 128), radius=12, fill=(210, 50, 45))
    draw.rectangle((40, 48, 88, 60), fill=(250, 210, 60))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def tiny_prompt(prompt: dict) -> dict:
    """A shipped workflow's prompt on the tiny models (names from ``setup_tiny_models``); a LoadImage
    gives the picture ``TINY_LOADED`` names for the input it feeds, else ``TINY_REFERENCE``."""
    overrides = {
        "PaCoPipelineLoader": lambda i: {"model": TINY_PIPELINES.get(i["model"], i["model"])},
        "PaCoLora": lambda i: {} if isinstance(i["lora_name"], list) else {"lora_name": TINY_LORA},
        "PaCoJudgeLoader": lambda i: {"judge_name": TINY_JUDGE},
        "PaCoGenerateSet": lambda i: {
            "panel_width": TINY_PANEL,
            "panel_height": TINY_PANEL,
            "steps": TINY_STEPS,
        },
        "PaCoEditChain": lambda i: {"steps": TINY_STEPS, "max_area": 0},
        "PaCoReferenceSet": lambda i: {
            "panel_width": TINY_PANEL,
            "panel_height": TINY_PANEL,
            "steps": TINY_STEPS,
        },
        "PaCoRepairSet": lambda i: {"steps": TINY_STEPS},
        "PaCoTrainLora": lambda i: {
            "pipeline": TINY_PIPELINES["FLUX.1-dev"],
            "iterations": TINY_TRAINING_ITERATIONS,
            "group_size": 2,
            "train_resolution": 32,
            "advanced_json": json.dumps(TINY_TRAINING),
        },
        "LoadImage": lambda i: {"image": TINY_REFERENCE},
    }
    for node in prompt.values():
        if node["class_type"] in overrides:
            node["inputs"].update(overrides[node["class_type"]](node["inputs"]))
    for node in prompt.values():
        for name, source in node["inputs"].items():
            picture = TINY_LOADED.get((node["class_type"], name))
            if picture and isinstance(source, list) and prompt[source[0]]["class_type"] == "LoadImage":
                prompt[source[0]]["inputs"]["image"] = picture
    return prompt


def qwen_edit_chain_prompt(edit_chain: dict) -> dict:
    """The tiny edit chain on the tiny Qwen-Image-Edit, the first instruction only."""
    prompt = json.loads(json.dumps(edit_chain))
    for node in prompt.values():
        if node["class_type"] == "PaCoPipelineLoader":
            node["inputs"]["model"] = TINY_QWEN_EDIT
        if node["class_type"] == "PaCoEditChain":
            node["inputs"]["instructions"] = node["inputs"]["instructions"].splitlines()[0]
            node["inputs"]["guidance"] = 4.0
            node["inputs"]["model_guidance"] = False
    return prompt


# ---------------------------------------------------------------- running on the server


def http_json(url: str, payload: dict | None = None, timeout: float = 30.0):
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


def upload_image(url: str, name: str, png: bytes) -> None:
    """POST /upload/image (multipart), as the frontend's LoadImage upload does."""
    boundary = "pacothumbnailboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="overwrite"\r\n\r\ntrue\r\n--{boundary}--\r\n'.encode()
    )
    request = urllib.request.Request(
        f"{url}/upload/image",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(request, timeout=30):
        pass


def run_prompt(url: str, prompt: dict, timeout_s: float) -> RunResult:
    """Queue ``prompt``, wait for it, and read back every image and text it showed."""
    answer = http_json(f"{url}/prompt", {"prompt": prompt, "client_id": "paco-workflow-results"})
    prompt_id = answer["prompt_id"]
    deadline = time.monotonic() + timeout_s
    while True:
        history = http_json(f"{url}/history/{prompt_id}")
        entry = history.get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"the prompt did not finish within {timeout_s:.0f} s (see the server's log)")
        time.sleep(0.5)
    if entry["status"]["status_str"] != "success":
        messages = [data for kind, data in entry["status"]["messages"] if kind == "execution_error"]
        raise SystemExit(f"the prompt failed: {json.dumps(messages)[:1500]}")
    result = RunResult(prompt)
    for node_id, node in prompt.items():  # the pictures LoadImage read (the references)
        if node["class_type"] == "LoadImage":
            result.images[node_id] = [
                fetch_image(url, {"filename": node["inputs"]["image"], "type": "input"})
            ]
    for node_id, outputs in entry["outputs"].items():
        result.images[node_id] = [fetch_image(url, item) for item in outputs.get("images", [])]
        result.texts[node_id] = [str(text) for text in outputs.get("text", [])]
    return result


def fetch_image(url: str, item: dict) -> bytes:
    query = urllib.parse.urlencode(
        {
            "filename": item["filename"],
            "subfolder": item.get("subfolder", ""),
            "type": item.get("type", "output"),
        }
    )
    with urllib.request.urlopen(f"{url}/view?{query}", timeout=60) as response:
        return response.read()


def wait_for_job_end(url: str, job_id: str, timeout_s: float) -> dict:
    """PaCo job ``job_id``, once it is no longer queued or running."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = http_json(f"{url}/paco/jobs/{job_id}")
        if job["status"] not in ("queued", "running", "stopping"):
            return job
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job['id']} still {job['status']} after {timeout_s:.0f} s")
        time.sleep(2)


def run_workflows(url: str, names: list[str], tiny: bool, timeout_s: float) -> dict[str, RunResult]:
    """Queue each named workflow (in a tiny run: the native ones' stand-ins instead)."""
    layouts = node_layouts()
    prompts = {}
    for name in names:
        workflow = json.loads((WORKFLOWS_DIR / f"{name}.json").read_text(encoding="utf-8"))
        prompt = to_api_prompt(workflow, layouts)
        prompts[name] = tiny_prompt(prompt) if tiny else prompt
    if tiny:
        upload_image(url, TINY_REFERENCE, tiny_reference())
        upload_image(url, TINY_SET, tiny_set())
        upload_image(url, TINY_CHARACTER, tiny_character())
        if "paco-native-qwen-edit" in names:
            chain = tiny_prompt(
                to_api_prompt(json.loads((WORKFLOWS_DIR / "paco-edit-chain.json").read_text()), layouts)
            )
            prompts[QWEN_EDIT_CHAIN] = qwen_edit_chain_prompt(chain)
        for native in NATIVE_WORKFLOWS:
            if native in names:
                del prompts[native]
                stand_in = NATIVE_STAND_INS[native]
                if stand_in not in prompts:
                    workflow = json.loads((WORKFLOWS_DIR / f"{stand_in}.json").read_text(encoding="utf-8"))
                    prompts[stand_in] = tiny_prompt(to_api_prompt(workflow, layouts))
    results = {}
    for name, prompt in prompts.items():
        start = time.perf_counter()
        results[name] = run_prompt(url, prompt, timeout_s)
        if results[name].node_ids("PaCoTrainLora"):  # the first queue starts the job; the second shows it
            found = re.search(r"\bjob-[0-9a-f]+", results[name].text_of("PaCoTrainLora"))
            if not found:
                raise SystemExit(f"PaCo Train LoRA named no job: {results[name].texts}")
            job = wait_for_job_end(url, found.group(0), timeout_s)
            print(f"  training job {job['id']}: {job['status']}")
            results[name] = run_prompt(url, prompt, timeout_s)
        print(f"ran {name} in {time.perf_counter() - start:.1f} s")
    return results


def compose_card(name: str, result: RunResult, tiny: bool) -> Card:
    """The card for workflow ``name`` from what its run (or its stand-in's) made."""
    title = TITLES.get(name, name)
    stand_in = NATIVE_STAND_INS.get(name) if tiny else None
    if tiny and stand_in:
        shown = (
            "PaCo Edit Chain on a tiny Qwen-Image-Edit" if stand_in == QWEN_EDIT_CHAIN else f"{stand_in}'s"
        )
        caption = (
            f"{TINY_CAPTION}. Shown: {shown} result (PaCo nodes); this native graph needs real model files"
        )
    else:
        caption = f"{TINY_CAPTION} (a real run of this workflow)" if tiny else "a real run of this workflow"
    if name in ("paco-consistent-set", "paco-native-flux-set"):
        panels = result.images_from("PaCoGenerateSet", 0) or result.images_from("PaCoSplitGrid", 0)
        pictures = panels if len(panels) == 4 else result.images_of("SaveImage")[:1]
        heatmap = result.images_from("PaCoSetConsistency", 3)
        return set_card(
            title, caption, pictures, heatmap[0] if heatmap else None, result.text_of("PreviewAny")
        )
    if name == "paco-best-of-n":
        return best_of_n_card(
            title, caption, result.images_of("PreviewImage")[0], result.text_of("PreviewAny")
        )
    if name in ("paco-edit-chain", "paco-native-kontext-edit", "paco-native-qwen-edit"):
        saved = result.images_of("SaveImage")
        if name != "paco-edit-chain":
            if result.node_ids("PaCoEditChain"):
                saved = saved[:2]  # the stand-in chain: the reference and the first edit
            else:
                saved = [
                    result.images_of("LoadImage")[0] if result.images_of("LoadImage") else saved[0],
                    *saved,
                ][:2]
        edits = ["edit"] if len(saved) == 2 else [f"edit {i}" for i in range(1, len(saved))]
        labels = ["reference", *edits]
        return edit_card(title, caption, saved, result.text_of("PreviewAny"), labels)
    if name == POOL_WORKFLOW:
        return pool_card(title, caption, result)
    if name == "paco-character-set":
        return reference_set_card(title, caption, result)
    if name == "paco-repair-odd-panel":
        return repair_card(title, caption, result)
    if name == "paco-train-lora":
        sample, curve = result.images_of("PaCoTrainingJob")[:2]
        pictures = [("latest sample grid", sample)]
        trained = result.images_of("SaveImage")
        if trained:
            pictures.append(("a set with its best LoRA", trained[0]))
        return training_card(title, caption, curve, pictures, result.text_of("PaCoTrainingJob"))
    if name == "paco-train-character":
        sample, curve = result.images_of("PaCoTrainingJob")[:2]
        references = result.images_of("LoadImage")
        pictures = [("your references", references[0])] if references else []
        pictures.append(("held-out set, trained LoRA", sample))
        trained = result.images_from("PaCoGenerateSet", 1)
        if trained:
            pictures.append(("new set, trained LoRA", trained[0]))
        return training_card(
            title, caption, curve, pictures, result.text_of("PaCoTrainingJob"), reward="reference"
        )
    raise SystemExit(f"no card layout for workflow {name}: add one to tools/workflow_results.py")


# ---------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running ComfyUI with this pack, e.g. http://127.0.0.1:8188")
    parser.add_argument("--out", type=Path, help="folder for the cards (<name>.png) and the run's images")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="these workflows only")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="the server's models are --setup-tiny's: use their names, small panels, few steps",
    )
    parser.add_argument(
        "--setup-tiny",
        type=Path,
        metavar="MODELS_DIR",
        help="write a ComfyUI models folder with the tiny models (for --models-directory) and exit",
    )
    parser.add_argument(
        "--compose-only",
        action="store_true",
        help="compose the cards from the runs saved in --out; queue nothing",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one prompt or the job may take")
    return parser.parse_args(argv)


def save_run(result: RunResult, folder: Path) -> None:
    """``folder``/prompt.json, texts.json and ``<node id>-<n>.png`` per image."""
    from paco_core.io import atomic_write_bytes, atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    for node_id, images in result.images.items():
        for index, data in enumerate(images):
            atomic_write_bytes(folder / f"{node_id}-{index + 1}.png", data)
    atomic_write_text(folder / "prompt.json", json.dumps(result.prompt, indent=1))
    atomic_write_text(folder / "texts.json", json.dumps(result.texts, indent=1))


def load_run(folder: Path) -> RunResult:
    """A run saved by ``save_run``."""
    if not (folder / "prompt.json").is_file():
        raise SystemExit(f"{folder} holds no saved run: run without --compose-only first")
    result = RunResult(json.loads((folder / "prompt.json").read_text(encoding="utf-8")))
    result.texts = json.loads((folder / "texts.json").read_text(encoding="utf-8"))
    for node_id in result.prompt:
        paths = sorted(folder.glob(f"{node_id}-*.png"), key=lambda p: int(p.stem.split("-")[1]))
        if paths:
            result.images[node_id] = [path.read_bytes() for path in paths]
    return result


def run_name(name: str, tiny: bool) -> str:
    """The run whose result workflow ``name``'s card shows."""
    return NATIVE_STAND_INS.get(name, name) if tiny else name


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.setup_tiny:
        print(f"tiny models folder: {setup_tiny_models(args.setup_tiny)}")
        return 0
    if not args.out or not (args.url or args.compose_only):
        raise SystemExit("give --out and --url (or --compose-only, or --setup-tiny MODELS_DIR)")
    from paco_core.io import atomic_write_bytes

    names = sorted(path.stem for path in WORKFLOWS_DIR.glob("*.json"))
    unknown = [name for name in args.only if name not in names]
    if unknown:
        raise SystemExit(f"--only {unknown}: not shipped workflows; choose from {names}")
    names = args.only or names
    if not args.compose_only:
        for run, result in run_workflows(args.url.rstrip("/"), names, args.tiny, args.timeout).items():
            save_run(result, args.out / "runs" / run)
    arguments = []
    for name in names:
        result = load_run(args.out / "runs" / run_name(name, args.tiny))
        card = atomic_write_bytes(args.out / f"{name}.png", compose_card(name, result, args.tiny).png())
        arguments.append(f"--result {name}={card}")
    print(
        "cards written; thumbnails with:\n  python -m tools.workflow_thumbnails --url URL "
        + " ".join(arguments)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
