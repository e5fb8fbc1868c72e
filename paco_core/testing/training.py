"""Training settings that make a PaCo-GRPO job finish in seconds on the tiny models.

``TINY_TRAINING`` is a config override (the shape of PaCo Train LoRA's ``advanced_json``):
merged over a preset it keeps the preset's algorithm but shrinks the work to a 32-pixel
eval, 2 sampling steps, one prompt per iteration, an evaluation and a checkpoint every
step. Used by the tests of the training nodes and by ``tools/workflow_results.py``.
"""

TINY_TRAINING = {
    "lora": {"rank": 4, "alpha": 8},
    "sampling": {"num_steps": 2, "noise_steps": [0], "eval_resolution": 32, "batch_size": 2,
                 "prompts_per_iteration": 1, "max_sequence_length": 16, "eval_num_steps": 2},
    "rewards": {"aggregation": "weighted_sum"},
    "optim": {"clip_range": 0.2, "optimizer_steps_per_iteration": 1},
    "ema": {"use_ema": False},
    "data": {"num_eval_prompts": 1, "eval_fraction": 0.5},
    "eval_every": 1, "checkpoint_every": 1,
}  # fmt: skip
