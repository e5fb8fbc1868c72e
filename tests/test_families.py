"""The model-family registry (paco_core/families): every family complete and consistent with
diffusers, the shipped config folders and the code its references name; lookups and their
errors; and no kind id written outside the families package (tokens, not text search)."""

from __future__ import annotations

import ast
import io
import json
import tokenize
from pathlib import Path

import pytest

from paco_core.errors import InputError
from paco_core.families import (
    EDIT,
    SETS,
    Family,
    all_families,
    architecture,
    architectures,
    default_family,
    edit_kinds,
    families_of_architecture,
    family,
    family_of_pipeline_class,
    file_role,
    file_roles,
    is_installed,
    kinds,
    load_reference,
    trainable_kinds,
)

REPO = Path(__file__).resolve().parent.parent
FAMILIES_DIR = REPO / "paco_core" / "families"
CONFIGS_DIR = REPO / "paco_core" / "models" / "configs"
SCANNED = ("paco_core", "nodes", "bench", "tools", "__init__.py")
"""Where product code lives: no kind id may be written there outside paco_core/families."""
NOT_SCANNED: tuple[str, ...] = ()


def family_literals() -> set[str]:
    """Every kind id and architecture name ("flux" is both FLUX.1-dev's kind and its architecture)."""
    return {*kinds(), *(item.name for item in architectures())}


def literals_in(text: str, forbidden: set[str], where: str) -> list[str]:
    """``file:line: "value"`` for each Python string literal whose value is one of ``forbidden``."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type != tokenize.STRING:
            continue
        try:
            value = ast.literal_eval(token.string)
        except (ValueError, SyntaxError):  # an f-string
            continue
        if value in forbidden:
            found.append(f"{where}:{token.start[0]}: {token.string}")
    return found


def scanned_files() -> list[Path]:
    excluded = {path for pattern in NOT_SCANNED for path in REPO.glob(pattern)}
    files = []
    for name in SCANNED:
        root = REPO / name
        candidates = [root] if root.is_file() else sorted(root.rglob("*.py"))
        files += [path for path in candidates if path not in excluded and FAMILIES_DIR not in path.parents]
    return files


def test_no_kind_literal_outside_the_families_package():
    forbidden = family_literals()
    found = []
    for path in scanned_files():
        found += literals_in(path.read_text(encoding="utf-8"), forbidden, str(path.relative_to(REPO)))
    assert not found, "ask paco_core.families instead of writing a kind id:\n" + "\n".join(found)


def test_the_scan_covers_the_product_code():
    names = {str(path.relative_to(REPO)) for path in scanned_files()}
    assert {
        "paco_core/models/pipelines.py",
        "nodes/training.py",
        "__init__.py",
        "bench/gpu_parts.py",
    } <= names
    assert "tools/consistency_pictures.py" in names
    assert not any(name.startswith("paco_core/families/") for name in names)


def test_the_literal_scan_finds_kinds_and_architectures_but_not_prose():
    text = (
        '"""A docstring about flux-kontext."""\n'
        'x = "flux-kontext"  # "flux" in a comment\n'
        "y = {'qwen-image': 1}\n"
        'z = f"{kind}" + "fluxish"\n'
    )
    found = literals_in(text, family_literals(), "sample.py")
    assert found == ['sample.py:2: "flux-kontext"', "sample.py:3: 'qwen-image'"]


# ---- the records ------------------------------------------------------------------------


def test_kinds_pipeline_classes_and_presets_are_unique():
    families = all_families()
    assert len({item.kind for item in families}) == len(families)
    assert len({item.pipeline_class for item in families}) == len(families)
    presets = [name for item in families for name in item.presets]
    assert len(set(presets)) == len(presets)


@pytest.mark.parametrize("item", all_families(), ids=lambda item: item.kind)
def test_every_family_is_complete(item: Family):
    for name in (
        "kind",
        "title",
        "pipeline_class",
        "diffusers_module",
        "hub_id",
        "config_folder",
        "tiny_model",
    ):
        assert getattr(item, name), f"{item.kind}: {name} is empty"
    assert item.task in (SETS, EDIT)
    assert item.default_steps > 0 and item.default_guidance > 0
    assert (item.task == EDIT) == (item.num_references > 0) == (item.edit_call is not None)
    assert (item.task == SETS) == (item.encode_set_prompt is not None)
    assert set(item.architecture.attention_targets) <= set(item.architecture.lora_targets)
    if item.presets:
        assert item.is_trainable, f"{item.kind} brings presets but has no rollout adapter"


@pytest.mark.parametrize("item", all_families(), ids=lambda item: item.kind)
def test_every_reference_resolves(item: Family):
    for name in ("edit_call", "encode_set_prompt", "rollout_adapter", "tiny_model", "tiny_comfy_files"):
        reference = getattr(item, name)
        if reference is not None:
            assert callable(load_reference(reference)), f"{item.kind}.{name} = {reference}"


@pytest.mark.parametrize("item", all_families(), ids=lambda item: item.kind)
def test_pipeline_classes_come_from_diffusers(item: Family):
    import importlib

    import diffusers

    assert is_installed(item) == hasattr(diffusers, item.pipeline_class)
    if not is_installed(item):
        pytest.skip(f"this diffusers has no {item.pipeline_class}")
    module = importlib.import_module(item.diffusers_module)
    assert getattr(module, item.pipeline_class) is getattr(diffusers, item.pipeline_class)
    assert hasattr(diffusers, item.architecture.transformer_class)
    if item.inpaint_pipeline_class:
        assert hasattr(diffusers, item.inpaint_pipeline_class)


@pytest.mark.parametrize("item", all_families(), ids=lambda item: item.kind)
def test_the_shipped_config_folder_makes_the_family(item: Family):
    index = json.loads((CONFIGS_DIR / item.config_folder / "model_index.json").read_text(encoding="utf-8"))
    assert family_of_pipeline_class(index["_class_name"]) is item
    transformer = json.loads((CONFIGS_DIR / item.config_folder / "transformer" / "config.json").read_text())
    assert transformer["_class_name"] == item.architecture.transformer_class


def test_architectures_are_shared_records_with_one_default_family_each():
    names = [item.name for item in architectures()]
    assert len(set(names)) == len(names)
    for item in architectures():
        members = families_of_architecture(item.name)
        assert all(member.architecture is item for member in members)
        assert [member for member in members if member.default_for_architecture] == [
            default_family(item.name)
        ]
        assert [file_role(name).is_vae for name in (*item.text_encoders, item.vae)] == [
            *(False for _ in item.text_encoders),
            True,
        ]
        components = [file_role(name).component for name in item.text_encoders]
        assert len(set(components)) == len(components), (
            f"{item.name}: two text encoders load into one component"
        )


def test_file_roles_are_unique_and_recognised_from_their_keys():
    from paco_core.models.comfy_files import text_encoder_role, vae_role

    roles = file_roles()
    assert len({role.name for role in roles}) == len(roles)
    for role in roles:
        keys = set(role.key_markers[0]) if role.key_markers else {role.key_prefixes[0] + "0.weight"}
        found = vae_role(keys) if role.is_vae else text_encoder_role({f"transformer.{key}" for key in keys})
        assert found == role.name
    with pytest.raises(InputError, match="unknown model file role 'clip_g'; known: clip_l"):
        file_role("clip_g")


def test_presets_are_valid_training_configs_of_their_family():
    from paco_core.rl.presets import preset_config

    for item in all_families():
        for name in item.presets:
            config = preset_config(name)
            assert config.model.kind == item.kind and config.model.path == item.hub_id
            assert tuple(config.lora.target_modules) in (
                item.architecture.lora_targets,
                item.architecture.attention_targets,
            )


# ---- lookups ----------------------------------------------------------------------------


def test_lookups():
    kontext = family_of_pipeline_class("FluxKontextPipeline")
    assert kontext is not None and family(kontext.kind) is kontext
    assert kontext.architecture is architecture(kontext.architecture.name)
    assert family_of_pipeline_class("StableDiffusionPipeline") is None
    assert family_of_pipeline_class(None) is None
    assert edit_kinds() == kinds(EDIT) == tuple(item.kind for item in all_families() if item.is_edit)
    assert set(kinds(SETS)) | set(kinds(EDIT)) == set(kinds())
    assert set(trainable_kinds()) == {item.kind for item in all_families() if item.rollout_adapter}
    assert kinds(EDIT, trainable=True) == tuple(k for k in edit_kinds() if k in trainable_kinds())


def test_an_unknown_kind_names_the_known_ones():
    with pytest.raises(InputError, match=r"unknown model kind 'sdxl'; known kinds: .*" + kinds()[-1]):
        family("sdxl")
    with pytest.raises(InputError, match="task should be one of sets, edit, got 'video'"):
        kinds("video")
    with pytest.raises(InputError, match="unknown transformer architecture 'unet'"):
        architecture("unet")


def test_a_record_refuses_an_edit_family_without_an_edit_call():
    item = all_families()[0]
    from dataclasses import replace

    with pytest.raises(ValueError, match="edit_call"):
        replace(item, task=EDIT, edit_call=None, num_references=1)


def test_a_record_refuses_a_sets_family_without_a_prompt_encoder():
    from dataclasses import replace

    with pytest.raises(ValueError, match="encode_set_prompt"):
        replace(all_families()[0], encode_set_prompt=None)


@pytest.mark.slow  # builds every family's tiny model
def test_the_tiny_models_are_recognised_as_their_family(tiny_models):
    from paco_core.models.pipelines import detect_pipeline_kind
    from paco_core.testing import TINY_MODEL_NAMES

    for item in all_families():
        if item.kind in TINY_MODEL_NAMES:
            assert detect_pipeline_kind(tiny_models[item.kind]) == item.kind
