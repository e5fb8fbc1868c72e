"""Rewards: the PaCo-Reward consistency judge (local transformers or an OpenAI-compatible
server), set / edit scoring and ranking on top of it, and CLIP-T / PickScore.

``open_judge`` turns any judge source (folder, base + LoRA, hub id, server URL) into a
judge. Import the other submodules you need; this package imports nothing heavy.
"""

from paco_core.reward.judge_client import is_server_url
from paco_core.reward.opener import open_judge

__all__ = ["is_server_url", "open_judge"]
