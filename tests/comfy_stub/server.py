"""Test double of ComfyUI's ``server`` module: ``PromptServer.instance`` for routes and events.

What a pack reaches through ``PromptServer.instance`` in ComfyUI 0.33, with the same
names and arguments:

- ``routes``: an aiohttp ``web.RouteTableDef``; a pack registers handlers on it at import
  time (``@PromptServer.instance.routes.get("/paco/jobs")``). ComfyUI serves each route
  also under ``/api``; so does ``stub_app()``.
- ``send_sync(event, data, sid=None)``: thread-safe; sends ``{"type": event, "data": data}``
  to the websocket clients (``sid`` picks one), bytes for an integer event.
  ``send_progress_text(text, node_id, sid=None)``: a node's progress text, ComfyUI's
  binary message.
- ``loop`` (the event loop the server runs on), ``client_id`` (the client whose prompt
  runs), ``last_node_id``, ``sockets``, ``prompt_queue`` (``put``, ``get``, ``task_done``,
  ``get_tasks_remaining``: how busy the queue is), ``add_on_prompt_handler(handler)``
  (called with every prompt posted to ``/prompt``; ``trigger_on_prompt`` runs them).

For the tests (``stub_`` names): ``stub_events`` records every ``send_sync`` call;
``stub_wait_for_event(event)`` waits for one; ``stub_progress_texts()`` decodes the progress
texts; ``stub_app()`` is an aiohttp application serving the registered routes and ``/ws``
(serve it with aiohttp's test server or a loopback ``web.AppRunner``); ``stub_reset()``
forgets events, queue and handlers but keeps the routes the pack registered.
"""

from __future__ import annotations

import asyncio
import heapq
import struct
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web


class BinaryEventTypes:
    """Integer event types of ComfyUI's binary websocket messages (the one the pack sends)."""

    TEXT = 3


@dataclass(frozen=True)
class SentEvent:
    """One ``send_sync`` call (tests only)."""

    event: str | int
    data: Any
    sid: str | None


class PromptQueue:
    """The prompt queue, as far as a pack looks at it: what is queued and running."""

    def __init__(self, server: PromptServer):
        self.server = server
        self.mutex = threading.RLock()
        self.queue: list[tuple] = []
        self.currently_running: dict[int, tuple] = {}
        self.task_counter = 0

    def put(self, item) -> None:
        """Queue ``(number, prompt_id, prompt, extra_data, outputs_to_execute, sensitive)``."""
        with self.mutex:
            heapq.heappush(self.queue, item)
        self.server.queue_updated()

    def get(self, timeout=None):
        """Start the next prompt: ``(item, item_id)``, or None when none came in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self.mutex:
                if self.queue:
                    item = heapq.heappop(self.queue)
                    item_id, self.task_counter = self.task_counter, self.task_counter + 1
                    self.currently_running[item_id] = item
                    break
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(0.01)
        self.server.queue_updated()
        return item, item_id

    def task_done(self, item_id, history_result, status, process_item=None) -> None:
        """The prompt started as ``item_id`` finished."""
        with self.mutex:
            self.currently_running.pop(item_id)
        self.server.queue_updated()

    def get_tasks_remaining(self) -> int:
        """Prompts queued or running; 0 when ComfyUI is idle."""
        with self.mutex:
            return len(self.queue) + len(self.currently_running)


class PromptServer:
    """ComfyUI's server object; the instance is ``PromptServer.instance``."""

    instance: PromptServer = None

    def __init__(self, loop):
        PromptServer.instance = self
        self.loop = loop
        self.routes = web.RouteTableDef()
        self.client_id = None
        self.last_node_id = None
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.messages: asyncio.Queue | None = None
        self.on_prompt_handlers: list = []
        self.prompt_queue = PromptQueue(self)
        self.stub_events: list[SentEvent] = []
        self._events_changed = threading.Condition()
        self.routes.get("/ws")(self._websocket)

    # ------------------------------------------------------------ ComfyUI's API

    def send_sync(self, event, data, sid=None) -> None:
        """Send an event to the clients from any thread (ComfyUI queues it on ``loop``)."""
        with self._events_changed:
            self.stub_events.append(SentEvent(event, data, sid))
            self._events_changed.notify_all()
        loop, messages = self.loop, self.messages
        if messages is not None:
            try:
                loop.call_soon_threadsafe(messages.put_nowait, (event, data, sid))
            except RuntimeError:  # the app stopped meanwhile: recorded, not delivered
                pass

    def send_progress_text(self, text, node_id, sid=None) -> None:
        """Show ``text`` on node ``node_id`` (ComfyUI's binary TEXT message)."""
        body = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        node = str(node_id).encode("utf-8")
        self.send_sync(BinaryEventTypes.TEXT, struct.pack(">I", len(node)) + node + body, sid)

    def get_queue_info(self) -> dict:
        return {"exec_info": {"queue_remaining": self.prompt_queue.get_tasks_remaining()}}

    def queue_updated(self) -> None:
        self.send_sync("status", {"status": self.get_queue_info()})

    def add_on_prompt_handler(self, handler) -> None:
        self.on_prompt_handlers.append(handler)

    def trigger_on_prompt(self, json_data):
        """Run the handlers on a posted prompt, each on the previous one's result."""
        for handler in self.on_prompt_handlers:
            json_data = handler(json_data)
        return json_data

    async def send(self, event, data, sid=None) -> None:
        """Deliver one event to the websocket clients (``sid``: only that one)."""
        if sid is None:
            sockets = list(self.sockets.values())
        else:
            sockets = [self.sockets[sid]] if sid in self.sockets else []
        for socket in sockets:
            if isinstance(data, bytes | bytearray):
                await socket.send_bytes(struct.pack(">I", event) + bytes(data))
            else:
                await socket.send_json({"type": event, "data": data})

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        sid = request.rel_url.query.get("clientId") or uuid.uuid4().hex
        self.sockets[sid] = socket
        try:
            await self.send("status", {"status": self.get_queue_info(), "sid": sid}, sid)
            async for message in socket:
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            self.sockets.pop(sid, None)
        return socket

    # ------------------------------------------------------------ for the tests

    def stub_wait_for_event(self, event, timeout: float = 5.0) -> SentEvent:
        """The first recorded event named ``event``, waiting up to ``timeout`` seconds."""
        with self._events_changed:
            found = self._events_changed.wait_for(
                lambda: next((e for e in self.stub_events if e.event == event), None), timeout
            )
        if found is None:
            raise TimeoutError(
                f"no {event!r} event within {timeout} s; sent: {[e.event for e in self.stub_events]}"
            )
        return found

    def stub_progress_texts(self) -> list[tuple[str, str]]:
        """``(node_id, text)`` of every ``send_progress_text`` call, oldest first."""
        texts = []
        for sent in self.stub_events:
            if sent.event == BinaryEventTypes.TEXT:
                (length,) = struct.unpack(">I", sent.data[:4])
                texts.append((sent.data[4 : 4 + length].decode(), sent.data[4 + length :].decode()))
        return texts

    def stub_app(self) -> web.Application:
        """An aiohttp app serving every registered route (also under ``/api``) and ``/ws``;
        while it runs, ``loop`` is its event loop and ``send_sync`` reaches its clients."""
        app = web.Application()
        for route in self.routes:
            if isinstance(route, web.RouteDef):
                app.router.add_route(route.method, "/api" + route.path, route.handler, **route.kwargs)
        app.add_routes(self.routes)
        app.cleanup_ctx.append(self._publishing)
        app.on_shutdown.append(self._close_sockets)
        return app

    async def _close_sockets(self, app: web.Application) -> None:
        for socket in list(self.sockets.values()):
            await socket.close()

    async def _publishing(self, app: web.Application):
        self.loop, self.messages = asyncio.get_running_loop(), asyncio.Queue()

        async def publish() -> None:
            while True:
                await self.send(*await self.messages.get())

        task = asyncio.create_task(publish())
        yield
        self.messages, self.loop = None, None
        task.cancel()

    def stub_reset(self) -> None:
        """Forget events, queued prompts, prompt handlers and the client id (not the routes)."""
        with self._events_changed:
            self.stub_events.clear()
        self.prompt_queue = PromptQueue(self)
        self.on_prompt_handlers.clear()
        self.client_id = self.last_node_id = None


PromptServer(None)

__all__ = ["BinaryEventTypes", "PromptServer"]
