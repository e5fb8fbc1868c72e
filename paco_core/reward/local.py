"""The fast local judge backend: a Qwen2.5-VL judge run in-process with transformers.

How a call is made fast (and still equal to one pair at a time):

1. Every distinct image of the call is preprocessed once; with ``reuse_vision`` its
   vision encoding (``get_image_features``) is computed once, right before the first
   batch that needs it, and dropped after the last one. The language model receives
   the features through ``mm_encoder_outputs``, which transformers scatters into the
   image placeholder tokens exactly as if it had encoded the pixels itself.
2. Pairs go through the language model in left-padded batches. Each row's 3D rope
   positions are its unpadded positions (the model's own ``get_rope_index``, computed
   once per prompt and image-grid layout and reused), placed after the padding.
3. Only the last position goes through ``lm_head`` (``logits_to_keep=1``).
4. With ``prefix_sharing``, pairs that start with the same image reuse the key/value
   cache of their common prefix (system text and first image), and rows are batched only
   with rows of the same length, so no padding is computed (see
   :mod:`~paco_core.reward.shared_prefix`).
5. Scores already seen (same pixels, same prompt, same answer set) come from a bounded
   LRU cache.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from paco_core.callbacks import NO_HOOKS, Hooks
from paco_core.errors import InputError, JudgeError
from paco_core.reward.backend import (
    PairRequest,
    answer_tokens,
    check_pairs,
    pair_digests,
    score_through_cache,
)
from paco_core.reward.cache import DEFAULT_CACHE_SIZE, ScoreCache
from paco_core.reward.shared_prefix import equal_length_batches, plan_windows, worth_sharing

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 8
PAIRS_PER_PREFIX_WINDOW = 4
"""With prefix sharing, a window of prefix caches holds about this many batches of pairs."""
MAX_CACHED_LAYOUTS = 1024
"""Prompt layouts (token ids + rope positions) kept per (prompt, first grid, second grid)."""


@dataclass
class PreparedImage:
    """One distinct image of a call: its patches, grid and (once encoded) its features.

    Attributes:
        pixel_values: the processor's flattened patches, shape ``(num_patches, patch_dim)``.
        grid_thw: ``(3,)`` temporal, height, width patch counts.
        num_tokens: placeholder tokens the image takes in the prompt (patches / merge**2).
        embeds: vision features ``(num_tokens, hidden)`` once encoded, else None.
    """

    pixel_values: Any
    grid_thw: Any
    num_tokens: int
    embeds: Any = None


@dataclass(frozen=True)
class RowLayout:
    """One pair's unpadded prompt: token ids ``(L,)`` and 3D rope positions ``(3, L)``."""

    input_ids: Any
    position_ids: Any


class LocalJudge:
    """A PaCo-Reward judge (any Qwen2.5-VL chat model) answering Yes/No in-process.

    Open it with ``paco_core.reward.open_judge``; the constructor takes an already
    loaded model and processor.

    Args:
        model: a ``Qwen2_5_VLForConditionalGeneration`` (LoRA merged or peft-wrapped), in eval mode.
        processor: its ``AutoProcessor`` (tokenizer + image processor + chat template).
        answers: "exact" (only ``Yes`` / ``No``) or "case" (also yes/YES/Y/y, no/NO/N/n).
        batch_size: pairs per language-model forward pass.
        reuse_vision: encode each distinct image once per call and reuse the features.
        prefix_sharing: pairs with the same first image share the key/value cache of the
            prompt up to that image (needs ``reuse_vision``; same scores, less compute).
        cache_size: pair scores kept in the LRU cache (0 disables it).
        name: a label for messages (defaults to the model's folder).

    Example:
        >>> judge = open_judge("models/PaCo-Reward-7B")  # doctest: +SKIP
        >>> judge.score_pairs([PairRequest(img_a, img_b, set_consistency_prompt("a cat"))])  # doctest: +SKIP
        [0.93]
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        answers: str = "exact",
        batch_size: int = DEFAULT_BATCH_SIZE,
        reuse_vision: bool = True,
        prefix_sharing: bool = True,
        cache_size: int = DEFAULT_CACHE_SIZE,
        name: str | None = None,
    ):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size should be a whole number >= 1, got {batch_size!r}.")
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.answers = answers
        self.batch_size = batch_size
        self.reuse_vision = reuse_vision
        self.prefix_sharing = prefix_sharing
        self.cache = ScoreCache(cache_size)
        self.name = name or str(getattr(model.config, "_name_or_path", "") or "local judge")
        self.image_token = processor.image_token
        self.image_token_id = int(model.config.image_token_id)
        self.vision_end_id = int(model.config.vision_end_token_id)
        self.merge_length = int(processor.image_processor.merge_size) ** 2
        self.yes_ids, self.no_ids = self._answer_token_ids(answers)
        self._layouts: OrderedDict[tuple, RowLayout] = OrderedDict()
        pad_token_id = self.tokenizer.pad_token_id
        self.pad_token_id = int(
            pad_token_id if pad_token_id is not None else self.tokenizer.eos_token_id or 0
        )
        self._rope_host = next(
            (module for module in model.modules() if hasattr(module, "get_rope_index")), None
        )
        if self._rope_host is None:
            raise JudgeError(
                f"{self.name}: the model has no get_rope_index; the judge must be a Qwen2.5-VL model."
            )
        if self.reuse_vision and not supports_vision_reuse(model):
            # Older transformers accept the keyword through **kwargs and silently drop it:
            # the image tokens would then be scored as text (measured: scores off by 0.96).
            logger.warning(
                "%s: this transformers version's Qwen2.5-VL forward has no `mm_encoder_outputs`; "
                "each pair's images are encoded in its own pass instead (same scores, slower). "
                "Upgrade transformers (>= 5.24 tested) for the faster path.",
                self.name,
            )
            self.reuse_vision = False
        if self.prefix_sharing and not supports_prefix_sharing(model):
            # A forward that takes the cache under another name would drop it through
            # **kwargs and score the suffixes without their prefix.
            logger.warning(
                "%s: this transformers version's Qwen2.5-VL forward has no `cache` argument; pairs are "
                "scored without prefix sharing (same scores, slower).",
                self.name,
            )
            self.prefix_sharing = False
        self._lock = threading.RLock()
        self._pinned: dict[str, PreparedImage] = {}

    def move_to(self, device: Any) -> None:
        """Move the judge's weights (e.g. to the CPU between scoring phases, back to the GPU)."""
        with self._lock:
            self.model.to(device)
            for image in self._pinned.values():
                if image.embeds is not None:
                    image.embeds = image.embeds.to(device)

    def pin_images(self, images: Sequence[Any]) -> None:
        """Encode ``images`` now and keep their vision features for every later call.

        For images asked about again and again (a training job's reference images): each
        is preprocessed and encoded once per judge, not once per call. Scores are the same
        as without pinning (the same features reach the same placeholders).
        """
        import torch

        from paco_core.reward.backend import image_digest

        distinct = {image_digest(image): image for image in images}
        new = {digest: image for digest, image in distinct.items() if digest not in self._pinned}
        if not new:
            return
        prepared = self._preprocess(new)
        if self.reuse_vision:
            with self._lock, torch.inference_mode():
                self._encode_missing(list(prepared.values()))
        self._pinned.update(prepared)

    @property
    def device(self):
        return next(self.model.parameters()).device

    @property
    def dtype(self):
        return next(self.model.parameters()).dtype

    def score_pairs(self, pairs: Sequence[PairRequest], hooks: Hooks = NO_HOOKS) -> list[float]:
        """The Yes-probability of each pair, in order.

        Args:
            pairs: the questions (first image, second image, prompt).
            hooks: progress (pairs done, total) and cancel callbacks, called after each batch.

        Returns:
            One score in [0, 1] per pair.
        """

        def score_missing(todo_pairs: list[PairRequest], todo_digests: list[tuple[str, str]]) -> list[float]:
            scores: dict[int, float] = {}
            for batch_indices, logprobs in self._run_batches(todo_pairs, todo_digests, hooks):
                scores.update(zip(batch_indices, self._scores_from_logprobs(logprobs), strict=True))
            return [scores[index] for index in range(len(todo_pairs))]

        return score_through_cache(self.cache, pairs, self.answers, score_missing, hooks)

    def first_token_logprobs(self, pairs: Sequence[PairRequest], hooks: Hooks = NO_HOOKS) -> list[Any]:
        """Log-probabilities over the whole vocabulary of each pair's first answer token.

        Returns:
            One float32 CPU tensor of shape ``(vocab_size,)`` per pair (not cached).
        """
        check_pairs(pairs)
        result: list[Any] = [None] * len(pairs)
        for batch_indices, logprobs in self._run_batches(list(pairs), pair_digests(pairs), hooks):
            for index, row in zip(batch_indices, logprobs, strict=True):
                result[index] = row
        return result

    def explain(self, pair: PairRequest, max_new_tokens: int = 256, max_time: float | None = None) -> str:
        """The judge's generated answer for a pair: "Yes"/"No" followed by its reasons.

        Args:
            pair: the question.
            max_new_tokens: the most tokens to generate.
            max_time: stop generating after this many seconds (None: no time limit).

        Returns:
            The decoded answer text (greedy decoding).
        """
        import torch

        check_pairs([pair])
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise InputError(f"max_new_tokens should be a whole number >= 1, got {max_new_tokens!r}.")
        text = self.processor.apply_chat_template(
            chat_messages(pair.prompt), tokenize=False, add_generation_prompt=True
        )
        inputs = self.processor(text=[text], images=[pair.first, pair.second], return_tensors="pt")
        inputs = inputs.to(self.device)
        with self._lock, torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                max_time=max_time,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        return self.tokenizer.decode(new_tokens, skip_special_tokens=True).strip()

    # -- the batched forward pass -------------------------------------------------------

    def _run_batches(
        self, pairs: list[PairRequest], digests: list[tuple[str, str]], hooks: Hooks
    ) -> Iterator[tuple[list[int], Any]]:
        """Yield (pair indices, log-probabilities ``(B, vocab)``) batch by batch."""
        import torch

        if self.reuse_vision and self.prefix_sharing and worth_sharing(digests):
            yield from self._run_shared_prefix_batches(pairs, digests, hooks)
            return
        prepared = self._prepare_images(pairs, digests)
        batches = [
            list(range(start, min(start + self.batch_size, len(pairs))))
            for start in range(0, len(pairs), self.batch_size)
        ]
        last_batch_of = {
            digest: number for number, batch in enumerate(batches) for i in batch for digest in digests[i]
        }
        done = 0
        for number, batch in enumerate(batches):
            hooks.check_cancel()
            with self._lock, torch.inference_mode():
                if self.reuse_vision:
                    self._encode_missing([prepared[d] for i in batch for d in digests[i]])
                logprobs = self._forward_last_logprobs(
                    [pairs[i].prompt for i in batch], [[prepared[d] for d in digests[i]] for i in batch]
                )
            for digest in {d for i in batch for d in digests[i]}:
                if last_batch_of[digest] == number and digest not in self._pinned:
                    prepared[digest].embeds = None  # free the features once no later batch needs them
            done += len(batch)
            yield batch, logprobs
            hooks.step(done, len(pairs))

    def _run_shared_prefix_batches(
        self, pairs: list[PairRequest], digests: list[tuple[str, str]], hooks: Hooks
    ) -> Iterator[tuple[list[int], Any]]:
        """``_run_batches`` with the prefix (system text + first image) computed once per first image.

        Pairs are taken window by window (a bounded number of prefix caches at once); in a
        window, the prefixes go through the model in equal-length batches, then the
        suffixes (second image + question) in equal-length batches on top of their
        prefixes' caches. Nothing is padded.
        """
        import torch

        prepared = self._prepare_images(pairs, digests)
        rows = [
            self._row_layout(pair.prompt, [prepared[d] for d in digest])
            for pair, digest in zip(pairs, digests, strict=True)
        ]
        splits = [self._prefix_length(row) for row in rows]
        windows = plan_windows(
            digests, max_prefixes=self.batch_size, max_pairs=PAIRS_PER_PREFIX_WINDOW * self.batch_size
        )
        last_window_of = {
            digest: number
            for number, window in enumerate(windows)
            for i in window.pairs
            for digest in digests[i]
        }
        done = 0
        for number, window in enumerate(windows):
            hooks.check_cancel()
            owner = {}  # first digest -> a pair index that starts with it
            for index in window.pairs:
                owner.setdefault(digests[index][0], index)
            prefix_lengths = {first: splits[owner[first]] for first in window.prefixes}
            caches: dict[str, list[tuple[Any, Any]]] = {}
            for batch in equal_length_batches(window.prefixes, prefix_lengths, self.batch_size):
                with self._lock, torch.inference_mode():
                    images = [prepared[first] for first in batch]
                    self._encode_missing(images)
                    layers = self._forward_prefixes([rows[owner[first]] for first in batch], images)
                for row, first in enumerate(batch):
                    caches[first] = [(keys[row : row + 1], values[row : row + 1]) for keys, values in layers]
            suffix_lengths = {i: (splits[i], rows[i].input_ids.shape[0]) for i in window.pairs}
            for batch in equal_length_batches(window.pairs, suffix_lengths, self.batch_size):
                hooks.check_cancel()
                with self._lock, torch.inference_mode():
                    images = [prepared[digests[i][1]] for i in batch]
                    self._encode_missing(images)
                    logprobs = self._forward_suffixes(
                        [rows[i] for i in batch],
                        splits[batch[0]],
                        images,
                        [caches[digests[i][0]] for i in batch],
                    )
                done += len(batch)
                yield batch, logprobs
                hooks.step(done, len(pairs))
            del caches
            for digest in {d for i in window.pairs for d in digests[i]}:
                if last_window_of[digest] == number and digest not in self._pinned:
                    prepared[digest].embeds = None  # free the features once no later window needs them

    def _prefix_length(self, row: RowLayout) -> int:
        """Tokens up to and including the end marker of the first image."""
        ends = (row.input_ids == self.vision_end_id).nonzero()
        if len(ends) != 2:
            raise JudgeError(
                f"{self.name}: a pair's prompt has {len(ends)} image end markers instead of 2; the processor "
                "is not a Qwen2.5-VL processor."
            )
        return int(ends[0, 0]) + 1

    def _forward_prefixes(self, rows: list[RowLayout], images: list[PreparedImage]) -> list[tuple[Any, Any]]:
        """Equal-length prefixes in one pass; their keys and values per layer, ``(B, heads, P, dim)``."""
        import torch
        from transformers import DynamicCache

        length = self._prefix_length(rows[0])
        cache = DynamicCache()
        self.model(
            input_ids=torch.stack([row.input_ids[:length] for row in rows]).to(self.device),
            attention_mask=torch.ones((len(rows), length), dtype=torch.long, device=self.device),
            position_ids=torch.stack([row.position_ids[:, :length] for row in rows], dim=1).to(self.device),
            image_grid_thw=torch.stack([image.grid_thw for image in images]).to(self.device),
            mm_encoder_outputs={"image": self._features(images)},
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _forward_suffixes(
        self,
        rows: list[RowLayout],
        prefix_length: int,
        images: list[PreparedImage],
        prefix_caches: list[list[tuple[Any, Any]]],
    ) -> Any:
        """Equal-length suffixes on top of their prefixes' caches; last-position log-softmax, ``(B, vocab)``."""
        import torch
        from transformers import DynamicCache

        total = rows[0].input_ids.shape[0]
        num_layers = len(prefix_caches[0])
        cache = DynamicCache(
            ddp_cache_data=[
                (
                    torch.cat([layers[layer][0] for layers in prefix_caches]),
                    torch.cat([layers[layer][1] for layers in prefix_caches]),
                )
                for layer in range(num_layers)
            ]
        )
        output = self.model(
            input_ids=torch.stack([row.input_ids[prefix_length:] for row in rows]).to(self.device),
            attention_mask=torch.ones((len(rows), total), dtype=torch.long, device=self.device),
            position_ids=torch.stack([row.position_ids[:, prefix_length:] for row in rows], dim=1).to(
                self.device
            ),
            image_grid_thw=torch.stack([image.grid_thw for image in images]).to(self.device),
            mm_encoder_outputs={"image": self._features(images)},
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return torch.log_softmax(output.logits[:, -1].float(), dim=-1).cpu()

    @staticmethod
    def _features(images: list[PreparedImage]) -> Any:
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        return BaseModelOutputWithPooling(pooler_output=tuple(image.embeds for image in images))

    def _prepare_images(
        self, pairs: list[PairRequest], digests: list[tuple[str, str]]
    ) -> dict[str, PreparedImage]:
        """Run the image processor once over the distinct images of the call (pinned images: never again)."""
        distinct: dict[str, Any] = {}
        for pair, (first, second) in zip(pairs, digests, strict=True):
            distinct.setdefault(first, pair.first)
            distinct.setdefault(second, pair.second)
        prepared = self._preprocess({d: image for d, image in distinct.items() if d not in self._pinned})
        prepared.update({d: self._pinned[d] for d in distinct if d in self._pinned})
        return prepared

    def _preprocess(self, distinct: dict[str, Any]) -> dict[str, PreparedImage]:
        if not distinct:
            return {}
        images = [image.convert("RGB") for image in distinct.values()]
        processed = self.processor.image_processor(images=images, return_tensors="pt")
        grids = processed["image_grid_thw"]
        patch_counts = grids.prod(-1).tolist()
        patches = processed["pixel_values"].split(patch_counts)
        return {
            digest: PreparedImage(pixel_values=patch, grid_thw=grid, num_tokens=count // self.merge_length)
            for digest, patch, grid, count in zip(distinct, patches, grids, patch_counts, strict=True)
        }

    def _encode_missing(self, images: list[PreparedImage]) -> None:
        """Compute the vision features of the images that have none yet, in one pass."""
        import torch

        missing = list({id(image): image for image in images if image.embeds is None}.values())
        if not missing:
            return
        pixel_values = torch.cat([image.pixel_values for image in missing]).to(self.device, self.dtype)
        grids = torch.stack([image.grid_thw for image in missing]).to(self.device)
        features = self.model.get_image_features(pixel_values, grids, return_dict=True).pooler_output
        for image, embeds in zip(missing, features, strict=True):
            image.embeds = embeds

    def _forward_last_logprobs(self, prompts: list[str], images: list[list[PreparedImage]]) -> Any:
        """One left-padded forward pass; log-softmax of the last position, ``(B, vocab)`` float32 CPU."""
        import torch
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        rows = [self._row_layout(prompt, pair) for prompt, pair in zip(prompts, images, strict=True)]
        length = max(row.input_ids.shape[0] for row in rows)
        input_ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        position_ids = torch.zeros((3, len(rows), length), dtype=torch.long)
        for index, row in enumerate(rows):  # left padding: each row ends at the last column
            start = length - row.input_ids.shape[0]
            input_ids[index, start:] = row.input_ids
            attention_mask[index, start:] = 1
            position_ids[:, index, start:] = row.position_ids
        flat = [image for pair in images for image in pair]
        inputs: dict[str, Any] = {
            "input_ids": input_ids.to(self.device),
            "attention_mask": attention_mask.to(self.device),
            "position_ids": position_ids.to(self.device),
            "image_grid_thw": torch.stack([image.grid_thw for image in flat]).to(self.device),
        }
        if self.reuse_vision:
            features = BaseModelOutputWithPooling(pooler_output=tuple(image.embeds for image in flat))
            inputs["mm_encoder_outputs"] = {"image": features}
        else:
            inputs["pixel_values"] = torch.cat([image.pixel_values for image in flat]).to(
                self.device, self.dtype
            )
        output = self.model(**inputs, logits_to_keep=1, use_cache=False)
        return torch.log_softmax(output.logits[:, -1].float(), dim=-1).cpu()

    def _row_layout(self, prompt: str, pair: list[PreparedImage]) -> RowLayout:
        """Token ids and 3D rope positions of one pair's unpadded prompt.

        They depend only on the prompt and the two images' patch grids, so they are built
        once per such layout (tokenizer, then the model's own ``get_rope_index``) and reused.
        """
        import torch

        key = (prompt, *(tuple(image.grid_thw.tolist()) for image in pair))
        layout = self._layouts.get(key)
        if layout is not None:
            self._layouts.move_to_end(key)
            return layout
        text = self._prompt_text(prompt, [image.num_tokens for image in pair])
        ids = self.tokenizer(text, return_tensors="pt")["input_ids"]
        positions, _ = self._rope_host.get_rope_index(
            ids,
            mm_token_type_ids=(ids == self.image_token_id).to(torch.int32),
            image_grid_thw=torch.stack([image.grid_thw for image in pair]),
        )
        layout = RowLayout(input_ids=ids[0], position_ids=positions[:, 0])
        self._layouts[key] = layout
        while len(self._layouts) > MAX_CACHED_LAYOUTS:
            self._layouts.popitem(last=False)
        return layout

    def _prompt_text(self, prompt: str, image_token_counts: list[int]) -> str:
        """The chat-template text of a pair with each image placeholder expanded to its token count."""
        text = self.processor.apply_chat_template(
            chat_messages(prompt), tokenize=False, add_generation_prompt=True
        )
        parts = text.split(self.image_token)
        if len(parts) != 3:
            raise JudgeError(
                f"{self.name}: the chat template put {len(parts) - 1} image placeholders in a two-image "
                "message; the processor is not a Qwen2.5-VL processor."
            )
        before, between, after = parts
        first, second = image_token_counts
        return before + self.image_token * first + between + self.image_token * second + after

    # -- the score rule -----------------------------------------------------------------

    def _answer_token_ids(self, answers: str) -> tuple[list[int], list[int]]:
        """Token ids of the answer set; the exact ``Yes`` and ``No`` must be single tokens."""
        yes_tokens, no_tokens = answer_tokens(answers)
        ids: list[list[int]] = []
        for tokens in (yes_tokens, no_tokens):
            side: list[int] = []
            for token in tokens:
                encoded = self.tokenizer.encode(token, add_special_tokens=False)
                if len(encoded) == 1:
                    side.append(encoded[0])
                elif token in ("Yes", "No"):
                    raise JudgeError(
                        f"{self.name}: the tokenizer splits {token!r} into {len(encoded)} tokens {encoded}; a "
                        "PaCo-Reward judge reads the probability of a single-token Yes/No answer. Use a "
                        "Qwen2.5-VL judge (e.g. X-GenGroup/PaCo-Reward-7B)."
                    )
                else:
                    logger.debug("answer variant %r is not a single token; not counted", token)
            ids.append(sorted(set(side)))
        return ids[0], ids[1]

    def _scores_from_logprobs(self, logprobs: Any) -> list[float]:
        """``P(yes) / (P(yes) + P(no))`` per row of ``(B, vocab)`` log-probabilities."""
        import torch

        log_yes = torch.logsumexp(logprobs[:, self.yes_ids], dim=-1)
        log_no = torch.logsumexp(logprobs[:, self.no_ids], dim=-1)
        return torch.sigmoid(log_yes - log_no).tolist()


def supports_vision_reuse(model: Any) -> bool:
    """Whether the model's Qwen2.5-VL core takes precomputed image features.

    The check reads the signature of the module that owns ``get_rope_index``, not the
    top-level forward: the top level forwards ``**kwargs``, which accepts any name.
    """
    import inspect

    for module in model.modules():
        if (
            hasattr(module, "get_rope_index")
            and "mm_encoder_outputs" in inspect.signature(module.forward).parameters
        ):
            return True
    return False


def supports_prefix_sharing(model: Any) -> bool:
    """Whether the model's Qwen2.5-VL core takes a key/value cache as ``cache`` (transformers 5)."""
    import inspect

    return any(
        hasattr(module, "get_rope_index") and "cache" in inspect.signature(module.forward).parameters
        for module in model.modules()
    )


def chat_messages(prompt: str) -> list[dict]:
    """The single user turn the judge expects: first image, second image, then the text."""
    return [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": prompt}],
        }
    ]
