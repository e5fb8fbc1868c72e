"""``guardrail_action: rollback``: on a guardrail warning, the LoRA goes back to the best evaluation.

The live LoRA weights, their EMA and the optimizer state are restored from the checkpoint of
the guardrail's best step; the step count, the data order and the noise go on, so training
continues from the best weights along another path (the same path would lead to the same
gaming). It needs that checkpoint on disk: evaluate and checkpoint at the same steps
(``checkpoint_every`` = ``eval_every``) and keep enough of them (``checkpoints_total_limit``).
When it cannot roll back (no best step, its checkpoint pruned, several processes) the trainer
stops instead, which keeps best/ as the run's best LoRA.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

logger = logging.getLogger(__name__)


def roll_back_to_best(trainer: Any) -> str | None:
    """Restore the trainer's LoRA, EMA and optimizer from its best step's checkpoint.

    Returns:
        What was done (the warning's ``action``): the weights restored, or nothing to undo
        when the current evaluation is itself the best; None when the trainer should stop instead.
    """
    from paco_core.rl import checkpoint as ckpt
    from paco_core.rl.sharding import load_full_optimizer_state, shard_like

    best = trainer.guardrail.best_step
    if best is not None and best == trainer.step:
        return "kept: this evaluation is the best so far"
    if trainer.accelerator.num_processes > 1 or best is None:
        return None
    found = trainer.run_folder.checkpoint(best)
    if found is None:
        logger.warning("guardrail rollback: the checkpoint of the best step %d is not on disk", best)
        return None
    loaded = ckpt.load_checkpoint(found.path)
    with torch.no_grad():
        for name, param in trainer.named_trainable:
            param.copy_(shard_like(loaded.policy[name], param))
    load_full_optimizer_state(trainer.optimizer, loaded.optimizer)
    if trainer.ema is not None and loaded.ema is not None:
        trainer.ema.load_state_dict(loaded.ema)
    logger.warning("guardrail rollback: the LoRA, its EMA and optimizer are back at step %d", best)
    return f"rolled back to step {best}"
