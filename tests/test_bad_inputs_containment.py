"""One containment rule for every door: PaCo Train LoRA's ``advanced_json`` obeys the rule of
every other node input (issue 17, item 2).

Each probe feeds a path, URL or reward name a shared workflow could carry, through the real node
(the ComfyUI test double), and asserts the one-line InputError naming the key, that no job was
created, and that nothing outside was read, contacted or imported. The opt-in settings widen
the rule exactly as they do for the other nodes. The trainer side loads user rewards only from
the reward folders unless imports are allowed.
"""

from __future__ import annotations

import http.server
import json
import os
import sys
import threading

import pytest
from pack_loader import all_node_classes, load_pack, reset_comfy_stub, run_node, widget_defaults

from paco_core.errors import ConfigError, InputError
from paco_core.testing.training import TINY_TRAINING

SENTINEL_MODULE = "paco_sentinel_reward"
SETS_TEXT = "[1x2] a red fox\nThe fox sits.\nThe fox runs.\n\na paper boat\nIt floats.\nIt sinks.\n"
REWARD_CODE = "def score(images, prompts, metadata):\n    return [0.5 for _ in images]\n"


@pytest.fixture
def comfy(tmp_path, tiny_models, monkeypatch):
    """ComfyUI folders with the tiny FLUX in models/diffusers, a reward in the user's reward
    folder, and outside it: a copy of the model, a secret file, a sentinel module on sys.path
    that records being imported."""
    base = tmp_path / "comfy"
    reset_comfy_stub(base)
    (base / "models" / "diffusers").mkdir(parents=True)
    os.symlink(tiny_models["flux"], base / "models" / "diffusers" / "tiny-flux")
    (base / "input").mkdir(parents=True, exist_ok=True)
    rewards = base / "user" / "paco" / "rewards"
    rewards.mkdir(parents=True)
    (rewards / "my_reward.py").write_text(REWARD_CODE)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(tiny_models["flux"], outside / "flux-outside")
    secret = outside / "secret.jsonl"
    secret.write_text('{"prompt": "SECRET-CONTENT", "layout": "1x1"}\n')
    marker = outside / "imported.txt"
    (outside / f"{SENTINEL_MODULE}.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n{REWARD_CODE}"
    )
    monkeypatch.syspath_prepend(str(outside))
    for name in (
        "PACO_ALLOW_OUTSIDE_PATHS",
        "PACO_ALLOW_REMOTE_JUDGE",
        "PACO_ALLOW_HUB_DOWNLOADS",
        "PACO_ALLOW_REWARD_IMPORTS",
        "PACO_REWARD_FOLDERS",
    ):
        monkeypatch.delenv(name, raising=False)
    load_pack()
    nodes = {cls.GET_SCHEMA().node_id: cls for cls in all_node_classes()}
    training = sys.modules["comfyui_paco.nodes.training"]
    bridge = sys.modules["comfyui_paco.nodes.jobs_bridge"]
    yield {
        "base": base,
        "outside": outside,
        "secret": secret,
        "marker": marker,
        "node": nodes["PaCoTrainLora"],
        "training": training,
        "bridge": bridge,
    }
    sys.modules.pop(SENTINEL_MODULE, None)


def build(comfy, override: dict | None = None, **changes) -> dict:
    """The config PaCo Train LoRA would submit, with ``override`` merged into advanced_json."""
    node = comfy["node"]
    inputs = {
        **widget_defaults(node), "pipeline": "tiny-flux", "training_prompts": SETS_TEXT,
        "rewards": "my_reward:score=1", "iterations": 2, "group_size": 2, "train_resolution": 32,
        "advanced_json": json.dumps(merge(TINY_TRAINING, override or {})), **changes,
    }  # fmt: skip
    return comfy["training"].build_train_config(
        **{
            key: inputs.get(key)
            for key in (
                "pipeline",
                "model_path",
                "preset",
                "training_prompts",
                "prompts_file",
                "judge",
                "rewards",
                "iterations",
                "learning_rate",
                "group_size",
                "train_resolution",
                "advanced_json",
            )
        }
    )


def merge(base: dict, override: dict) -> dict:
    merged = json.loads(json.dumps(base))
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def refused(comfy, override: dict, match: str, **changes) -> str:
    with pytest.raises(InputError, match=match) as raised:
        build(comfy, override, **changes)
    message = str(raised.value)
    assert "\n" not in message and "SECRET-CONTENT" not in message
    return message


# --------------------------------------------------------------------------- paths


def test_the_node_values_alone_pass_and_name_full_paths_inside_comfyui(comfy):
    config = build(comfy)
    assert config["model"]["path"] == str(comfy["base"] / "models" / "diffusers" / "tiny-flux")
    assert config["data"]["train_file"].startswith(str(comfy["base"] / "user" / "paco" / "prompts"))


def test_a_model_folder_outside_the_models_folders_is_refused(comfy):
    outside = str(comfy["outside"] / "flux-outside")
    message = refused(
        comfy, {"model": {"path": outside}}, r"`model.path` .* is outside ComfyUI's models folders"
    )
    assert "PACO_ALLOW_OUTSIDE_PATHS=1" in message
    refused(comfy, {"model": {"path": "../../outside/flux-outside"}}, r"`model.path` .* climbs out")


def test_comfyui_file_keys_outside_the_models_folders_are_refused(comfy):
    outside = str(comfy["outside"] / "secret.jsonl")
    for key in ("transformer_file", "vae_file", "checkpoint_file", "config_folder"):
        refused(comfy, {"model": {"path": "", key: outside}}, rf"`model.{key}` .* outside")
    refused(comfy, {"model": {"path": "", "text_encoder_files": [outside]}}, r"`model.text_encoder_files`")
    refused(comfy, {"model": {"comfyui_dir": str(comfy["outside"])}}, r"`model.comfyui_dir` .* outside")


@pytest.mark.parametrize("key", ["train_file", "eval_file"])
def test_a_prompt_file_outside_the_input_folder_is_never_read(comfy, key):
    refused(comfy, {"data": {key: "/etc/passwd"}}, rf"`data.{key}` '/etc/passwd' is outside ComfyUI's input")
    refused(comfy, {"data": {key: str(comfy["secret"])}}, rf"`data.{key}` .* outside ComfyUI's input folder")
    refused(comfy, {"data": {key: "../../../../etc/passwd"}}, rf"`data.{key}` .* climbs out")


def test_an_image_root_or_an_edit_image_outside_the_input_folder_is_refused(comfy):
    refused(comfy, {"data": {"image_root": str(comfy["outside"])}}, r"`data.image_root` .* outside")
    from PIL import Image

    Image.new("RGB", (8, 8)).save(comfy["outside"] / "private.png")
    rows = comfy["base"] / "input" / "edits.jsonl"
    rows.write_text(json.dumps({"image": str(comfy["outside"] / "private.png"), "instruction": "x"}) + "\n")
    refused(comfy, {"data": {"train_file": str(rows)}}, r"`data.train_file image` .*private.png.* outside")


def test_model_folders_of_the_rewards_outside_are_refused_and_hub_ids_follow_the_setting(comfy, monkeypatch):
    outside = str(comfy["outside"] / "flux-outside")
    for key in ("judge_path", "clip_path", "pickscore_path"):
        refused(comfy, {"rewards": {key: outside}}, rf"`rewards.{key}` .* outside ComfyUI's models folders")
    assert build(comfy, {"rewards": {"clip_path": "owner/clip"}})["rewards"]["clip_path"] == "owner/clip"
    monkeypatch.setenv("PACO_ALLOW_HUB_DOWNLOADS", "0")
    refused(comfy, {"rewards": {"clip_path": "owner/clip"}}, r"hub downloads from ComfyUI are switched off")


def test_a_value_that_is_not_text_is_refused(comfy):
    refused(comfy, {"data": {"train_file": 5}}, r"`data.train_file` should be text, got int")


def test_outside_paths_pass_with_the_same_opt_in_setting_as_the_nodes(comfy, monkeypatch):
    monkeypatch.setenv("PACO_ALLOW_OUTSIDE_PATHS", "1")
    outside = str(comfy["outside"] / "flux-outside")
    assert build(comfy, {"model": {"path": outside}})["model"]["path"] == outside


# --------------------------------------------------------------------------- judge URL


@pytest.fixture
def listening_server():
    """An HTTP server on every interface that records each request it receives."""
    received: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            received.append(self.path)
            self.send_response(200)
            self.end_headers()

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], received
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.com", "127.0.0.1.nip.io"])
def test_a_judge_url_off_this_machine_is_refused_and_never_contacted(comfy, listening_server, host):
    port, received = listening_server
    url = f"http://{host}:{port}"
    message = refused(
        comfy, {"rewards": {"judge_url": url}}, r"`rewards.judge_url` judge server .* not on this"
    )
    assert "PACO_ALLOW_REMOTE_JUDGE=1" in message
    assert received == []


def test_a_loopback_judge_url_passes_and_others_with_the_setting(comfy, monkeypatch):
    assert build(comfy, {"rewards": {"judge_url": "http://127.0.0.1:9"}})["rewards"]["judge_url"]
    monkeypatch.setenv("PACO_ALLOW_REMOTE_JUDGE", "1")
    assert build(comfy, {"rewards": {"judge_url": "http://10.1.2.3:9"}})["rewards"]["judge_url"]


# --------------------------------------------------------------------------- reward modules


@pytest.mark.parametrize("rewards_key", ["rewards", "eval_rewards"])
def test_a_reward_module_outside_the_reward_folders_is_never_imported(comfy, rewards_key):
    for name in (f"{SENTINEL_MODULE}:score", "os:system", "subprocess:run"):
        message = refused(
            comfy,
            {"rewards": {rewards_key: [{"name": name, "weight": 1.0}]}},
            r"is not in the reward folders",
        )
        assert "PACO_ALLOW_REWARD_IMPORTS=1" in message and "paco/rewards" in message
    assert not comfy["marker"].exists() and SENTINEL_MODULE not in sys.modules


def test_the_rewards_input_obeys_the_same_rule(comfy):
    refused(comfy, {}, r"is not in the reward folders", rewards=f"{SENTINEL_MODULE}:score=1")
    assert not comfy["marker"].exists()


def test_the_import_setting_allows_installed_modules_but_submit_still_imports_nothing(comfy, monkeypatch):
    monkeypatch.setenv("PACO_ALLOW_REWARD_IMPORTS", "1")
    config = build(comfy, rewards=f"{SENTINEL_MODULE}:score=1")
    assert config["rewards"]["rewards"][0]["name"] == f"{SENTINEL_MODULE}:score"
    assert not comfy["marker"].exists()
    assert comfy["bridge"].env_for_jobs()["PACO_ALLOW_REWARD_IMPORTS"] == "1"


def test_jobs_from_comfyui_carry_the_reward_folders_and_no_imports(comfy, monkeypatch):
    monkeypatch.setenv("PACO_REWARD_FOLDERS", str(comfy["outside"]))
    env = comfy["bridge"].env_for_jobs()
    assert env["PACO_ALLOW_REWARD_IMPORTS"] == "0"
    assert env["PACO_REWARD_FOLDERS"].split(os.pathsep) == [
        str(comfy["base"] / "user" / "paco" / "rewards"),
        str(comfy["outside"]),
    ]
    # a folder the user chose (the setting) is a reward folder for the node too
    assert build(comfy, rewards=f"{SENTINEL_MODULE}:score=1")["rewards"]["rewards"]


def test_a_refused_config_creates_no_job(comfy):
    node = comfy["node"]
    store = comfy["bridge"].job_store()
    before = store.ids()
    with pytest.raises(InputError, match="`data.train_file`"):
        run_node(
            node,
            **{
                **widget_defaults(node),
                "pipeline": "tiny-flux",
                "training_prompts": SETS_TEXT,
                "rewards": "my_reward:score=1",
                "lora_name": "probe",
                "new_run": True,
                "advanced_json": json.dumps(merge(TINY_TRAINING, {"data": {"train_file": "/etc/passwd"}})),
            },
        )
    assert store.ids() == before


# --------------------------------------------------------------------------- the trainer's side


def test_the_trainer_loads_a_reward_folder_module_from_its_file_and_refuses_imports_when_off(
    comfy, monkeypatch
):
    from paco_core.rl.rewards import load_user_reward

    monkeypatch.setenv("PACO_REWARD_FOLDERS", str(comfy["base"] / "user" / "paco" / "rewards"))
    monkeypatch.setenv("PACO_ALLOW_REWARD_IMPORTS", "0")
    assert load_user_reward("my_reward:score")([1, 2], ["a", "b"], [{}, {}]) == [0.5, 0.5]
    with pytest.raises(ConfigError, match=r"paco_sentinel_reward.py is not in the reward folders"):
        load_user_reward(f"{SENTINEL_MODULE}:score")
    assert not comfy["marker"].exists() and SENTINEL_MODULE not in sys.modules
    monkeypatch.setenv("PACO_ALLOW_REWARD_IMPORTS", "1")  # the command line's default
    assert load_user_reward(f"{SENTINEL_MODULE}:score")([1], ["a"], [{}]) == [0.5]
    assert comfy["marker"].exists()
