"""PaCo-GRPO: Flow-GRPO training of a LoRA with multi-reward, log-tamed advantages.

Modules: ``config`` (the run schema) and ``presets`` (the paper's settings), ``data``
(prompt rows and splits), ``sde`` (the SDE step and its log-probability), ``rollout_adapters``
(FLUX / Kontext / Qwen-Image-Edit adapters around the real diffusers pipelines),
``rollout`` (sampling with log-probs), ``rewards``, ``advantages``, ``loss`` (PPO + KL),
``ema``, ``checkpoint``, ``metrics`` and ``trainer`` (the loop). Importing this package
imports nothing heavy.
"""
