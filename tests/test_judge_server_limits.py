"""The judge server under bad input and load: every client mistake is a 4xx with an
OpenAI-shaped error (never a 500 or a hang), a busy judge answers 503 with Retry-After,
the API key and the bind checks hold, and `paco serve-judge` fails in one line."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from paco_core.errors import InputError, JudgeError
from paco_core.reward import open_judge
from paco_core.reward.backend import PairRequest
from paco_core.reward.judge_client import JudgeClient
from paco_core.reward.judge_server import API_KEY_ENV, JudgeHTTPServer, ServerLimits

REPO = Path(__file__).resolve().parents[1]
LIMITS = ServerLimits(
    max_body_bytes=2 * 1024 * 1024, read_timeout=1.0, busy_wait=0.3, generation_seconds=30.0
)


def png_data_url(side=32, seed=0):
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def bomb_data_url(width, height):
    """A valid PNG header announcing width x height over a few bytes of pixel data."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def chat_body(first=None, second=None, text="Are these consistent?", **fields):
    content = [
        {"type": "image_url", "image_url": {"url": first or png_data_url(seed=1)}},
        {"type": "image_url", "image_url": {"url": second or png_data_url(seed=2)}},
        {"type": "text", "text": text},
    ]
    return {
        "model": "tiny-judge",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 1,
        **fields,
    }


def with_content(content):
    return {"model": "tiny-judge", "messages": [{"role": "user", "content": content}], "max_tokens": 1}


def post(url, body, *, raw=None, headers=None, path="/v1/chat/completions", method="POST"):
    """(status, headers, parsed JSON answer) of one request."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    data = raw if raw is not None else json.dumps(body).encode("utf-8")
    connection.request(
        method,
        path,
        body=data if method == "POST" else None,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    return response.status, response.headers, answer


def assert_error(answer, status_code, code, message_pattern):
    error = answer["error"]
    assert set(error) == {"message", "type", "code"}
    assert error["code"] == code
    assert error["type"] == ("server_error" if status_code >= 500 else "invalid_request_error")
    assert re.search(message_pattern, error["message"]), error["message"]


@pytest.fixture(scope="module")
def local_judge(tiny_models):
    return open_judge(tiny_models["judge"], cache_size=0)


@pytest.fixture(scope="module")
def server(local_judge):
    with JudgeHTTPServer(local_judge, model_name="tiny-judge", limits=LIMITS) as running:
        yield running


BAD_BODIES = {
    "a JSON list": ([chat_body()], "invalid_request", r"request body should be a JSON object, got a list"),
    "a string body": ("judge this", "invalid_request", r"should be a JSON object, got a string"),
    "a null body": (None, "invalid_request", r"should be a JSON object, got null"),
    "string content parts": (
        with_content(["look at this", "and this"]),
        "invalid_request",
        r"content part 1 should be an object like \{\"type\": \"text\"",
    ),
    "a missing url": (
        with_content([{"type": "image_url", "image_url": {}}, {"type": "text", "text": "x"}]),
        "invalid_request",
        r"content part 1 \(image_url\) has no image_url.url",
    ),
    "a missing text": (
        with_content(
            [
                {"type": "image_url", "image_url": {"url": png_data_url(seed=1)}},
                {"type": "image_url", "image_url": {"url": png_data_url(seed=2)}},
                {"type": "text"},
            ]
        ),
        "invalid_request",
        r"content part 3 \(text\) should have a string text, got null",
    ),
    "negative top_logprobs": (
        chat_body(logprobs=True, top_logprobs=-1),
        "invalid_request",
        r"top_logprobs should be >= 0, got -1",
    ),
    "a decompression bomb": (
        chat_body(second=bomb_data_url(5000, 5000)),
        "image_too_large",
        r"content part 2: the image is 5000x5000 = 25000000 pixels, above this server's limit of 16777216",
    ),
    "a decompression bomb beyond PIL's own limit": (
        chat_body(first=bomb_data_url(100_000, 100_000)),
        "image_too_large",
        r"content part 1: the image is",
    ),
    "a huge max_tokens": (
        chat_body(max_tokens=10**9),
        "invalid_request",
        r"max_tokens 1000000000 is above this server's maximum of 512",
    ),
    "a text max_tokens": (
        chat_body(max_tokens="many"),
        "invalid_request",
        r"max_tokens should be a whole number, got a string",
    ),
    "max_tokens 0": (chat_body(max_tokens=0), "invalid_request", r"max_tokens should be >= 1, got 0"),
    "top_logprobs above the limit": (
        chat_body(logprobs=True, top_logprobs=21),
        "invalid_request",
        r"top_logprobs 21 is above this server's maximum of 20",
    ),
    "a non-boolean logprobs": (
        chat_body(logprobs="yes"),
        "invalid_request",
        r"logprobs should be true or false",
    ),
    "streaming": (chat_body(stream=True), "invalid_request", r"stream is not supported"),
    "another model": (
        chat_body(model="gpt-4"),
        "model_not_found",
        r"model 'gpt-4' is not served here; this server serves 'tiny-judge'",
    ),
    "one image": (
        with_content(
            [{"type": "image_url", "image_url": {"url": png_data_url()}}, {"type": "text", "text": "x"}]
        ),
        "invalid_request",
        r"two images and a text, got 1 image\(s\) and 1 text\(s\)",
    ),
    "a remote image URL": (
        chat_body(first="https://example.com/a.png"),
        "invalid_request",
        r"content part 1: images should be base64 data URLs",
    ),
    "an image that is not one": (
        chat_body(second="data:image/png;base64," + base64.b64encode(b"not a png").decode()),
        "invalid_request",
        r"content part 2: the image could not be decoded",
    ),
    "bad base64": (
        chat_body(first="data:image/png;base64,@@@"),
        "invalid_request",
        r"base64 could not be decoded",
    ),
    "an unknown part type": (
        with_content([{"type": "audio", "audio": {}}]),
        "invalid_request",
        r"content part 1 has type 'audio'",
    ),
    "no messages": (
        {"model": "tiny-judge"},
        "invalid_request",
        r"messages should be a non-empty list, got null",
    ),
    "a message that is a string": (
        {"messages": ["hi"]},
        "invalid_request",
        r"each message should be an object with role and content, got a string",
    ),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_malformed_requests_are_400_with_a_message(server, name):
    body, code, pattern = BAD_BODIES[name]
    status, _, answer = post(server.url, body)
    assert status == 400
    assert_error(answer, 400, code, pattern)


RAW_REQUESTS = {
    "a body far over the size limit (answered, not reset, while it is still sent)": (
        b"x" * (24 * 1024 * 1024),
        {},
        413,
        "body_too_large",
        r"the request body is 25165824 bytes, above this server's limit of 2097152",
    ),
    "invalid JSON": (b"{not json", {}, 400, "invalid_json", r"the request body is not valid JSON"),
    "a body that is not UTF-8": (b"\xff\xfe{}", {}, 400, "invalid_json", r"not valid JSON"),
    "a body over the size limit": (
        b"x" * (2 * 1024 * 1024 + 1),
        {},
        413,
        "body_too_large",
        r"the request body is 2097153 bytes, above this server's limit of 2097152 .*--max-body-mb",
    ),
}


@pytest.mark.parametrize("name", list(RAW_REQUESTS))
def test_unreadable_bodies_are_refused(server, name):
    raw, headers, status_code, code, pattern = RAW_REQUESTS[name]
    status, _, answer = post(server.url, None, raw=raw, headers=headers)
    assert status == status_code
    assert_error(answer, status_code, code, pattern)


def test_unknown_routes_and_methods(server):
    status, _, answer = post(server.url, chat_body(), path="/v1/completions")
    assert status == 404
    assert_error(answer, 404, "not_found", r"no route /v1/completions; POST /v1/chat/completions")
    status, _, answer = post(server.url, None, path="/v2/models", method="GET")
    assert status == 404
    status, _, answer = post(server.url, None, method="DELETE")
    assert status == 405
    assert_error(answer, 405, "method_not_allowed", r"only GET /v1/models and POST /v1/chat/completions")
    status, _, answer = post(server.url, None, method="OPTIONS")  # refused by http.server itself
    assert status == 501
    assert_error(answer, 501, "bad_http", r"Unsupported method \('OPTIONS'\)")


def test_a_short_body_times_out_without_holding_up_others(server):
    """A Content-Length larger than the body gets 400 after read_timeout; meanwhile others are served."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as slow:
        slow.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 5000\r\n\r\n{"model": '
        )
        started = time.monotonic()
        status, _, answer = post(server.url, chat_body())  # another client, served at once
        assert status == 200 and answer["object"] == "chat.completion"
        assert time.monotonic() - started < LIMITS.read_timeout
        reply = b""
        while chunk := slow.recv(65536):
            reply += chunk
        waited = time.monotonic() - started
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"Connection: close" in head
    assert_error(json.loads(payload), 400, "incomplete_body", r"the body ended after 10 of the 5000 bytes")
    assert LIMITS.read_timeout * 0.9 <= waited < LIMITS.read_timeout + 5


def test_an_idle_connection_is_dropped_after_the_read_timeout(server):
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as idle:
        started = time.monotonic()
        assert idle.recv(100) == b""  # closed by the server, nothing sent
        assert time.monotonic() - started < LIMITS.read_timeout + 5


def test_a_busy_judge_answers_503_with_retry_after(server):
    assert server._judge_lock.acquire(timeout=10)  # stands for a long request holding the judge
    try:
        started = time.monotonic()
        status, headers, answer = post(server.url, chat_body())
        assert time.monotonic() - started < LIMITS.busy_wait + 2
    finally:
        server._judge_lock.release()
    assert status == 503 and headers["Retry-After"] == "1"
    assert_error(
        answer, 503, "server_busy", r"the judge is busy \(the judge stayed busy for 0.3 s\); retry shortly"
    )
    assert post(server.url, chat_body())[0] == 200


def test_the_client_retries_a_503_after_retry_after(server):
    pair = PairRequest(Image.new("RGB", (32, 32), "red"), Image.new("RGB", (32, 32), "blue"), "same?")
    assert server._judge_lock.acquire(timeout=10)
    threading.Timer(0.6, server._judge_lock.release).start()
    started = time.monotonic()
    client = JudgeClient(server.url, "tiny-judge", retries=2, backoff=0.01, cache_size=0)
    assert isinstance(client.explain(pair, max_new_tokens=1), str)  # 503 first, answered after 1 s
    assert time.monotonic() - started >= 1.0


def test_generation_stops_at_the_time_limit(local_judge):
    limits = ServerLimits(generation_seconds=0.05)
    full = local_judge.explain(
        PairRequest(Image.new("RGB", (32, 32), "red"), Image.new("RGB", (32, 32), "blue"), "same?"),
        max_new_tokens=512,
    )
    with JudgeHTTPServer(local_judge, model_name="tiny-judge", limits=limits) as quick:
        body = chat_body(max_tokens=512)
        for part, color in zip(body["messages"][0]["content"][:2], ("red", "blue"), strict=True):
            buffer = io.BytesIO()
            Image.new("RGB", (32, 32), color).save(buffer, format="PNG")
            part["image_url"]["url"] = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        status, _, answer = post(quick.url, body)
    assert status == 200
    content = answer["choices"][0]["message"]["content"]
    assert len(full) > 100 and len(content) < len(full)


def test_the_api_key_is_required_and_sent_by_the_client(local_judge, monkeypatch):
    pair = PairRequest(Image.new("RGB", (32, 32), "red"), Image.new("RGB", (32, 32), "blue"), "same?")
    with JudgeHTTPServer(local_judge, model_name="tiny-judge", api_key="s3cret") as locked:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            status, answer_headers, answer = post(locked.url, chat_body(), headers=headers)
            assert status == 401 and answer_headers["WWW-Authenticate"] == "Bearer"
            assert_error(
                answer,
                401,
                "invalid_api_key",
                r"needs an API key: send the header 'Authorization: Bearer <key>'",
            )
        assert post(locked.url, None, method="GET", path="/v1/models")[0] == 401
        status, _, _ = post(locked.url, chat_body(), headers={"Authorization": "Bearer s3cret"})
        assert status == 200

        monkeypatch.delenv(API_KEY_ENV, raising=False)
        without = JudgeClient(locked.url, "tiny-judge", retries=3, backoff=5.0, cache_size=0)
        started = time.monotonic()
        with pytest.raises(JudgeError, match=r"refused the request \(HTTP 401\): .*needs an API key"):
            without.explain(pair, max_new_tokens=1)
        assert time.monotonic() - started < 5.0  # a 401 is not retried
        with pytest.raises(JudgeError, match=r"/v1/models answered HTTP 401"):
            _ = JudgeClient(locked.url, cache_size=0).model
        assert isinstance(
            JudgeClient(locked.url, "tiny-judge", api_key="s3cret").explain(pair, max_new_tokens=1), str
        )
        monkeypatch.setenv(API_KEY_ENV, "s3cret")
        assert JudgeClient(locked.url).model == "tiny-judge"  # the key from the environment


def test_client_retries_timeouts_but_not_bad_requests(server):
    pair = PairRequest(Image.new("RGB", (32, 32), "red"), Image.new("RGB", (32, 32), "blue"), "same?")
    with socket.socket() as mute:  # listens, never answers: every attempt times out
        mute.bind(("127.0.0.1", 0))
        mute.listen(8)
        url = f"http://127.0.0.1:{mute.getsockname()[1]}"
        with pytest.raises(JudgeError, match=r"did not answer after 2 attempt\(s\): TimeoutError"):
            JudgeClient(url, "judge", retries=1, backoff=0.01, timeout=0.3).explain(pair, max_new_tokens=1)
    client = JudgeClient(server.url, "tiny-judge", retries=3, backoff=5.0)
    started = time.monotonic()
    with pytest.raises(JudgeError, match=r"refused the request \(HTTP 400\): .*max_tokens 100000 is above"):
        client.explain(pair, max_new_tokens=100_000)
    assert time.monotonic() - started < 5.0


def test_server_options_are_checked(local_judge):
    with pytest.raises(InputError, match=r"host '0.0.0.0' is not a loopback address.*--allow-remote"):
        JudgeHTTPServer(local_judge, host="0.0.0.0")
    with pytest.raises(InputError, match=r"the port should be a whole number from 0 to 65535.*got 70000"):
        JudgeHTTPServer(local_judge, port=70000)
    with pytest.raises(InputError, match=r"max_tokens should be a whole number >= 1, got 0"):
        ServerLimits(max_tokens=0)
    with pytest.raises(InputError, match=r"busy_wait should be a positive number of seconds, got -1"):
        ServerLimits(busy_wait=-1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(InputError, match=rf"port {port} on 127.0.0.1 is already in use"):
            JudgeHTTPServer(local_judge, port=port)


def test_bounded_load_every_request_answered(local_judge):
    from bench import judge_server_load as load

    with JudgeHTTPServer(local_judge, model_name="tiny-judge") as server:  # default limits
        result = load.run_load(server.url, "tiny-judge", clients=8, requests=80, top_logprobs=5)
    assert result.answered == 80 and result.errors == {}
    assert 0 < result.p50 <= result.p99


# -- the command line -----------------------------------------------------------------------


def run_paco(*args, env=None, timeout=60):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "paco_core.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def taken_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        yield taken.getsockname()[1]


CLI_PROBES = {
    "a port out of range": (
        ["--port", "70000"],
        r"the port should be a whole number from 0 to 65535 .*got 70000",
    ),
    "a negative port": (["--port", "-1"], r"the port should be a whole number from 0 to 65535"),
    "a port in use": (["--port", "{taken}"], r"port {taken} on 127.0.0.1 is already in use; .*--port"),
    "a remote host without --allow-remote": (
        ["--host", "0.0.0.0", "--port", "0"],
        r"host '0.0.0.0' is not a loopback address.*add --allow-remote",
    ),
    "an unknown host": (
        ["--host", "no-such-host.invalid", "--port", "0"],
        r"cannot bind host 'no-such-host.invalid'",
    ),
    "max-tokens 0": (
        ["--max-tokens", "0", "--port", "0"],
        r"max_tokens should be a whole number >= 1, got 0",
    ),
    "a zero body limit": (["--max-body-mb", "0", "--port", "0"], r"--max-body-mb should be above 0"),
    "a negative busy wait": (["--busy-wait", "-2", "--port", "0"], r"busy_wait should be a positive number"),
}


@pytest.mark.parametrize("name", list(CLI_PROBES))
def test_serve_judge_refuses_bad_options_in_one_line_before_loading(name, taken_port, tmp_path):
    args, pattern = CLI_PROBES[name]
    args = [arg.replace("{taken}", str(taken_port)) for arg in args]
    missing_judge = tmp_path / "no-judge-here"  # loading it would fail with another message
    done = run_paco("serve-judge", "--judge", str(missing_judge), *args)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert re.fullmatch(
        r"paco serve-judge: error: " + pattern.replace("{taken}", str(taken_port)) + r".*", lines[0]
    )


@pytest.mark.slow
def test_serve_judge_remote_binding_warns_and_the_key_comes_from_the_environment(tiny_models):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), API_KEY_ENV: "from-env"}
    command = [
        sys.executable,
        "-m",
        "paco_core.cli",
        "serve-judge",
        "--judge",
        str(tiny_models["judge"]),
        "--host",
        "0.0.0.0",
        "--allow-remote",
        "--port",
        "0",
        "--model-name",
        "tiny-judge",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        assert "serving" in line, process.stderr.read() if process.poll() is not None else line
        port = int(line.rsplit(":", 1)[1].split("/", 1)[0])
        url = f"http://127.0.0.1:{port}"
        assert post(url, None, method="GET", path="/v1/models")[0] == 401
        status, _, answer = post(
            url, None, method="GET", path="/v1/models", headers={"Authorization": "Bearer from-env"}
        )
        assert status == 200 and answer["data"][0]["id"] == "tiny-judge"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "warning: serving on 0.0.0.0, reachable from other machines" in stderr
    assert "no API key" not in stderr


def test_the_judge_lock_is_handed_over_in_arrival_order():
    from paco_core.reward.judge_server import FairLock

    lock, order = FairLock(), []
    assert lock.acquire(timeout=1)

    def waiter(number):
        assert lock.acquire(timeout=10)
        order.append(number)
        lock.release()

    threads = []
    for number in range(5):
        threads.append(threading.Thread(target=waiter, args=(number,)))
        threads[-1].start()
        time.sleep(0.05)  # arrive one after another
    assert not lock.acquire(timeout=0.05)  # held: a timed-out wait leaves the line
    lock.release()
    for thread in threads:
        thread.join()
    assert order == [0, 1, 2, 3, 4]
    assert lock.acquire(timeout=0) is True
