"""The server judge backend against real HTTP servers on 127.0.0.1: the tiny judge behind
our OpenAI-compatible server, a server without logprobs, a flaky one, and no server."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import combinations

import numpy as np
import pytest
from PIL import Image

from paco_core.callbacks import Hooks
from paco_core.errors import InputError, JudgeError
from paco_core.reward import open_judge
from paco_core.reward.backend import PairRequest, score_from_logprobs
from paco_core.reward.judge_client import JudgeClient, image_data_url, normalise_url
from paco_core.reward.judge_server import JudgeHTTPServer
from paco_core.reward.prompts import set_consistency_prompt


def random_images(count, seed=0, side=64):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)) for _ in range(count)]


@pytest.fixture(scope="module")
def local_judge(tiny_models):
    return open_judge(tiny_models["judge"], cache_size=0)


@pytest.fixture(scope="module")
def vocab_size(local_judge):
    return int(local_judge.model.config.text_config.vocab_size)


@pytest.fixture(scope="module")
def judge_server(local_judge, vocab_size):
    # The tiny judge's random weights rarely put Yes/No in their top 20 tokens (a trained
    # judge always does), so this server lists the whole vocabulary when asked.
    with JudgeHTTPServer(local_judge, model_name="tiny-judge", max_logprobs=vocab_size) as server:
        yield server


@pytest.fixture(scope="module")
def pairs():
    images = random_images(4, seed=2)
    prompt = set_consistency_prompt("a lighthouse in a storm")
    return [PairRequest(images[i], images[j], prompt) for i, j in combinations(range(4), 2)]


class RecordingServer:
    """A real HTTP server on 127.0.0.1 whose answers come from ``answer(request_number, body)``."""

    def __init__(self, answer):
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                outer.requests += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, payload = answer(outer.requests, body)
                cut_off = isinstance(payload, bytes)  # bytes: announce more than is sent, then hang up
                data = payload if cut_off else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data) + (100 if cut_off else 0)))
                self.close_connection = cut_off
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_server_scores_equal_local_scores(local_judge, judge_server, pairs, vocab_size):
    local = local_judge.score_pairs(pairs)
    client = JudgeClient(judge_server.url, top_logprobs=vocab_size, concurrency=3)
    assert client.model == "tiny-judge"  # asked from /v1/models
    progress = []
    remote = client.score_pairs(pairs, Hooks(progress=lambda done, total: progress.append((done, total))))
    assert np.allclose(remote, local, atol=1e-4, rtol=0)
    assert progress[-1] == (6, 6)
    assert client.score_pairs(pairs) == remote and client.cache.hits == 6


def test_case_variants_over_the_server_equal_local(tiny_models, judge_server, pairs, vocab_size):
    local = open_judge(tiny_models["judge"], answers="case", cache_size=0).score_pairs(pairs[:2])
    client = JudgeClient(judge_server.url, "tiny-judge", top_logprobs=vocab_size, answers="case")
    assert np.allclose(client.score_pairs(pairs[:2]), local, atol=1e-4, rtol=0)


def test_server_explain_returns_the_judges_text(local_judge, judge_server, pairs):
    client = JudgeClient(judge_server.url, "tiny-judge")
    assert client.explain(pairs[0], max_new_tokens=4) == local_judge.explain(pairs[0], max_new_tokens=4)


def test_judge_absent_from_top_logprobs_is_an_error_not_a_score(judge_server, pairs):
    client = JudgeClient(judge_server.url, "tiny-judge", top_logprobs=1)
    with pytest.raises(
        JudgeError, match="neither Yes nor No is among the first answer token's log-probabilities"
    ):
        client.score_pairs(pairs[:1])


def test_request_above_the_servers_logprob_limit_fails_without_retries(judge_server, pairs, vocab_size):
    client = JudgeClient(judge_server.url, "tiny-judge", top_logprobs=vocab_size + 1, retries=3, backoff=5.0)
    with pytest.raises(JudgeError, match=r"refused the request \(HTTP 400\): .*above this server's maximum"):
        client.score_pairs(pairs[:1])


def test_unreachable_server_raises_naming_the_url(pairs):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}"
    client = JudgeClient(url, "judge", retries=2, backoff=0.01, timeout=2)
    with pytest.raises(
        JudgeError, match=rf"judge server {url}/v1/chat/completions did not answer after 3 attempt"
    ):
        client.score_pairs(pairs[:2])
    with pytest.raises(JudgeError, match=rf"judge server {url}/v1/models did not answer"):
        JudgeClient(url, timeout=2).score_pairs(pairs[:1])


def test_server_without_logprobs_raises(pairs):
    def answer(number, body):
        return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Yes"}}]}

    with RecordingServer(answer) as server:
        client = JudgeClient(server.url, "judge", retries=2)
        with pytest.raises(JudgeError, match="returned no logprobs for the answer token"):
            client.score_pairs(pairs[:1])
        assert server.requests == 1  # a malformed answer is not retried


def test_failed_requests_are_retried_with_backoff(judge_server, pairs, vocab_size):
    def answer(number, body):
        if number == 1:
            return 503, {"error": {"message": "warming up"}}
        return 200, judge_server.chat_completion(body)

    with RecordingServer(answer) as server:
        client = JudgeClient(server.url, "tiny-judge", top_logprobs=vocab_size, retries=2, backoff=0.01)
        score = client.score_pairs(pairs[:1])[0]
        assert server.requests == 2
    direct = JudgeClient(judge_server.url, "tiny-judge", top_logprobs=vocab_size).score_pairs(pairs[:1])[0]
    assert score == pytest.approx(direct, abs=1e-6)


def test_an_answer_cut_off_midway_is_retried(judge_server, pairs, vocab_size):
    def answer(number, body):
        if number == 1:
            return 200, b'{"choices": [{"message"'
        return 200, judge_server.chat_completion(body)

    with RecordingServer(answer) as server:
        client = JudgeClient(server.url, "tiny-judge", top_logprobs=vocab_size, retries=1, backoff=0.01)
        score = client.score_pairs(pairs[:1])[0]
        assert server.requests == 2
    direct = JudgeClient(judge_server.url, "tiny-judge", top_logprobs=vocab_size).score_pairs(pairs[:1])[0]
    assert score == pytest.approx(direct, abs=1e-6)


def test_requests_carry_the_openai_logprob_fields(pairs):
    seen = []

    def answer(number, body):
        seen.append(body)
        top = [{"token": "Yes", "logprob": -0.5}, {"token": "No", "logprob": -1.5}]
        content = [{"token": "Yes", "logprob": -0.5, "top_logprobs": top}]
        return 200, {"choices": [{"message": {"content": "Yes"}, "logprobs": {"content": content}}]}

    with RecordingServer(answer) as server:
        score = JudgeClient(server.url, "judge", image_format="jpeg").score_pairs(pairs[:1])[0]
    assert score == pytest.approx(1 / (1 + np.exp(-1.0)))
    body = seen[0]
    assert (body["max_tokens"], body["temperature"], body["logprobs"], body["top_logprobs"]) == (
        1,
        0,
        True,
        20,
    )
    parts = body["messages"][0]["content"]
    assert [part["type"] for part in parts] == ["image_url", "image_url", "text"]
    assert parts[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert parts[2]["text"] == pairs[0].prompt


def test_score_from_logprobs_rules():
    assert score_from_logprobs({"Yes": np.log(0.6), "No": np.log(0.2)}) == pytest.approx(0.75)
    assert score_from_logprobs({"Yes": -0.1, "maybe": -3.0}) == 1.0  # No below the listed top-k
    assert score_from_logprobs({"No": -0.1}) == 0.0
    both = {"Yes": np.log(0.3), "yes": np.log(0.1), "No": np.log(0.1), "NO": np.log(0.1)}
    assert score_from_logprobs(both, "case") == pytest.approx(0.4 / 0.6)
    assert score_from_logprobs(both, "exact") == pytest.approx(0.75)
    with pytest.raises(JudgeError, match="neither Yes nor No"):
        score_from_logprobs({"maybe": -0.1})


def test_client_options_are_checked():
    assert normalise_url("http://h:8000/v1/") == ("http://h:8000", "http://h:8000/v1/chat/completions")
    assert normalise_url("https://h/v1/chat/completions")[1] == "https://h/v1/chat/completions"
    with pytest.raises(InputError, match="should start with http:// or https://, got 'localhost:8000'"):
        JudgeClient("localhost:8000")
    with pytest.raises(InputError, match="concurrency should be a whole number >= 1, got 0"):
        JudgeClient("http://127.0.0.1:1", concurrency=0)
    with pytest.raises(InputError, match="image_format should be one of png, jpeg, got 'gif'"):
        JudgeClient("http://127.0.0.1:1", image_format="gif")
    image = random_images(1)[0]
    assert image_data_url(image).startswith("data:image/png;base64,")
