"""The pack's socket types: what PaCo nodes pass between each other, each declared once here
and imported by every node that offers or takes it (``io.Custom`` types named ``PACO_*``)."""

from __future__ import annotations

from comfy_api.latest import io

PacoPipeline = io.Custom("PACO_PIPELINE")
"""A loaded pipeline with its LoRAs (PaCo Pipeline Loader, PaCo LoRA -> Generate / Edit)."""
PacoJudge = io.Custom("PACO_JUDGE")
"""A local judge or a judge server client (PaCo Judge Loader -> the scoring nodes, PaCo Train LoRA)."""
PacoJob = io.Custom("PACO_JOB")
"""A training job's id (PaCo Train LoRA -> PaCo Training Job)."""
PacoPromptSet = io.Custom("PACO_PROMPT_SET")
"""A prompt set's row files (PaCo Prompt Set -> PaCo Train LoRA)."""
ComboValue = io.Custom("COMBO")
"""An output holding a dropdown's value, to wire into a dropdown input (type ``COMBO``). Not
``io.Combo.Output``: ComfyUI 0.3.6x types that output by its list of options, and its prompt
validation then refuses the link into a dropdown input."""
