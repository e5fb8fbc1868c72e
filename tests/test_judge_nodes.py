"""The judge nodes run through the ComfyUI stand-in (tests/pack_loader.py) on the tiny judge."""

from __future__ import annotations

import importlib
import json
import shutil
import socket
import time
from pathlib import Path

import pytest
import torch
from pack_loader import load_pack, reset_comfy_stub, run_node

from paco_core.errors import InputError, JudgeError
from paco_core.images import split_grid, tensor_to_pil
from paco_core.models.judge import release_judges
from paco_core.reward.judge_client import JudgeClient
from paco_core.reward.judge_server import JudgeHTTPServer
from paco_core.reward.local import LocalJudge
from paco_core.reward.scoring import rank_sets, score_edits, score_set

judge_nodes = importlib.import_module(f"{load_pack().__name__}.nodes.judge")
bridge = importlib.import_module(f"{load_pack().__name__}.nodes.comfy_bridge")

LOADER_DEFAULTS = {
    "judge_name": judge_nodes.TYPED_SOURCE_CHOICE,
    "path_or_url": "",
    "lora_path": "",
    "dtype": "auto",
    "answers": "exact Yes/No",
    "batch_size": 8,
    "server_model": "",
    "keep_loaded": True,
}


def random_batch(count, height=64, width=64, seed=0):
    return torch.rand(count, height, width, 3, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(autouse=True)
def fresh_comfy(tmp_path):
    reset_comfy_stub(tmp_path)
    yield
    release_judges()


@pytest.fixture(scope="module")
def judge(tiny_models):
    import comfy.model_management  # the stub, on sys.path once the pack is loaded

    comfy.model_management.stub_reset()
    out = run_node(
        judge_nodes.PaCoJudgeLoader, **{**LOADER_DEFAULTS, "path_or_url": judge_in_models(tiny_models)}
    )
    return out[0]


def judge_in_models(tiny_models) -> str:
    """Link the tiny judge into models/text_encoders (node inputs resolve only there); its name."""
    import folder_paths

    folder = Path(folder_paths.get_folder_paths("text_encoders")[0])
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "tiny-judge").exists():
        (folder / "tiny-judge").symlink_to(tiny_models["judge"])
    return "tiny-judge"


def progress_updates():
    import comfy.utils

    return [(update.value, update.total) for update in comfy.utils.PROGRESS_UPDATES]


def test_loader_lists_judge_folders_from_text_encoders(tiny_models, tmp_path):
    encoders = tmp_path / "models" / "text_encoders"
    shutil.copytree(tiny_models["judge"], encoders / "PaCo-Reward-tiny")
    (encoders / "other").mkdir()
    (encoders / "other" / "config.json").write_text(json.dumps({"model_type": "clip"}))
    (encoders / "other" / "model.safetensors").write_bytes(b"")
    schema = judge_nodes.PaCoJudgeLoader.define_schema()
    assert schema.inputs[0].options == ["PaCo-Reward-tiny", judge_nodes.TYPED_SOURCE_CHOICE]
    out = run_node(
        judge_nodes.PaCoJudgeLoader,
        hidden={"unique_id": "3"},
        **{**LOADER_DEFAULTS, "judge_name": "PaCo-Reward-tiny"},
    )
    assert isinstance(out[0], LocalJudge)
    assert out[0].name == str(encoders / "PaCo-Reward-tiny")
    from server import PromptServer

    texts = [text for node_id, text in PromptServer.instance.stub_progress_texts() if node_id == "3"]
    assert texts[-2] == "loading judge PaCo-Reward-tiny ..." and texts[-1].startswith(
        "loaded judge PaCo-Reward-tiny in "
    )
    assert progress_updates()[-1] == (1, 1), "the loader's progress bar ends full"


def test_loader_needs_a_typed_source_when_the_dropdown_says_so():
    with pytest.raises(InputError, match="says to type a path or URL, but path_or_url is empty"):
        run_node(judge_nodes.PaCoJudgeLoader, **LOADER_DEFAULTS)


def test_loader_gives_a_server_judge_for_a_url(judge):
    with JudgeHTTPServer(judge, model_name="m") as server:
        client = run_node(
            judge_nodes.PaCoJudgeLoader,
            **{**LOADER_DEFAULTS, "path_or_url": f"{server.url}/v1", "server_model": ""},
        )[0]
        assert isinstance(client, JudgeClient)
        assert client.completions_url == f"{server.url}/v1/chat/completions" and client.model == "m"
        with pytest.raises(JudgeError, match=r"serves 'm', not 'other': set the server model name"):
            run_node(
                judge_nodes.PaCoJudgeLoader,
                **{**LOADER_DEFAULTS, "path_or_url": server.url, "server_model": "other"},
            )


def test_loader_fails_at_once_when_the_server_url_does_not_answer():
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    started = time.perf_counter()
    with pytest.raises(JudgeError, match=rf"judge server {url}/v1/models did not answer .*Start the server"):
        run_node(judge_nodes.PaCoJudgeLoader, **{**LOADER_DEFAULTS, "path_or_url": url})
    assert time.perf_counter() - started < 10


def test_loader_frees_comfy_memory_before_loading_to_a_gpu(monkeypatch, tiny_models):
    import comfy.model_management as mm

    import paco_core.reward as reward_package

    seen = {}

    def record_open(source, **kwargs):  # no GPU here: record what would be loaded where
        seen.update(kwargs, source=source, unloaded=mm.CALLS["unload_all_models"])
        return "judge"

    monkeypatch.setattr(bridge, "comfy_device", lambda: torch.device("cuda"))
    monkeypatch.setattr(reward_package, "open_judge", record_open)
    run_node(judge_nodes.PaCoJudgeLoader, **{**LOADER_DEFAULTS, "path_or_url": judge_in_models(tiny_models)})
    assert seen["unloaded"] == 1 and seen["device"] == "cuda" and seen["keep_loaded"] is True


def test_set_consistency_scores_a_batch_with_progress(judge):
    images = random_batch(4)
    out = run_node(
        judge_nodes.PaCoSetConsistency,
        judge=judge,
        images=images,
        theme="a fox",
        layout="batch",
        both_orders=False,
    )
    score, per_image, odd_one_out, heatmap, report = out.args
    expected = score_set(judge, tensor_to_pil(images), "a fox")
    assert score == pytest.approx(expected.score)
    assert json.loads(per_image) == pytest.approx(expected.per_image, abs=1e-6)
    assert odd_one_out == expected.odd_one_out
    assert heatmap.shape == (1, 28 + 4 * 64, 28 + 4 * 64, 3) and heatmap.dtype == torch.float32
    assert report.startswith(f"set consistency {expected.score:.3f}")
    assert out.ui.as_dict() == {"text": (report,)}


def test_set_consistency_splits_a_grid_by_its_layout(judge):
    grid = random_batch(1, 128, 128, seed=1)
    judge.cache.clear()
    out = run_node(
        judge_nodes.PaCoSetConsistency, judge=judge, images=grid, theme="", layout="2x2", both_orders=True
    )
    assert progress_updates()[-1] == (12, 12)
    panels = split_grid(tensor_to_pil(grid)[0], "2x2")
    assert out[0] == pytest.approx(score_set(judge, panels, None, both_orders=True).score)


def test_set_consistency_reports_bad_input(judge):
    with pytest.raises(InputError, match="cannot be split into a 3x3 grid of equal panels"):
        run_node(
            judge_nodes.PaCoSetConsistency,
            judge=judge,
            images=random_batch(1),
            theme="",
            layout="3x3",
            both_orders=False,
        )
    with pytest.raises(InputError, match="at least 2 images per set to compare, got 1"):
        run_node(
            judge_nodes.PaCoSetConsistency,
            judge=judge,
            images=random_batch(1),
            theme="",
            layout="batch",
            both_orders=False,
        )
    with pytest.raises(InputError, match="got 2 grid images; PaCo Set Consistency scores one set"):
        run_node(
            judge_nodes.PaCoSetConsistency,
            judge=judge,
            images=random_batch(2),
            theme="",
            layout="1x2",
            both_orders=False,
        )


def test_set_consistency_honours_comfyui_cancel(judge):
    import comfy.model_management as mm

    judge.cache.clear()
    mm.interrupt_current_processing()
    with pytest.raises(mm.InterruptProcessingException):
        run_node(
            judge_nodes.PaCoSetConsistency,
            judge=judge,
            images=random_batch(3, seed=7),
            theme="",
            layout="batch",
            both_orders=False,
        )


def test_edit_score_node_scores_each_item_and_averages(judge):
    originals, editeds = random_batch(2, seed=2), random_batch(2, seed=3)
    out = run_node(
        judge_nodes.PaCoEditScore,
        judge=judge,
        original=originals,
        edited=editeds,
        instruction="add snow\nmake it night",
    )
    expected = score_edits(
        judge, tensor_to_pil(originals), tensor_to_pil(editeds), ["add snow", "make it night"]
    )
    assert out[0] == pytest.approx(sum(item.consistency for item in expected) / 2)
    assert out[2] == pytest.approx(sum(item.overall for item in expected) / 2)
    first, second, mean = out[3].splitlines()
    assert first == (
        f'edit 1 "add snow": overall {expected[0].overall:.3f} '
        f"(consistency {expected[0].consistency:.3f}, following {expected[0].following:.3f})"
    )
    assert second.startswith(f'edit 2 "make it night": overall {expected[1].overall:.3f} ')
    assert mean.startswith(f"mean of 2 edits: overall {out[2]:.3f} (consistency {out[0]:.3f}, ")
    assert out.ui.as_dict() == {"text": (out[3],)}
    with pytest.raises(InputError, match=r"got 2 original\(s\), 1 edited image\(s\)"):
        run_node(
            judge_nodes.PaCoEditScore, judge=judge, original=originals, edited=editeds[:1], instruction="x"
        )


def test_reasons_node_returns_the_judges_text(judge):
    first, second = random_batch(1, seed=4), random_batch(1, seed=5)
    out = run_node(
        judge_nodes.PaCoJudgeReasons,
        judge=judge,
        first=first,
        second=second,
        question="edit following (text = instruction)",
        text="add snow",
        max_new_tokens=3,
    )
    assert isinstance(out[0], str) and progress_updates()[-1] == (1, 1)


def test_rank_sets_node_returns_the_best_grid(judge):
    grids = random_batch(3, 128, 64, seed=6)
    out = run_node(
        judge_nodes.PaCoRankSets,
        judge=judge,
        images=grids,
        theme="a fox",
        layout="2x1",
        panels_per_set=4,
        both_orders=False,
    )
    best, best_index, scores, report = out.args
    ranking = rank_sets(judge, [split_grid(image, "2x1") for image in tensor_to_pil(grids)], "a fox")
    assert best_index == ranking[0].index
    assert torch.equal(best, grids[best_index : best_index + 1])
    assert json.loads(scores) == pytest.approx(
        [item.score for item in sorted(ranking, key=lambda r: r.index)], abs=1e-6
    )
    best = ranking[0]
    assert (
        report.splitlines()[0]
        == f"best: set {best_index + 1}, consistency {best.score:.3f} of 3 candidate sets"
    )
    assert report.splitlines()[1] == f"1. set {best_index + 1}: {best.score:.3f}"
    assert len(report.splitlines()) == 4
    seeded = run_node(
        judge_nodes.PaCoRankSets,
        judge=judge,
        images=grids,
        theme="a fox",
        layout="2x1",
        panels_per_set=4,
        both_orders=False,
        first_seed=42,
    )
    assert seeded[3].splitlines()[0].startswith(f"best: set {best_index + 1} (seed {42 + best_index}), ")
    assert (
        seeded[3]
        .splitlines()[-1]
        .startswith(f"3. set {ranking[-1].index + 1} (seed {42 + ranking[-1].index}): ")
    )


def test_rank_sets_node_takes_panels_per_set_in_batch_mode(judge):
    panels = random_batch(6, seed=8)
    out = run_node(
        judge_nodes.PaCoRankSets,
        judge=judge,
        images=panels,
        theme="",
        layout="batch",
        panels_per_set=3,
        both_orders=False,
    )
    assert out[0].shape == (3, 64, 64, 3) and out[1] in (0, 1)
    assert torch.equal(out[0], panels[3 * out[1] : 3 * out[1] + 3])
    with pytest.raises(InputError, match="the batch of 6 images does not split into sets of 4 panels"):
        run_node(
            judge_nodes.PaCoRankSets,
            judge=judge,
            images=panels,
            theme="",
            layout="batch",
            panels_per_set=4,
            both_orders=False,
        )
