"""Reading an OpenAI chat-completions request as a judge question: the JSON body (nesting
bounded), the message's content parts, base64 ``image_url`` data URLs (pixel count and shape
checked from the header, pixels decoded later), the text (no lone surrogates), and the
``max_tokens`` / ``logprobs`` / ``top_logprobs`` asked for.

Every mistake raises :class:`RequestError` with a message that says what to fix; the
transport (:mod:`paco_core.reward.judge_server.http_handler`) answers it as a 4xx.

Example:
    >>> request = parse_chat_request(json_from_body(data), model_name="paco-judge", max_tokens_limit=512,
    ...                              max_logprobs=20, max_image_pixels=4096 * 4096)  # doctest: +SKIP
    >>> request.pair.prompt, request.top_logprobs  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
from dataclasses import dataclass
from typing import Any

from paco_core.errors import InputError
from paco_core.images import check_aspect_ratio, rgb_image
from paco_core.reward.backend import PairRequest, check_text

DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096
"""The most pixels of one image a server takes unless told otherwise (``ServerLimits.max_image_pixels``)."""


class RequestError(Exception):
    """A request the server refuses; ``status`` and ``code`` go back with the message."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_request"):
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class ChatRequest:
    """A validated judge question: the pair (images opened, their pixels not yet decoded:
    that happens while the request holds the judge) and what to answer."""

    pair: PairRequest
    max_tokens: int
    logprobs: bool
    top_logprobs: int


def json_from_body(data: bytes) -> Any:
    """The JSON value of a request body (RequestError when it is not UTF-8 JSON or nests too deeply)."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(f"the request body is not valid JSON: {error}.", code="invalid_json") from None
    except RecursionError:
        raise RequestError(
            "the request body nests lists or objects too deeply to read; send the judge's flat message shape.",
            code="invalid_json",
        ) from None


def parse_chat_request(
    body: Any, *, model_name: str, max_tokens_limit: int, max_logprobs: int, max_image_pixels: int
) -> ChatRequest:
    """Validate a request body for a server that serves ``model_name``, answers at most
    ``max_tokens_limit`` tokens and ``max_logprobs`` top log-probs, and takes images of at most
    ``max_image_pixels`` (raises RequestError with a message saying what to fix)."""
    if not isinstance(body, dict):
        raise RequestError(f"the request body should be a JSON object, got {json_type(body)}.")
    model = body.get("model", model_name)
    if model != model_name:
        raise RequestError(
            f"model {model!r} is not served here; this server serves {model_name!r}.",
            code="model_not_found",
        )
    if body.get("stream"):
        raise RequestError("stream is not supported by this server; send stream=false.")
    max_tokens = whole_number(
        body,
        ("max_tokens", "max_completion_tokens"),
        default=16,
        low=1,
        high=max_tokens_limit,
        hint=" (ask for fewer, or start the server with a larger --max-tokens)",
    )
    top_logprobs = whole_number(
        body,
        ("top_logprobs",),
        default=0,
        low=0,
        high=max_logprobs,
        hint=" (ask for fewer, or start the server with a larger --max-logprobs)",
    )
    logprobs = body.get("logprobs", False)
    if logprobs is not None and not isinstance(logprobs, bool):
        raise RequestError(f"logprobs should be true or false, got {json_type(logprobs)}.")
    pair = pair_from_messages(body.get("messages"), max_image_pixels)
    return ChatRequest(pair, max_tokens, bool(logprobs), top_logprobs)


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def whole_number(
    body: dict, names: tuple[str, ...], *, default: int, low: int, high: int, hint: str = ""
) -> int:
    """The first of ``names`` present in ``body`` as a whole number in [low, high]."""
    name = next((key for key in names if body.get(key) is not None), None)
    if name is None:
        return default
    value = body[name]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{name} should be a whole number, got {json_type(value)}.")
    if value < low:
        raise RequestError(f"{name} should be >= {low}, got {value}.")
    if value > high:
        raise RequestError(f"{name} {value} is above this server's maximum of {high}{hint}.")
    return value


def pair_from_messages(messages: Any, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> PairRequest:
    """The (first image, second image, prompt) of a judge chat request."""
    if not isinstance(messages, list) or not messages:
        raise RequestError(f"messages should be a non-empty list, got {json_type(messages)}.")
    last = messages[-1]
    if not isinstance(last, dict):
        raise RequestError(f"each message should be an object with role and content, got {json_type(last)}.")
    content = last.get("content")
    if not isinstance(content, list):
        raise RequestError(
            "the last message's content should be a list of image_url and text parts, "
            f"got {json_type(content)}."
        )
    images, texts = [], []
    for number, part in enumerate(content, 1):
        if not isinstance(part, dict):
            raise RequestError(
                f'content part {number} should be an object like {{"type": "text", "text": ...}}, '
                f"got {json_type(part)}."
            )
        kind = part.get("type")
        if kind == "image_url":
            image_url = part.get("image_url")
            url = image_url.get("url") if isinstance(image_url, dict) else None
            if url is None:
                raise RequestError(
                    f"content part {number} (image_url) has no image_url.url; "
                    'send {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}.'
                )
            images.append((number, url))
        elif kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise RequestError(
                    f"content part {number} (text) should have a string text, got {json_type(text)}."
                )
            try:
                check_text(text, f"content part {number} (text)")
            except InputError as error:
                raise RequestError(str(error)) from None
            texts.append(text)
        else:
            raise RequestError(f"content part {number} has type {kind!r}; use 'image_url' or 'text'.")
    if len(images) != 2 or not texts:
        raise RequestError(
            f"a judge request holds two images and a text, got {len(images)} image(s) and {len(texts)} text(s)."
        )
    first, second = (open_data_url(url, max_image_pixels, part=number) for number, url in images)
    return PairRequest(first, second, "".join(texts))


def decoded_pair(pair: PairRequest) -> PairRequest:
    """``pair`` with its opened images decoded to RGB (``pair_from_messages`` only opens them)."""
    first, second = (_decoded(image, part) for part, image in enumerate((pair.first, pair.second), 1))
    return PairRequest(first, second, pair.prompt)


def open_data_url(url: Any, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, part: int = 0) -> Any:
    """A PIL image opened (header read, pixels not decoded) from a base64 data URL, refused
    (RequestError) when it is no image, has more than ``max_image_pixels`` pixels or a
    shape the judge cannot take."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    where = f"content part {part}" if part else "an image"
    if not isinstance(url, str) or not url.startswith("data:image/") or ";base64," not in url:
        raise RequestError(f"{where}: images should be base64 data URLs (data:image/png;base64,...).")
    try:
        data = base64.b64decode(url.split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError) as error:
        raise RequestError(f"{where}: the image's base64 could not be decoded: {error}.") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_image_pixels:
                raise RequestError(
                    f"{where}: the image is {width}x{height} = {width * height} pixels, above this server's "
                    f"limit of {max_image_pixels}; send a smaller image.",
                    code="image_too_large",
                )
            check_aspect_ratio((width, height), f"{where}: the image")
            return image
    except InputError as error:
        raise RequestError(str(error)) from None
    except Image.DecompressionBombError as error:
        raise RequestError(
            f"{where}: the image is too large to decode ({error}).", code="image_too_large"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise RequestError(f"{where}: the image could not be decoded: {error}.") from None


def _decoded(image: Any, part: int) -> Any:
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
            return rgb_image(image)
    except Image.DecompressionBombError as error:
        raise RequestError(
            f"image {part} of the pair is too large to decode ({error}).", code="image_too_large"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise RequestError(f"image {part} of the pair could not be decoded: {error}.") from None
