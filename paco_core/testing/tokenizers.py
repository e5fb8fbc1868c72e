"""Hand-made tokenizers for the tiny models: no download, no trainer, same bytes every run.

The ``tokenizers`` trainers are not deterministic across processes (hash order), so every
vocabulary here is written out by hand: the 256 byte symbols of byte-level BPE plus merges
that turn a short list of words into single tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
"""Qwen2.5-VL's special tokens, in the order (and so the relative ids) of the real model."""

ANSWER_WORDS = ("Yes", "No", "yes", "no", "YES", "NO")
"""Judge answers that must each be one token, bare and after a space."""

QWEN_WORDS = (
    *ANSWER_WORDS,
    "system",
    "user",
    "assistant",
    "the",
    "image",
    "images",
    "and",
    "of",
    "in",
    "with",
    "two",
    "consistency",
    "style",
    "identity",
)
"""Words the tiny Qwen tokenizer keeps whole (each also with a leading space)."""

PROMPT_WORDS = (
    "a",
    "an",
    "the",
    "of",
    "and",
    "in",
    "with",
    "on",
    "photo",
    "image",
    "panel",
    "images",
    "style",
    "cat",
    "dog",
    "girl",
    "boy",
    "man",
    "woman",
    "red",
    "blue",
    "green",
    "hat",
    "grid",
    "layout",
    "top",
    "bottom",
    "left",
    "right",
    "make",
    "change",
    "add",
    "remove",
)
"""Words the tiny CLIP and T5 tokenizers keep whole; any other text still encodes."""

T5_CHARACTERS = tuple(chr(code) for code in range(ord("!"), ord("~") + 1))
"""Single characters the tiny T5 vocabulary falls back to (anything else becomes <unk>)."""

QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""The Qwen2-VL chat template: images as <|vision_start|><|image_pad|><|vision_end|>, in order."""


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for the bytes 0..255, in byte order.

    Printable Latin-1 bytes stand for themselves; every other byte maps to the next free
    code point from 256 upwards (so a space is ``Ġ`` and a newline ``Ċ``).
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    symbols = {}
    next_free = 256
    for byte in range(256):
        if byte in printable:
            symbols[byte] = chr(byte)
        else:
            symbols[byte] = chr(next_free)
            next_free += 1
    return [symbols[byte] for byte in range(256)]


def _apply_merges(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Byte-pair encode one pre-token: merge the lowest-ranked adjacent pair until none applies."""
    while len(symbols) > 1:
        pairs = [
            (ranks.get(pair, len(ranks)), index)
            for index, pair in enumerate(zip(symbols[:-1], symbols[1:], strict=True))
        ]
        rank, index = min(pairs)
        if rank == len(ranks):
            break
        symbols = [*symbols[:index], symbols[index] + symbols[index + 1], *symbols[index + 2 :]]
    return symbols


def whole_word_merges(words: Iterable[Sequence[str]]) -> list[tuple[str, str]]:
    """Merges that make each word (given as its base symbols) one token, appended word by word.

    Each word is first encoded with the merges so far, then joined left to right with new
    merges. Appending never changes how an earlier word encodes: its own merges rank lower
    and always leave a pair to merge until it is whole.
    """
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for symbols in words:
        pieces = _apply_merges(list(symbols), ranks)
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            if pair not in ranks:  # (a pair already ranked applies by itself once both halves exist)
                ranks[pair] = len(merges)
                merges.append(pair)
            pieces = [pieces[0] + pieces[1], *pieces[2:]]
    return merges


def _vocab_with_merges(base_symbols: Sequence[str], merges: list[tuple[str, str]]) -> dict[str, int]:
    vocab = {symbol: index for index, symbol in enumerate(base_symbols)}
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    return vocab


def byte_level_vocab(words: Iterable[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A GPT-2 style byte-level BPE vocabulary (256 byte symbols + merged words) and its merges.

    Args:
        words: words to keep whole; each is also added with a leading space.

    Returns:
        ``(vocab, merges)``: token -> id, and the merges as (left, right) pairs in rank order.
    """
    symbols = byte_symbols()
    spaced = [variant for word in words for variant in (word, " " + word)]
    merges = whole_word_merges([symbols[byte] for byte in word.encode("utf-8")] for word in spaced)
    return _vocab_with_merges(symbols, merges), merges


def clip_vocab(words: Iterable[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP-style BPE vocabulary: byte symbols, the same with ``</w>`` (word end), merged words.

    CLIP lower-cases its text and marks the last symbol of each word with ``</w>``.
    """
    symbols = byte_symbols()
    base = [*symbols, *(symbol + "</w>" for symbol in symbols)]

    def word_symbols(word: str) -> list[str]:
        pieces = [symbols[byte] for byte in word.lower().encode("utf-8")]
        return [*pieces[:-1], pieces[-1] + "</w>"]

    merges = whole_word_merges(word_symbols(word) for word in words)
    return _vocab_with_merges(base, merges), merges


def build_qwen2_tokenizer(model_max_length: int = 32768):
    """A tiny Qwen2 tokenizer with the Qwen-VL special tokens and the Qwen2-VL chat template.

    ``Yes``/``No`` (and their case and space variants) are single tokens; the role names are
    too. Everything else falls back to bytes, so any text encodes.
    """
    from transformers import Qwen2Tokenizer

    vocab, merges = byte_level_vocab(QWEN_WORDS)
    for token in QWEN_SPECIAL_TOKENS:  # fixed ids after the BPE tokens, in the real order
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        errors="replace",
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL_TOKENS)})
    tokenizer.chat_template = QWEN2_VL_CHAT_TEMPLATE
    return tokenizer


def build_clip_tokenizer(model_max_length: int = 77):
    """A tiny CLIP tokenizer (byte-level BPE with ``</w>`` word ends), as FLUX and CLIP use."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab(PROMPT_WORDS)
    for token in ("<|startoftext|>", "<|endoftext|>"):
        vocab[token] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


def build_t5_tokenizer(model_max_length: int = 512):
    """A tiny T5 tokenizer: a unigram vocabulary of whole prompt words and single characters."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [("\u2581" + word, -4.0) for word in PROMPT_WORDS]
    vocab += [(character, -8.0) for character in T5_CHARACTERS]
    vocab += [("\u2581" + character, -9.0) for character in T5_CHARACTERS]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=model_max_length)
