"""The judge server: one ``LocalJudge`` behind the OpenAI chat-completions API, served in a
background thread. Requests are read by the transport (``http_handler``) and parsed into
judge questions (``chat_requests``); here they wait their turn for the judge within the
``limits``, have their images decoded and get the chat-completion answer (the first token's
``top_logprobs`` from the judge's full-vocabulary log-softmax, as vLLM does)."""

from __future__ import annotations

import hmac
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from paco_core.errors import InputError
from paco_core.reward.judge_server.address import bind_error_message, check_bind_address
from paco_core.reward.judge_server.chat_requests import (
    ChatRequest,
    RequestError,
    decoded_pair,
    parse_chat_request,
)
from paco_core.reward.judge_server.http_handler import JudgeRequestHandler, QuietThreadingHTTPServer
from paco_core.reward.judge_server.limits import ByteBudget, FairLock, ServerLimits, busy_error
from paco_core.reward.local import LocalJudge

DEFAULT_MAX_LOGPROBS = 20
API_KEY_ENV = "PACO_JUDGE_API_KEY"
"""Environment variable holding the API key (server: required key; client: key sent)."""


class JudgeHTTPServer:
    """Serves one ``LocalJudge`` over HTTP in a background thread.

    Args:
        judge: the local judge that answers.
        host: the address to bind (127.0.0.1: reachable from this machine only).
        port: the port; 0 picks a free one (read it back from ``url``).
        model_name: the name ``/v1/models`` lists and requests must use (or omit).
        max_logprobs: the largest ``top_logprobs`` accepted (vLLM's ``--max-logprobs``).
        limits: body, image, token, time and queue limits (``ServerLimits``).
        api_key: when given, every request must send ``Authorization: Bearer <api_key>``.
        allow_remote: needed to bind an address other than loopback.

    Raises:
        InputError: a port out of range or in use, an unknown host, or a non-loopback
            host without ``allow_remote``.
    """

    def __init__(
        self,
        judge: LocalJudge,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model_name: str = "paco-judge",
        max_logprobs: int = DEFAULT_MAX_LOGPROBS,
        limits: ServerLimits | None = None,
        api_key: str | None = None,
        allow_remote: bool = False,
    ):
        check_bind_address(host, port, allow_remote=allow_remote, probe=False)
        if isinstance(max_logprobs, bool) or not isinstance(max_logprobs, int) or max_logprobs < 0:
            raise InputError(f"max_logprobs should be a whole number >= 0, got {max_logprobs!r}.")
        self.judge = judge
        self.model_name = model_name
        self.max_logprobs = max_logprobs
        self.limits = limits or ServerLimits()
        self.api_key = api_key or None
        self._judge_lock = FairLock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paco-judge-worker")
        """Decodes images and runs the judge: one thread, so the large buffers of every request
        come from one allocator arena (glibc keeps a freed arena's memory for its thread)."""
        self.body_budget = ByteBudget(self.limits.max_bytes_in_flight)
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        handler = type(
            "BoundJudgeHandler",
            (JudgeRequestHandler,),
            {"server_state": self, "timeout": self.limits.read_timeout},
        )
        try:
            self.httpd = QuietThreadingHTTPServer((host, port), handler)
        except OSError as error:
            raise InputError(bind_error_message(host, port, error)) from error
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        if ":" in str(host):
            host = f"[{host}]"
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
        self._worker.shutdown(wait=True)

    def __enter__(self) -> JudgeHTTPServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- answering ----------------------------------------------------------------------

    def models_listing(self) -> dict:
        return {"object": "list", "data": [{"id": self.model_name, "object": "model", "owned_by": "paco"}]}

    def check_api_key(self, authorization: str | None) -> None:
        """Raise RequestError (401) unless the Authorization header carries the key."""
        if self.api_key is None:
            return
        given = (authorization or "").strip()
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode("utf-8"), self.api_key.encode("utf-8")
        ):
            raise RequestError(
                "this judge server needs an API key: send the header 'Authorization: Bearer <key>' "
                f"(the paco client sends ${API_KEY_ENV}).",
                status=401,
                code="invalid_api_key",
            )

    def chat_completion(self, body: Any) -> dict:
        """The chat-completions answer for one request body (raises RequestError when invalid
        or when the judge stays busy)."""
        request = self.parse_request(body)
        with self._judge_turn():  # pixels only inside the turn: one request at a time
            return self._worker.submit(self._decode_and_answer, request).result()

    def _decode_and_answer(self, request: ChatRequest) -> dict:
        request.pair = decoded_pair(request.pair)
        try:
            return self._answer(request)
        except InputError as error:  # the judge refuses the question itself: the client's to fix
            raise RequestError(str(error)) from None

    def parse_request(self, body: Any) -> ChatRequest:
        """Validate a request body (raises RequestError with a message saying what to fix)."""
        return parse_chat_request(
            body,
            model_name=self.model_name,
            max_tokens_limit=self.limits.max_tokens,
            max_logprobs=self.max_logprobs,
            max_image_pixels=self.limits.max_image_pixels,
        )

    def _judge_turn(self):
        """A context holding the judge, or RequestError 503 when it stays busy."""
        server = self

        class Turn:
            def __enter__(self) -> None:
                with server._waiting_lock:
                    if server._waiting >= server.limits.max_waiting:
                        raise busy_error(f"{server._waiting} requests are already waiting for the judge")
                    server._waiting += 1
                try:
                    acquired = server._judge_lock.acquire(timeout=server.limits.busy_wait)
                finally:
                    with server._waiting_lock:
                        server._waiting -= 1
                if not acquired:
                    raise busy_error(f"the judge stayed busy for {server.limits.busy_wait:g} s")

            def __exit__(self, *exc_info) -> None:
                server._judge_lock.release()

        return Turn()

    def _answer(self, request: ChatRequest) -> dict:
        logprobs = self.judge.first_token_logprobs([request.pair])[0]
        first_id = int(logprobs.argmax())
        if request.max_tokens <= 1:
            content = self._token_text(first_id)
        else:
            content = self.judge.explain(
                request.pair, max_new_tokens=request.max_tokens, max_time=self.limits.generation_seconds
            )
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "logprobs": None,
            "finish_reason": "length",
        }
        if request.logprobs:
            choice["logprobs"] = {"content": [self._token_logprobs(logprobs, first_id, request.top_logprobs)]}
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
