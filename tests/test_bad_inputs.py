"""The bad-input suite: every probe of issue 12 (items 4-6) as a test, so that the count of
tracebacks, silently wrong results and hangs stays 0.

- Command line: the probe runs ``paco`` in-process through ``paco_core.cli.main``; it must
  return 1 and print one line, ``paco <command>: error: ...``, naming what was wrong. An
  exception escaping ``main`` (a traceback) fails the probe.
- Nodes: the probe runs the node as ComfyUI would (``pack_loader.run_node``); it must raise a
  ``PaCoError`` with the expected message.

Several probes end in the same check of a subprocess run: ``paco`` as a user runs it, where
``--debug`` brings the traceback back.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from paco_core.cli import main

REPO_ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- files the probes use


def bomb_png(path: Path, side: int = 100_000) -> Path:
    """A valid PNG header declaring ``side`` x ``side`` pixels (10 gigapixels by default),
    with almost no data: what a decompression bomb looks like to an image reader."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )
    return path


def flux_lora(path: Path, tiny_models, *, poison: float | None = None) -> Path:
    """A FLUX LoRA saved by the pack's own saver; ``poison`` (nan / inf) put in one weight."""
    import torch
    from diffusers import FluxTransformer2DModel
    from peft import LoraConfig

    from paco_core.models.lora import save_peft_transformer_lora

    transformer = FluxTransformer2DModel.from_pretrained(str(tiny_models["flux"]), subfolder="transformer")
    torch.manual_seed(0)
    transformer.add_adapter(LoraConfig(r=2, lora_alpha=2, init_lora_weights=False, target_modules=["to_q"]))
    if poison is not None:
        with torch.no_grad():
            name, weight = next((n, p) for n, p in transformer.named_parameters() if "lora_B" in n)
            weight.view(-1)[0] = poison
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_peft_transformer_lora(transformer, path)


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.fixture(scope="module")
def files(tiny_models, tmp_path_factory):
    """Every file a CLI probe needs, made once."""
    root = tmp_path_factory.mktemp("bad-inputs")
    made = {
        "flux": tiny_models["flux"],
        "kontext": tiny_models["flux-kontext"],
        "judge": tiny_models["judge"],
    }
    Image.new("RGB", (32, 32), (120, 30, 200)).save(root / "small.png")
    made["png"] = root / "small.png"
    made["bomb"] = bomb_png(root / "bomb.png")
    made["a_file"] = root / "a_file"
    made["a_file"].write_text("not a folder")
    made["lora"] = flux_lora(root / "lora.safetensors", tiny_models)
    made["nan_lora"] = flux_lora(root / "nan.safetensors", tiny_models, poison=float("nan"))
    made["inf_lora"] = flux_lora(root / "inf.safetensors", tiny_models, poison=float("inf"))
    junk = root / "not_a_lora"
    junk.mkdir()
    (junk / "notes.txt").write_text("hello")
    made["not_a_lora"] = junk
    broken_judge = root / "broken_judge"
    shutil.copytree(tiny_models["judge"], broken_judge)
    for weights in broken_judge.glob("*.safetensors"):
        truncate(weights)
    made["broken_judge"] = broken_judge
    made["adapter"] = judge_adapter(root / "adapter", tiny_models)
    bad_config = root / "adapter_bad_config"
    shutil.copytree(made["adapter"], bad_config)
    truncate(bad_config / "adapter_config.json")
    made["adapter_bad_config"] = bad_config
    bad_weights = root / "adapter_bad_weights"
    shutil.copytree(made["adapter"], bad_weights)
    truncate(bad_weights / "adapter_model.safetensors")
    made["adapter_bad_weights"] = bad_weights
    transformer = next((Path(tiny_models["flux"]) / "transformer").glob("*.safetensors"))
    made["truncated_transformer"] = root / "transformer.safetensors"
    made["truncated_transformer"].write_bytes(transformer.read_bytes()[:1000])
    return made


def judge_adapter(folder: Path, tiny_models) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2_5_VLForConditionalGeneration

    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_models["judge"], dtype=torch.float32)
    torch.manual_seed(0)
    config = LoraConfig(r=2, lora_alpha=2, target_modules=["q_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------- command-line probes


def generate_argv(files, out, *extra):
    return [
        "generate", "--model", str(files["flux"]), "--theme", "a fox", "--layout", "1x2",
        "--panel", "runs", "--panel", "sleeps", "--panel-size", "32", "--steps", "1",
        "--out", str(out), *extra,
    ]  # fmt: skip


def score_argv(files, *extra, images=("png", "png")):
    return ["score", "--judge", str(files["judge"]), *[str(files[name]) for name in images], *extra]


def demo_argv(files, out, *extra):
    return ["demo", "--model", str(files["flux"]), "--judge", str(files["judge"]), "--out", str(out), *extra]


CLI_PROBES = {
    # file-system errors
    "generate --out is a file": (
        lambda f, out: generate_argv(f, f["a_file"]),
        "--out {a_file} is a file",
    ),
    "generate --out on a read-only disk": (
        lambda f, out: generate_argv(f, "READ_ONLY"),
        "cannot write into --out",
    ),
    "edit --out is a file": (
        lambda f, out: ["edit", "--model", str(f["kontext"]), "--image", str(f["png"]), "--instruction", "x",
                        "--out", str(f["a_file"])],
        "--out {a_file} is a file",
    ),
    "demo --out is a file": (lambda f, out: demo_argv(f, f["a_file"]), "--out {a_file} is a file"),
    "generate --lora a folder that is not a LoRA": (
        lambda f, out: generate_argv(f, out, "--lora", str(f["not_a_lora"])),
        "holds no .safetensors file",
    ),
    # devices
    "generate --device cuda without a GPU": (
        lambda f, out: generate_argv(f, out, "--device", "cuda"),
        "device 'cuda' was asked for, but",
    ),
    "score --device cuda:1 without a GPU": (
        lambda f, out: score_argv(f, "--device", "cuda:1"),
        "device 'cuda:1' was asked for, but",
    ),
    "demo --device cuda without a GPU": (
        lambda f, out: demo_argv(f, out, "--device", "cuda"),
        "device 'cuda' was asked for, but",
    ),
    # truncated weights and configs
    "score --judge with truncated weights": (
        lambda f, out: ["score", "--judge", str(f["broken_judge"]), str(f["png"]), str(f["png"])],
        "cannot load Qwen2.5-VL weights",
    ),
    "score --lora with a truncated adapter_config.json": (
        lambda f, out: score_argv(f, "--lora", str(f["adapter_bad_config"])),
        "adapter_config.json is not valid JSON",
    ),
    "score --lora with truncated adapter weights": (
        lambda f, out: score_argv(f, "--lora", str(f["adapter_bad_weights"])),
        "is not a readable safetensors file",
    ),
    "generate --transformer-file truncated": (
        lambda f, out: generate_argv(f, out, "--transformer-file", str(f["truncated_transformer"])),
        "could not read the FLUX transformer",
    ),
    # decompression bombs
    "score a decompression-bomb image": (
        lambda f, out: score_argv(f, images=("png", "bomb")),
        "has more pixels than the limit of",
    ),
    "score --layout a decompression-bomb grid": (
        lambda f, out: score_argv(f, "--layout", "2x2", images=("bomb",)),
        "has more pixels than the limit of",
    ),
    "score-edit a decompression-bomb image": (
        lambda f, out: ["score-edit", "--judge", str(f["judge"]), "--instruction", "x", str(f["bomb"]),
                        str(f["png"])],
        "has more pixels than the limit of",
    ),
    "edit --image a decompression bomb": (
        lambda f, out: ["edit", "--model", str(f["kontext"]), "--image", str(f["bomb"]), "--instruction", "x",
                        "--out", str(out)],
        "has more pixels than the limit of",
    ),
    # bounds like the nodes'
    "generate --panel-size beyond the nodes' maximum": (
        lambda f, out: generate_argv(f, out, "--panel-size", "65536"),
        "`panel_width` should be at most 2048",
    ),
    "generate --panel-size 0": (
        lambda f, out: generate_argv(f, out, "--panel-size", "0"),
        "`panel_width` should be a whole number of pixels >= 16",
    ),
    "generate --steps beyond the nodes' maximum": (
        lambda f, out: generate_argv(f, out, "--steps", "100000"),
        "`steps` should be at most 200",
    ),
    "generate --num-sets 0": (
        lambda f, out: generate_argv(f, out, "--num-sets", "0"),
        "`num_sets` should be a whole number >= 1",
    ),
    "generate --lora strength beyond the nodes' range": (
        lambda f, out: generate_argv(f, out, "--lora", f"{f['lora']}:50"),
        "LoRA strength should be between -4 and 4",
    ),
    "generate --lora strength nan": (
        lambda f, out: generate_argv(f, out, "--lora", f"{f['lora']}:nan"),
        "LoRA strength should be a finite number",
    ),
    "generate --lora with NaN weights": (
        lambda f, out: generate_argv(f, out, "--lora", str(f["nan_lora"])),
        "non-finite values (NaN or infinity)",
    ),
    "generate --lora with infinite weights": (
        lambda f, out: generate_argv(f, out, "--lora", str(f["inf_lora"])),
        "non-finite values (NaN or infinity)",
    ),
    "demo --steps 0": (lambda f, out: demo_argv(f, out, "--steps", "0"), "--steps should be a whole number >= 1"),
    "demo --panel-size 0": (
        lambda f, out: demo_argv(f, out, "--panel-size", "0"),
        "--panel-size should be a whole number of pixels >= 16",
    ),
    "score --batch-size 0": (
        lambda f, out: score_argv(f, "--batch-size", "0"),
        "batch_size",
    ),
}  # fmt: skip


def read_only_out(tmp_path, monkeypatch) -> Path:
    """A folder the command cannot write into: read-only by mode, and (root writes anyway)
    by a file system that answers EROFS to every new file, as a read-only mount does."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root: permissions do not stop it, so refuse like a read-only mount
        import tempfile

        real_mkstemp = tempfile.mkstemp

        def read_only_mkstemp(*args, dir=None, **kwargs):
            if dir is not None and Path(dir).resolve().is_relative_to(folder.resolve()):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
            return real_mkstemp(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", read_only_mkstemp)
        real_open = os.open

        def read_only_open(path, flags, *args, **kwargs):
            if flags & (os.O_WRONLY | os.O_RDWR) and Path(path).resolve().is_relative_to(folder.resolve()):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", read_only_open)
    return folder / "out"


@pytest.mark.parametrize("probe", list(CLI_PROBES))
def test_cli_probe_ends_in_one_line_error(probe, files, tmp_path, capsys, monkeypatch):
    build, expected = CLI_PROBES[probe]
    argv = [str(item) for item in build(files, tmp_path / "out")]
    if "READ_ONLY" in argv:
        argv[argv.index("READ_ONLY")] = str(read_only_out(tmp_path, monkeypatch))
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1, err
    assert "Traceback" not in err
    last = lines[-1]
    assert last.startswith(f"paco {argv[0]}: error: "), err
    assert expected.format(**{k: v for k, v in files.items()}) in last, err


def test_debug_shows_the_traceback_and_plain_runs_do_not(files, tmp_path):
    """As a user runs it: a subprocess; ``--debug`` prints the traceback, a plain run one line."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-m", "paco_core.cli"]
    probe = ["score", "--judge", str(files["judge"]), str(files["png"]), str(files["bomb"])]
    plain = subprocess.run([*argv, *probe], capture_output=True, text=True, env=env, timeout=300)
    debug = subprocess.run([*argv, "--debug", *probe], capture_output=True, text=True, env=env, timeout=300)
    assert plain.returncode == debug.returncode == 1
    assert "Traceback" not in plain.stderr and plain.stderr.strip().count("\n") == 0, plain.stderr
    assert "Traceback" in debug.stderr and "more pixels than the limit" in debug.stderr


def test_a_lora_with_non_finite_values_is_refused_by_the_core(files, tiny_models):
    """Core, so nodes and CLI both get it: read_lora refuses, naming the key."""
    from paco_core.errors import LoraError
    from paco_core.models.lora import read_lora

    with pytest.raises(LoraError, match=r"non-finite values \(NaN or infinity\) in transformer\."):
        read_lora(files["nan_lora"])
    assert read_lora(files["lora"]).num_keys > 0


# --------------------------------------------------------------------------- file modes


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_respect_the_umask(tmp_path, umask, expected):
    from paco_core.io import atomic_write_json, atomic_write_text

    previous = os.umask(umask)
    try:
        text = atomic_write_text(tmp_path / "a.txt", "hello")
        data = atomic_write_json(tmp_path / "sub" / "b.json", {"a": 1})
    finally:
        os.umask(previous)
    assert (text.stat().st_mode & 0o777, data.stat().st_mode & 0o777) == (expected, expected)
    assert json.loads(data.read_text()) == {"a": 1}


# --------------------------------------------------------------------------- node probes


@pytest.fixture()
def comfy(tmp_path, tiny_models, files, monkeypatch):
    """A ComfyUI folder layout with the tiny models linked into models/ and files outside it."""
    from pack_loader import load_pack, reset_comfy_stub

    pack = load_pack()
    reset_comfy_stub(tmp_path / "comfy")
    for name in ("PACO_ALLOW_OUTSIDE_PATHS", "PACO_ALLOW_REMOTE_JUDGE", "PACO_ALLOW_HUB_DOWNLOADS"):
        monkeypatch.delenv(name, raising=False)
    models = tmp_path / "comfy" / "models"
    for folder in ("diffusers", "loras", "text_encoders", "diffusion_models"):
        (models / folder).mkdir(parents=True)
    (models / "diffusers" / "tiny-flux").symlink_to(tiny_models["flux"])
    (models / "text_encoders" / "tiny-judge").symlink_to(tiny_models["judge"])
    shutil.copy(files["lora"], models / "loras" / "paco.safetensors")
    shutil.copy(files["nan_lora"], models / "loras" / "nan.safetensors")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(files["lora"], outside / "secret.safetensors")
    yield {
        "monkeypatch": monkeypatch,
        "models": models,
        "outside": outside,
        "generation": importlib.import_module(f"{pack.__name__}.nodes.generation"),
        "judge": importlib.import_module(f"{pack.__name__}.nodes.judge"),
        "bridge": importlib.import_module(f"{pack.__name__}.nodes.comfy_bridge"),
    }
    from paco_core.models.judge import release_judges
    from paco_core.models.pipelines import clear_pipeline_cache

    clear_pipeline_cache()
    release_judges()


def load_pipeline_node(comfy, **changes):
    from pack_loader import widget_defaults

    loader = comfy["generation"].PaCoPipelineLoader
    return linked(loader, **{**widget_defaults(loader), "model": "tiny-flux", **changes})[0]


def lora_node(comfy, pipeline, lora_name, strength=1.0):
    return linked(comfy["generation"].PaCoLora, pipeline=pipeline, lora_name=lora_name, strength=strength)


def linked(node_cls, **inputs):
    """Run a node whose dropdown values arrive through links (e.g. from a wildcard output):
    ComfyUI then does not check them against the dropdown's options."""
    from pack_loader import run_node

    return run_node(node_cls, validate=False, **inputs)


def judge_loader_node(comfy, **changes):
    from pack_loader import run_node

    judge = comfy["judge"]
    inputs = {
        "judge_name": judge.TYPED_SOURCE_CHOICE, "path_or_url": "", "lora_path": "", "dtype": "auto",
        "answers": "exact Yes/No", "batch_size": 8, "server_model": "", "keep_loaded": True,
    }  # fmt: skip
    return run_node(judge.PaCoJudgeLoader, **{**inputs, **changes})[0]


NODE_PROBES = {
    "LoRA name climbing out with ..": (
        lambda c: lora_node(c, load_pipeline_node(c), "../../outside/secret.safetensors"),
        "climbs out of its folder with '..'",
    ),
    "LoRA name an absolute path outside models/": (
        lambda c: lora_node(c, load_pipeline_node(c), str(c["outside"] / "secret.safetensors")),
        "is outside ComfyUI's models folders",
    ),
    "model_path an absolute path outside models/": (
        lambda c: load_pipeline_node(c, model_path=str(c["outside"])),
        "is outside ComfyUI's models folders",
    ),
    "model_path climbing out with ..": (
        lambda c: load_pipeline_node(c, model_path="../../outside"),
        "climbs out of its folder with '..'",
    ),
    "model dropdown value climbing out with ..": (
        lambda c: load_pipeline_node(c, model="../diffusers/tiny-flux"),
        "climbs out of its folder with '..'",
    ),
    "transformer_file climbing out with ..": (
        lambda c: load_pipeline_node(c, transformer_file="..\\..\\outside\\secret.safetensors"),
        "climbs out of its folder with '..'",
    ),
    "judge path an absolute folder outside models/": (
        lambda c: judge_loader_node(c, path_or_url=str(c["outside"])),
        "is outside ComfyUI's models folders",
    ),
    "judge LoRA an absolute folder outside models/": (
        lambda c: judge_loader_node(c, path_or_url="tiny-judge", lora_path=str(c["outside"])),
        "is outside ComfyUI's models folders",
    ),
    "judge URL on a private network": (
        lambda c: judge_loader_node(c, path_or_url="http://10.1.2.3:8000"),
        "is not on this machine (host 10.1.2.3)",
    ),
    "judge URL of a cloud metadata service": (
        lambda c: judge_loader_node(c, path_or_url="http://169.254.169.254/latest/meta-data"),
        "is not on this machine (host 169.254.169.254)",
    ),
    "judge URL of a host name": (
        lambda c: judge_loader_node(c, path_or_url="https://judge.example.com/v1"),
        "is not on this machine (host judge.example.com)",
    ),
    "judge hub id with hub downloads off": (
        lambda c: with_env(c, "PACO_ALLOW_HUB_DOWNLOADS", "0", judge_loader_node, path_or_url="X-GenGroup/PaCo-Reward-7B"),
        "hub downloads from nodes are switched off (PACO_ALLOW_HUB_DOWNLOADS=0)",
    ),
    "model hub id with hub downloads off": (
        lambda c: with_env(c, "PACO_ALLOW_HUB_DOWNLOADS", "0", load_pipeline_node, model_path="black-forest-labs/FLUX.1-dev"),
        "hub downloads from nodes are switched off (PACO_ALLOW_HUB_DOWNLOADS=0)",
    ),
    "a setting with a value that is no yes/no": (
        lambda c: with_env(c, "PACO_ALLOW_OUTSIDE_PATHS", "maybe", load_pipeline_node, model_path=str(c["outside"])),
        "PACO_ALLOW_OUTSIDE_PATHS should be 1 or 0",
    ),
    "LoRA with NaN weights": (
        lambda c: lora_node(c, load_pipeline_node(c), "nan.safetensors"),
        "non-finite values (NaN or infinity)",
    ),
}  # fmt: skip


def with_env(comfy, name, value, node, **changes):
    comfy["monkeypatch"].setenv(name, value)  # undone after the test
    return node(comfy, **changes)


@pytest.mark.parametrize("probe", list(NODE_PROBES))
def test_node_probe_raises_a_paco_error(probe, comfy):
    from paco_core.errors import PaCoError

    run, expected = NODE_PROBES[probe]
    with pytest.raises(PaCoError) as caught:
        run(comfy)
    assert expected in str(caught.value)


def test_links_inside_models_and_the_opt_in_settings_are_honoured(comfy, monkeypatch):
    from paco_core import settings
    from paco_core.containment import check_judge_url

    (comfy["models"] / "loras" / "linked.safetensors").symlink_to(comfy["outside"] / "secret.safetensors")
    pipeline = load_pipeline_node(comfy)
    view, info = lora_node(comfy, pipeline, "linked.safetensors")  # a link placed in models/ is the user's
    assert "keys matched" in info and len(view.loras) == 1
    monkeypatch.setenv(settings.ALLOW_OUTSIDE_PATHS, "1")
    assert lora_node(comfy, pipeline, str(comfy["outside"] / "secret.safetensors"))[0].loras
    for url in ("http://127.0.0.1:8000", "http://localhost:8000/v1", "http://[::1]:8000", "http://127.8.9.1"):
        assert check_judge_url(url, setting="X") == url
    monkeypatch.setenv(settings.ALLOW_REMOTE_JUDGE, "yes")
    assert settings.allow_remote_judge()


# --------------------------------------------------------------------------- caches and memory


def test_judge_loader_options_take_effect_on_cached_weights(comfy):
    first = judge_loader_node(comfy, path_or_url="tiny-judge")
    second = judge_loader_node(
        comfy, path_or_url="tiny-judge", answers="Yes/No + case variants", batch_size=3
    )
    assert first.model is second.model  # the weights are cached ...
    assert (first.batch_size, second.batch_size) == (8, 3)  # ... every other option takes effect
    assert (first.answers, second.answers) == ("exact", "case")


def test_a_rewritten_lora_replaces_its_adapter(comfy, tiny_models):
    """The same LoRA file rewritten and re-applied 3 times: one adapter, holding the newest weights."""
    import torch
    from safetensors.torch import load_file, save_file

    pipeline = load_pipeline_node(comfy)
    path = comfy["models"] / "loras" / "paco.safetensors"
    lora_class = comfy["generation"].PaCoLora
    fingerprints = {lora_class.fingerprint_inputs(lora_name="paco.safetensors", strength=1.0)}
    for version in range(1, 4):
        tensors = {key: value * (1 + version) for key, value in load_file(path).items()}
        save_file(tensors, path)
        os.utime(path, ns=(version * 10**9, version * 10**9))
        fingerprints.add(lora_class.fingerprint_inputs(lora_name="paco.safetensors", strength=1.0))
        view, _ = lora_node(comfy, pipeline, "paco.safetensors")
        names = list(pipeline.pipe.transformer.peft_config)
        assert names == [view.loras[0].adapter_name], names
    assert len(fingerprints) == 4  # ComfyUI re-runs the node whenever the file changed
    key, newest = next((k, v) for k, v in tensors.items() if "lora_B" in k)
    module_name = key.removeprefix("transformer.").removesuffix(".lora_B.weight")
    layer = dict(pipeline.pipe.transformer.named_modules())[module_name]
    assert torch.equal(layer.lora_B[view.loras[0].adapter_name].weight, newest)


def test_pipeline_cache_keeps_the_most_recently_used(tiny_models, monkeypatch):
    from helpers_pipeline_cache import cached_pipelines

    from paco_core.models.pipelines import clear_pipeline_cache, load_pipeline

    clear_pipeline_cache()
    monkeypatch.setenv("PACO_PIPELINE_CACHE_SIZE", "1")
    flux = load_pipeline(tiny_models["flux"])
    kontext = load_pipeline(tiny_models["flux-kontext"])
    assert cached_pipelines() == [kontext]
    assert load_pipeline(tiny_models["flux"]) is not flux  # evicted, loaded again
    monkeypatch.setenv("PACO_PIPELINE_CACHE_SIZE", "2")
    kontext = load_pipeline(tiny_models["flux-kontext"])
    flux = load_pipeline(tiny_models["flux"])
    assert load_pipeline(tiny_models["flux-kontext"]) is kontext and len(cached_pipelines()) == 2
    monkeypatch.setenv("PACO_PIPELINE_CACHE_SIZE", "0")
    assert load_pipeline(tiny_models["flux"]) is not load_pipeline(tiny_models["flux"])
    clear_pipeline_cache()


def test_judge_cache_is_bounded(tiny_models, monkeypatch):
    from paco_core.models import judge as judge_models

    judge_models.release_judges()
    first = judge_models.cached_judge_model(tiny_models["judge"], dtype="fp32")
    judge_models.cached_judge_model(tiny_models["judge"], dtype="bf16")
    assert len(judge_models._LOADED) == 1  # default PACO_JUDGE_CACHE_SIZE=1
    assert judge_models.cached_judge_model(tiny_models["judge"], dtype="fp32") is not first
    judge_models.release_judges()


def test_comfyui_unload_models_releases_paco_pipelines_and_judges(comfy):
    """ComfyUI's "unload models" / POST /free end in comfy.model_management.unload_all_models():
    with the pack loaded it also releases PaCo's cached pipelines and judges. PaCo's own call
    before it takes the GPU keeps them."""
    import asyncio

    import comfy.model_management as mm
    from helpers_pipeline_cache import cached_pipelines
    from pack_loader import load_pack

    from paco_core.models import judge as judge_models

    extension = asyncio.run(load_pack().comfy_entrypoint())
    asyncio.run(extension.on_load())
    asyncio.run(extension.on_load())  # installing twice wraps once
    pipeline = load_pipeline_node(comfy)
    judge_loader_node(comfy, path_or_url="tiny-judge")
    comfy["bridge"].free_comfy_memory()
    assert [item.pipe for item in cached_pipelines()] == [pipeline.pipe] and len(judge_models._LOADED) == 1
    before = mm.CALLS["unload_all_models"]
    mm.unload_all_models()  # what ComfyUI's prompt worker calls after POST /free
    assert mm.CALLS["unload_all_models"] == before + 1  # ComfyUI's own unloading still runs, once
    assert cached_pipelines() == [] and len(judge_models._LOADED) == 0
    assert load_pipeline_node(comfy).pipe is not pipeline.pipe  # the next run loads afresh
