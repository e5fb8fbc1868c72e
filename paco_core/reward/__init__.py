"""Rewards: the PaCo-Reward consistency judge (local transformers or an OpenAI-compatible
server), set / edit scoring and ranking on top of it, and CLIP-T / PickScore.

Import the submodules you need; this package imports nothing heavy.
"""
