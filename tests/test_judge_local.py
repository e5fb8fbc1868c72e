"""The local judge backend on the tiny judge: loading, the score rule, batching, caching,
LoRA adapters and the errors a user can meet."""

from __future__ import annotations

import json
import shutil
from itertools import combinations

import numpy as np
import pytest
import torch
from PIL import Image

from paco_core.callbacks import Hooks
from paco_core.errors import InputError, JudgeError, LoraError, ModelLoadError
from paco_core.models.judge import release_judges
from paco_core.reward import open_judge
from paco_core.reward.backend import PairRequest
from paco_core.reward.cache import ScoreCache
from paco_core.reward.local import LocalJudge, chat_messages
from paco_core.reward.prompts import set_consistency_prompt

PROMPT = set_consistency_prompt("a red fox in four seasons")


def random_images(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def reference_logits(judge: LocalJudge, pair: PairRequest) -> torch.Tensor:
    """The model card's way: processor on one pair, full forward, last position."""
    text = judge.processor.apply_chat_template(
        chat_messages(pair.prompt), tokenize=False, add_generation_prompt=True
    )
    inputs = judge.processor(text=[text], images=[pair.first, pair.second], return_tensors="pt")
    with torch.no_grad():
        return judge.model(**inputs).logits[0, -1].float()


def reference_score(judge: LocalJudge, pair: PairRequest, yes=("Yes",), no=("No",)) -> float:
    probs = torch.softmax(reference_logits(judge, pair), dim=-1)
    tokenizer = judge.tokenizer
    p_yes = sum(probs[tokenizer.convert_tokens_to_ids(token)] for token in yes)
    p_no = sum(probs[tokenizer.convert_tokens_to_ids(token)] for token in no)
    return float(p_yes / (p_yes + p_no))


@pytest.fixture(scope="module")
def judge(tiny_models):
    return open_judge(tiny_models["judge"], batch_size=4)


@pytest.fixture(scope="module")
def mixed_pairs():
    images = random_images([(64, 64), (64, 96), (96, 64), (64, 64), (112, 56)], seed=1)
    prompts = [
        PROMPT,
        set_consistency_prompt("a much longer theme: a lighthouse keeper's year, told in ten panels"),
    ]
    return [
        PairRequest(images[i], images[j], prompts[k % 2])
        for k, (i, j) in enumerate(combinations(range(5), 2))
    ]


def test_load_judge_defaults_to_fp32_on_cpu_and_single_token_answers(judge):
    assert judge.device.type == "cpu"
    assert judge.dtype == torch.float32
    assert len(judge.yes_ids) == 1 and len(judge.no_ids) == 1
    assert judge.tokenizer.decode(judge.yes_ids) == "Yes"


def test_batched_scores_equal_one_pair_at_a_time_and_the_model_card_method(judge, mixed_pairs):
    judge.cache.clear()
    batched = judge.score_pairs(mixed_pairs)  # 10 pairs in batches of 4, images of 4 sizes
    judge.cache.clear()
    single = [judge.score_pairs([pair])[0] for pair in mixed_pairs]
    judge.cache.clear()
    reference = [reference_score(judge, pair) for pair in mixed_pairs]
    assert np.allclose(batched, single, atol=1e-4, rtol=0)
    assert np.allclose(batched, reference, atol=1e-4, rtol=0)
    assert max(batched) - min(batched) > 1e-3  # the tiny judge does tell pairs apart
    assert all(0.0 < score < 1.0 for score in batched)


def _installed_transformers_takes_image_features() -> bool:
    import inspect

    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel

    return "mm_encoder_outputs" in inspect.signature(Qwen2_5_VLModel.forward).parameters


needs_vision_reuse = pytest.mark.skipif(
    not _installed_transformers_takes_image_features(),
    reason="this transformers has no mm_encoder_outputs (5.18+): the judge falls back to per-pair encoding",
)


@needs_vision_reuse
def test_vision_reuse_gives_the_same_scores_as_encoding_per_pair(tiny_models, mixed_pairs):
    reused = open_judge(tiny_models["judge"], reuse_vision=True, cache_size=0).score_pairs(mixed_pairs)
    per_pair = open_judge(tiny_models["judge"], reuse_vision=False, cache_size=0).score_pairs(mixed_pairs)
    assert np.allclose(reused, per_pair, atol=1e-5, rtol=0)


@needs_vision_reuse
def test_each_distinct_image_is_encoded_once_per_call(tiny_models, mixed_pairs, monkeypatch):
    judge = open_judge(tiny_models["judge"], batch_size=3, cache_size=0)
    encoded = []
    original = judge.model.get_image_features

    def counting(pixel_values, image_grid_thw, **kwargs):
        encoded.append(len(image_grid_thw))
        return original(pixel_values, image_grid_thw, **kwargs)

    monkeypatch.setattr(judge.model, "get_image_features", counting)
    judge.score_pairs(mixed_pairs)  # 10 pairs of 5 images in 4 batches
    assert sum(encoded) == 5


def test_case_variants_sum_each_side(tiny_models, mixed_pairs):
    judge = open_judge(tiny_models["judge"], answers="case", cache_size=0)
    # the benchmark's variants; in the tiny byte-level tokenizer each is one token
    yes, no = ("Yes", "yes", "YES", "Y", "y"), ("No", "no", "NO", "N", "n")
    ids = judge.tokenizer.convert_tokens_to_ids
    assert judge.yes_ids == sorted(ids(list(yes))) and judge.no_ids == sorted(ids(list(no)))
    assert len(set(judge.yes_ids)) == 5 and len(set(judge.no_ids)) == 5
    got = judge.score_pairs(mixed_pairs[:3])
    expected = [reference_score(judge, pair, yes, no) for pair in mixed_pairs[:3]]
    exact = [reference_score(judge, pair) for pair in mixed_pairs[:3]]
    assert np.allclose(got, expected, atol=1e-5, rtol=0)
    assert not np.allclose(got, exact, atol=1e-5, rtol=0)


def test_unknown_answer_set_is_refused(tiny_models):
    with pytest.raises(InputError, match="answers should be one of exact, case, got 'maybe'"):
        open_judge(tiny_models["judge"], answers="maybe")


def test_cache_serves_repeated_pairs_and_identical_pixels(judge, mixed_pairs):
    judge.cache.clear()
    first = judge.score_pairs(mixed_pairs[:2])
    misses = judge.cache.misses
    copies = [PairRequest(pair.first.copy(), pair.second.copy(), pair.prompt) for pair in mixed_pairs[:2]]
    again = judge.score_pairs(copies)
    assert again == first
    assert judge.cache.misses == misses and judge.cache.hits >= 2
    other_prompt = PairRequest(mixed_pairs[0].first, mixed_pairs[0].second, set_consistency_prompt("a cat"))
    assert judge.score_pairs([other_prompt])[0] != first[0]


def test_score_cache_is_bounded_lru():
    cache = ScoreCache(max_entries=2)
    cache.put("a", 0.1)
    cache.put("b", 0.2)
    assert cache.get("a") == 0.1  # "a" is now the most recent
    cache.put("c", 0.3)
    assert cache.get("b") is None and cache.get("a") == 0.1 and len(cache) == 2
    with pytest.raises(InputError, match="cache size should be a whole number >= 0, got -1"):
        ScoreCache(-1)


def test_progress_is_reported_per_batch_and_cancel_stops(judge, mixed_pairs):
    judge.cache.clear()
    calls = []
    judge.prefix_sharing = False  # the one-pass batches (prefix sharing: see test_judge_prefix.py)
    try:
        judge.score_pairs(mixed_pairs, Hooks(progress=lambda done, total: calls.append((done, total))))
    finally:
        judge.prefix_sharing = True
    assert calls == [(4, 10), (8, 10), (10, 10)]

    class Stop(Exception):
        pass

    def cancel():
        raise Stop()

    judge.cache.clear()
    with pytest.raises(Stop):
        judge.score_pairs(mixed_pairs, Hooks(check_cancel=cancel))


def test_bad_pairs_are_refused(judge, mixed_pairs):
    pair = mixed_pairs[0]
    with pytest.raises(InputError, match="the second image should be a PIL image, got ndarray"):
        judge.score_pairs([PairRequest(pair.first, np.zeros((4, 4, 3)), PROMPT)])
    with pytest.raises(InputError, match="the prompt should be a non-empty text"):
        judge.score_pairs([PairRequest(pair.first, pair.second, "  ")])
    with pytest.raises(InputError, match="should be a PairRequest, got tuple"):
        judge.score_pairs([(pair.first, pair.second, PROMPT)])
    with pytest.raises(InputError, match="batch_size should be a whole number >= 1, got 0"):
        LocalJudge(judge.model, judge.processor, batch_size=0)


def test_explain_generates_text(judge, mixed_pairs):
    text = judge.explain(mixed_pairs[0], max_new_tokens=4)
    assert isinstance(text, str)
    with pytest.raises(InputError, match="max_new_tokens should be a whole number >= 1, got 0"):
        judge.explain(mixed_pairs[0], max_new_tokens=0)


def test_tokenizer_splitting_yes_is_refused(judge):
    from transformers import Qwen2Tokenizer

    from paco_core.testing.tokenizers import byte_level_vocab

    vocab, merges = byte_level_vocab(["system", "user", "assistant"])
    processor = type(judge.processor).from_pretrained(judge.model.config._name_or_path)
    processor.tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, pad_token=None)
    with pytest.raises(JudgeError, match="splits 'Yes' into 3 tokens"):
        LocalJudge(judge.model, processor)


def test_folders_that_are_not_a_qwen_judge_are_refused(tmp_path, tiny_models):
    diffusers = tmp_path / "flux"
    diffusers.mkdir()
    (diffusers / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    with pytest.raises(
        ModelLoadError, match="not a Qwen2.5-VL judge folder: it has no config.json. It holds model_index"
    ):
        open_judge(diffusers)
    other = tmp_path / "clip"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "clip"}))
    with pytest.raises(ModelLoadError, match="model_type 'clip', expected 'qwen2_5_vl'"):
        open_judge(other)
    with pytest.raises(ModelLoadError, match="not found: no such folder, and it is not a hub id"):
        open_judge(tmp_path / "missing" / "judge")
    with pytest.raises(
        ModelLoadError, match="no local folder of that name, and the hub id could not be fetched"
    ):
        open_judge("nobody-here/no-such-judge")
    with pytest.raises(InputError, match="dtype should be one of"):
        open_judge(tiny_models["judge"], dtype="int3")


def test_kept_judges_share_their_weights_until_released(tiny_models):
    release_judges()
    first = open_judge(tiny_models["judge"], dtype="fp32", device="cpu", keep_loaded=True)
    again = open_judge(tiny_models["judge"], dtype="fp32", device="cpu", keep_loaded=True, answers="case")
    assert again.model is first.model and again.answers == "case"  # options are per open, weights shared
    assert open_judge(tiny_models["judge"], dtype="fp32", device="cpu").model is not first.model  # uncached
    taken = open_judge(tiny_models["judge"], dtype="fp32", device="cpu", keep_loaded=False)
    assert taken.model is first.model
    assert (
        open_judge(tiny_models["judge"], dtype="fp32", device="cpu", keep_loaded=False).model
        is not first.model
    )
    assert release_judges() == 0


# -- LoRA adapters ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def judge_lora(tiny_models, tmp_path_factory):
    """A peft adapter on the tiny judge (non-zero init) and the unmerged PeftModel's scores."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2_5_VLForConditionalGeneration

    folder = tmp_path_factory.mktemp("judge-lora") / "adapter"
    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_models["judge"], dtype=torch.float32)
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, config)
    peft_model.save_pretrained(folder)
    return folder, peft_model.eval()


def test_lora_judge_scores_equal_the_peft_model(tiny_models, judge_lora, mixed_pairs):
    folder, peft_model = judge_lora
    base = open_judge(tiny_models["judge"], cache_size=0)
    merged = open_judge(tiny_models["judge"], lora=folder, cache_size=0)
    unmerged = open_judge(tiny_models["judge"], lora=folder, merge_lora=False, cache_size=0)
    peft_judge = LocalJudge(peft_model, base.processor, cache_size=0)
    expected = [reference_score(peft_judge, pair) for pair in mixed_pairs[:4]]
    assert np.allclose(merged.score_pairs(mixed_pairs[:4]), expected, atol=1e-4, rtol=0)
    assert np.allclose(unmerged.score_pairs(mixed_pairs[:4]), expected, atol=1e-4, rtol=0)
    assert not np.allclose(base.score_pairs(mixed_pairs[:4]), expected, atol=1e-4, rtol=0)


def test_lora_saved_with_transformers_4_key_names_loads(tiny_models, judge_lora, mixed_pairs, tmp_path):
    from safetensors.torch import load_file, save_file

    folder, _ = judge_lora
    legacy = tmp_path / "legacy"
    shutil.copytree(folder, legacy)
    state = load_file(folder / "adapter_model.safetensors")
    renamed = {
        key.replace("model.language_model.layers", "model.layers"): value for key, value in state.items()
    }
    assert renamed.keys() != state.keys()
    save_file(renamed, legacy / "adapter_model.safetensors")
    current = open_judge(tiny_models["judge"], lora=folder, cache_size=0).score_pairs(mixed_pairs[:2])
    assert open_judge(tiny_models["judge"], lora=legacy, cache_size=0).score_pairs(mixed_pairs[:2]) == current


def test_adapters_of_another_base_are_refused(tiny_models, tmp_path):
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import save_file

    from paco_core.testing.qwen_vl import build_qwen2_5_vl_model
    from paco_core.testing.tokenizers import build_qwen2_tokenizer

    narrow = build_qwen2_5_vl_model(build_qwen2_tokenizer(), seed=5, text_hidden_size=32)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(narrow, config).save_pretrained(tmp_path / "narrow")
    with pytest.raises(LoraError, match="does not fit this judge .*size mismatch"):
        open_judge(tiny_models["judge"], lora=tmp_path / "narrow")

    flux = tmp_path / "flux-lora"
    flux.mkdir()
    adapter = {
        "peft_type": "LORA",
        "r": 4,
        "lora_alpha": 4,
        "target_modules": ["to_q", "to_k"],
        "base_model_name_or_path": "black-forest-labs/FLUX.1-dev",
    }
    (flux / "adapter_config.json").write_text(json.dumps(adapter))
    save_file(
        {"base_model.model.transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(4, 8)},
        flux / "adapter_model.safetensors",
    )
    with pytest.raises(LoraError, match="trained on black-forest-labs/FLUX.1-dev"):
        open_judge(tiny_models["judge"], lora=flux)

    with pytest.raises(LoraError, match="is not a peft adapter folder: it has no adapter_config.json"):
        open_judge(tiny_models["judge"], lora=tmp_path)


@needs_vision_reuse
def test_vision_reuse_is_turned_off_when_transformers_would_drop_the_features(
    judge, mixed_pairs, caplog, monkeypatch
):
    # Regression: transformers 5.17 takes `mm_encoder_outputs` through **kwargs and drops
    # it, scoring image tokens as text (seen on a GPU: scores off by 0.96).
    from paco_core.reward import local

    assert local.supports_vision_reuse(judge.model)
    reference = judge.score_pairs(mixed_pairs[:2])

    monkeypatch.setattr(local, "supports_vision_reuse", lambda model: False)
    with caplog.at_level("WARNING", logger="paco_core.reward.local"):
        fallback = LocalJudge(judge.model, judge.processor, cache_size=0)
    assert fallback.reuse_vision is False
    assert "mm_encoder_outputs" in caplog.text
    assert fallback.score_pairs(mixed_pairs[:2]) == pytest.approx(reference, abs=1e-5)


def test_supports_vision_reuse_reads_the_core_signature_not_kwargs():
    from paco_core.reward.local import supports_vision_reuse

    class OldCore(torch.nn.Module):
        def get_rope_index(self, *args):
            return None

        def forward(self, input_ids=None, **kwargs):
            return input_ids

    class NewCore(OldCore):
        def forward(self, input_ids=None, mm_encoder_outputs=None, **kwargs):
            return input_ids

    assert not supports_vision_reuse(torch.nn.Sequential(OldCore()))
    assert supports_vision_reuse(torch.nn.Sequential(NewCore()))
