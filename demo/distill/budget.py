"""A training budget in optimiser steps: one rule for how many steps a pass over the rows takes (the
loop, the CLI's --epochs/--min-steps/--max-steps, the app's estimate all use it), and the plan of passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def steps_per_epoch(n_rows: int, batch_size: int, accumulation: int = 1) -> int:
    """Optimiser steps in one pass over n_rows: the one rule (the loop, the budget, the app's estimate)."""
    return max(1, -(-n_rows // (batch_size * accumulation)))


@dataclass(frozen=True)
class Plan:
    """How many optimiser steps and passes a budget takes, and which passes are evaluated."""

    batches_per_epoch: int
    steps_per_epoch: int
    total_steps: int
    epochs: int
    eval_every: int

    @classmethod
    def of(cls, n_rows: int, batch_size: int, accumulation: int, epochs: int, total_steps: int | None,
           max_evaluations: int) -> Plan:
        batches = steps_per_epoch(n_rows, batch_size)
        per_epoch = steps_per_epoch(n_rows, batch_size, accumulation)
        total = max(1, total_steps if total_steps is not None else per_epoch * epochs)
        epochs = max(1, math.ceil(total / per_epoch))
        # Every epoch for the first ten (small data peaks early), then spaced so that at most
        # max_evaluations happen in all: a long budget on few rows must not skip its best epoch.
        return cls(batches, per_epoch, total, epochs, max(1, math.ceil((epochs - 10) / max(1, max_evaluations - 10))))

    def evaluates(self, epoch_done: int) -> bool:
        return epoch_done <= 10 or (epoch_done - 10) % self.eval_every == 0 or epoch_done == self.epochs
