"""Test double of ComfyUI's ``server`` module, as far as the nodes use it: a node's progress
text (``PromptServer.instance.send_progress_text``). ``stub_progress_texts()`` gives the
``(node_id, text)`` of every call (tests only)."""

from __future__ import annotations


class PromptServer:
    instance: PromptServer | None = None

    def __init__(self):
        self._texts: list[tuple[str, str]] = []

    def send_progress_text(self, text, node_id, sid=None) -> None:
        self._texts.append((str(node_id), text if isinstance(text, str) else bytes(text).decode()))

    def stub_progress_texts(self) -> list[tuple[str, str]]:
        return list(self._texts)


PromptServer.instance = PromptServer()
