"""The ComfyUI test double itself (tests/comfy_stub): the server stand-in served by a real
aiohttp server on 127.0.0.1, the prompt queue, the folders, and its public surface (what
tests/test_comfyui_integration.py checks against a real ComfyUI)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import struct
import threading
import uuid

import pytest
from aiohttp import ClientSession, WSMsgType, web
from aiohttp.test_utils import TestServer
from pack_loader import load_pack, reset_comfy_stub

load_pack()  # puts the double first on sys.path

import folder_paths  # noqa: E402
import server  # noqa: E402

STAND_IN_MODULES = (
    "comfy_api.latest",
    "comfy_api.latest._io",
    "comfy_api.latest._ui",
    "comfy.model_management",
    "comfy.utils",
    "folder_paths",
    "server",
)
RECORDERS = {"CALLS", "PROGRESS_UPDATES", "ProgressUpdate", "SentEvent", "PromptQueue"}
"""Public names of the double that are not ComfyUI's module-level API: recording globals
and the classes of attributes (``PromptServer.instance.prompt_queue``)."""


@pytest.fixture
def prompt_server(tmp_path):
    reset_comfy_stub(tmp_path)
    yield server.PromptServer.instance
    reset_comfy_stub(tmp_path)


def unique_path(name: str) -> str:
    """Routes stay on the shared RouteTableDef, so each test registers its own paths."""
    return f"/paco-test/{uuid.uuid4().hex[:8]}/{name}"


async def next_event(socket, kind: str) -> dict | bytes:
    """The next message of type ``kind`` (JSON) or the next binary message (``kind="bytes"``)."""
    while True:
        message = await asyncio.wait_for(socket.receive(), timeout=5)
        if message.type == WSMsgType.BINARY and kind == "bytes":
            return message.data
        if message.type == WSMsgType.TEXT and message.json()["type"] == kind:
            return message.json()["data"]
        assert message.type in (WSMsgType.TEXT, WSMsgType.BINARY), (
            f"websocket ended before a {kind!r} message"
        )


def test_a_route_on_the_stand_in_server_is_served_and_its_events_reach_the_websocket(prompt_server):
    path = unique_path("start")

    @prompt_server.routes.post(path)
    async def start(request: web.Request) -> web.Response:
        body = await request.json()
        # A watcher thread reports, as a job follower would: send_sync is thread-safe.
        watcher = threading.Thread(
            target=lambda: [
                prompt_server.send_progress_text(f"step 1/{body['steps']}", "12"),
                prompt_server.send_sync("paco.job", {"id": body["id"], "step": 1}),
            ]
        )
        watcher.start()
        watcher.join()
        return web.json_response({"accepted": body["id"]})

    async def scenario():
        async with TestServer(prompt_server.stub_app(), host="127.0.0.1") as test_server:
            assert prompt_server.loop is asyncio.get_running_loop()
            async with ClientSession() as session:
                async with session.ws_connect(test_server.make_url("/ws?clientId=tab1")) as socket:
                    status = await next_event(socket, "status")
                    assert status == {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "tab1"}
                    for prefix in ("", "/api"):
                        url = test_server.make_url(prefix + path)
                        async with session.post(url, json={"id": "job-1", "steps": 4}) as response:
                            assert response.status == 200 and await response.json() == {"accepted": "job-1"}
                        text = await next_event(socket, "bytes")
                        assert struct.unpack(">II", text[:8]) == (server.BinaryEventTypes.TEXT, 2)
                        assert text[8:] == b"12step 1/4"
                        assert await next_event(socket, "paco.job") == {"id": "job-1", "step": 1}
        assert prompt_server.loop is None, "loop is the serving loop only while the app runs"

    asyncio.run(scenario())
    assert prompt_server.stub_wait_for_event("paco.job").data == {"id": "job-1", "step": 1}
    assert prompt_server.stub_progress_texts() == [("12", "step 1/4")] * 2


def test_send_sync_to_one_client_reaches_only_that_client(prompt_server):
    async def scenario():
        async with TestServer(prompt_server.stub_app(), host="127.0.0.1") as test_server:
            async with ClientSession() as session:
                first = await session.ws_connect(test_server.make_url("/ws?clientId=a"))
                second = await session.ws_connect(test_server.make_url("/ws?clientId=b"))
                for socket in (first, second):
                    await next_event(socket, "status")
                prompt_server.send_sync("paco.job", {"for": "b"}, sid="b")
                prompt_server.send_sync("paco.job", {"for": "all"})
                assert await next_event(first, "paco.job") == {"for": "all"}
                assert await next_event(second, "paco.job") == {"for": "b"}
                await first.close()
                await second.close()

    asyncio.run(scenario())


def test_events_sent_while_no_app_runs_are_recorded(prompt_server):
    prompt_server.send_sync("paco.job", {"step": 3})
    assert prompt_server.stub_wait_for_event("paco.job", timeout=0.1).data == {"step": 3}
    with pytest.raises(TimeoutError, match="no 'missing' event within 0.1 s; sent: \\['paco.job'\\]"):
        prompt_server.stub_wait_for_event("missing", timeout=0.1)


def test_the_prompt_queue_tells_when_comfyui_is_busy_and_reports_it(prompt_server):
    queue = prompt_server.prompt_queue
    posted = []
    prompt_server.add_on_prompt_handler(lambda data: posted.append(data) or {**data, "seen": True})
    assert prompt_server.trigger_on_prompt({"prompt": {}}) == {"prompt": {}, "seen": True}
    assert posted == [{"prompt": {}}]

    assert queue.get_tasks_remaining() == 0 and queue.get(timeout=0.01) is None
    queue.put((0, "p1", {}, {}, [], {}))
    item, item_id = queue.get(timeout=1)
    assert item[1] == "p1" and queue.get_tasks_remaining() == 1, "a running prompt keeps the queue busy"
    queue.task_done(item_id, {}, None)
    assert queue.get_tasks_remaining() == 0
    statuses = [e.data["status"]["exec_info"]["queue_remaining"] for e in prompt_server.stub_events]
    assert statuses == [1, 1, 0]


def test_folders_sit_under_the_test_base_and_names_cannot_leave_them(tmp_path):
    reset_comfy_stub(tmp_path)
    (loras,) = folder_paths.get_folder_paths("loras")
    exported = tmp_path / "models" / "loras" / "paco" / "cats" / "step-2.safetensors"
    exported.parent.mkdir(parents=True)
    exported.write_bytes(b"x")
    (exported.parent / "notes.txt").write_text("not a model")

    assert loras == str(tmp_path / "models" / "loras")
    assert folder_paths.get_user_directory() == str(tmp_path / "user")
    assert folder_paths.get_input_directory() == str(tmp_path / "input")
    assert folder_paths.get_filename_list("loras") == ["paco/cats/step-2.safetensors"]
    assert folder_paths.get_full_path_or_raise("loras", "paco/cats/step-2.safetensors") == str(exported)
    assert folder_paths.get_full_path("loras", "../../models/loras/paco/cats/step-2.safetensors") is None
    with pytest.raises(
        FileNotFoundError, match="Model in folder 'loras' with filename 'x.safetensors' not found"
    ):
        folder_paths.get_full_path_or_raise("loras", "x.safetensors")


def test_every_public_name_of_the_double_is_comfyuis_or_marked_as_a_test_helper():
    # The real-API comparison checks __all__; anything else public must say it is ours.
    for module_name in STAND_IN_MODULES:
        module = importlib.import_module(module_name)
        public = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and name != "annotations"  # from __future__
            and not inspect.ismodule(value)
            and not (
                (inspect.isclass(value) or inspect.isfunction(value)) and value.__module__ != module_name
            )
        }
        extra = sorted(public - set(module.__all__) - RECORDERS)
        assert [name for name in extra if not name.startswith("stub_")] == [], module_name
