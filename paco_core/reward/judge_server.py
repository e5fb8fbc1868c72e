"""A small OpenAI-compatible chat-completions server answering from a local judge.

For tests (a real HTTP server around the tiny judge) and for users who want one judge
process shared by several ComfyUI instances or training runs without installing vLLM.
It answers ``GET /v1/models`` and ``POST /v1/chat/completions`` for the judge's
question shape: one user message holding two images (base64 data URLs) and a text.
With ``logprobs`` it returns the first answer token's ``top_logprobs`` computed from the
judge's full-vocabulary log-softmax, as vLLM does. It binds 127.0.0.1 by default.

Example:
    >>> server = JudgeHTTPServer(open_judge("models/PaCo-Reward-7B")).start()  # doctest: +SKIP
    >>> JudgeClient(server.url).score_pairs(pairs)  # doctest: +SKIP
    >>> server.close()  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from paco_core.reward.backend import PairRequest
from paco_core.reward.local import LocalJudge

logger = logging.getLogger(__name__)

DEFAULT_MAX_LOGPROBS = 20


class RequestError(Exception):
    """A request the server answers with HTTP 400 (its message goes back to the client)."""


class JudgeHTTPServer:
    """Serves one ``LocalJudge`` over HTTP in a background thread.

    Args:
        judge: the local judge that answers.
        host: the address to bind (127.0.0.1: reachable from this machine only).
        port: the port; 0 picks a free one (read it back from ``url``).
        model_name: the name ``/v1/models`` lists and requests must use (or omit).
        max_logprobs: the largest ``top_logprobs`` accepted (vLLM's ``--max-logprobs``).
    """

    def __init__(
        self,
        judge: LocalJudge,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model_name: str = "paco-judge",
        max_logprobs: int = DEFAULT_MAX_LOGPROBS,
    ):
        self.judge = judge
        self.model_name = model_name
        self.max_logprobs = max_logprobs
        handler = type("BoundJudgeHandler", (JudgeRequestHandler,), {"server_state": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> JudgeHTTPServer:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="paco-judge-server", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        self.httpd.serve_forever()

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> JudgeHTTPServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- answering ----------------------------------------------------------------------

    def models_listing(self) -> dict:
        return {"object": "list", "data": [{"id": self.model_name, "object": "model", "owned_by": "paco"}]}

    def chat_completion(self, body: dict) -> dict:
        """The chat-completions answer for one request body (raises RequestError when invalid)."""
        model = body.get("model", self.model_name)
        if model != self.model_name:
            raise RequestError(f"model {model!r} is not served here; this server serves {self.model_name!r}.")
        pair = pair_from_messages(body.get("messages"))
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        top_logprobs = int(body.get("top_logprobs") or 0)
        if top_logprobs > self.max_logprobs:
            raise RequestError(
                f"top_logprobs {top_logprobs} is above this server's maximum of {self.max_logprobs}."
            )
        logprobs = self.judge.first_token_logprobs([pair])[0]
        first_id = int(logprobs.argmax())
        if max_tokens <= 1:
            content = self._token_text(first_id)
        else:
            content = self.judge.explain(pair, max_new_tokens=max_tokens)
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "logprobs": None,
            "finish_reason": "length",
        }
        if body.get("logprobs"):
            choice["logprobs"] = {"content": [self._token_logprobs(logprobs, first_id, top_logprobs)]}
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [choice],
        }

    def _token_logprobs(self, logprobs: Any, token_id: int, top: int) -> dict:
        values, ids = logprobs.topk(min(top, logprobs.numel()))
        return {
            **self._token_entry(token_id, float(logprobs[token_id])),
            "top_logprobs": [self._token_entry(int(i), float(v)) for v, i in zip(values, ids, strict=True)],
        }

    def _token_entry(self, token_id: int, logprob: float) -> dict:
        text = self._token_text(token_id)
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    def _token_text(self, token_id: int) -> str:
        return self.judge.tokenizer.decode([token_id])


class JudgeRequestHandler(BaseHTTPRequestHandler):
    """HTTP glue: JSON in, JSON out; the work is done by ``server_state`` (a JudgeHTTPServer)."""

    server_state: JudgeHTTPServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send_json(200, self.server_state.models_listing())
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length).decode("utf-8"))
            self._send_json(200, self.server_state.chat_completion(body))
        except (RequestError, json.JSONDecodeError, ValueError, TypeError) as error:
            self._send_json(400, {"error": {"message": str(error), "type": "invalid_request_error"}})
        except Exception as error:  # the client gets a 500 and retries; the server keeps running
            logger.exception("judge server failed on a request")
            self._send_json(
                500, {"error": {"message": f"{type(error).__name__}: {error}", "type": "server_error"}}
            )

    def _send_json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("judge server: " + format, *args)


def pair_from_messages(messages: Any) -> PairRequest:
    """The (first image, second image, prompt) of a judge chat request."""
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages should be a non-empty list.")
    content = messages[-1].get("content") if isinstance(messages[-1], dict) else None
    if not isinstance(content, list):
        raise RequestError("the last message's content should be a list of image_url and text parts.")
    images = [
        decode_data_url(part["image_url"]["url"]) for part in content if part.get("type") == "image_url"
    ]
    texts = [part["text"] for part in content if part.get("type") == "text"]
    if len(images) != 2 or not texts:
        raise RequestError(f"a judge request holds two images and a text, got {len(images)} image(s).")
    return PairRequest(images[0], images[1], "".join(texts))


def decode_data_url(url: str) -> Any:
    """A PIL image from a ``data:image/...;base64,`` URL (remote URLs are refused)."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(url, str) or not url.startswith("data:image/") or ";base64," not in url:
        raise RequestError("images should be base64 data URLs (data:image/png;base64,...).")
    try:
        image = Image.open(io.BytesIO(base64.b64decode(url.split(";base64,", 1)[1], validate=True)))
        image.load()
    except (binascii.Error, UnidentifiedImageError, OSError) as error:
        raise RequestError(f"an image data URL could not be decoded: {error}") from error
    return image.convert("RGB")
