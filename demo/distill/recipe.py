"""The default recipe for a small labelled set, fitted to a budget: the teacher labels augmented variants
of the labelled texts, as many as the rows call for and the budget allows.

Why: with a few thousand labelled rows, copying the teacher on those same rows buys little over training
on their labels (the student sees the same texts either way); what distillation adds is the teacher's
answers on text the labels do not cover (Tang et al., 2019; TinyBERT's ablation). Measured in
docs/results.md ("What distillation bought"). Pure: counts in, a plan and the sentence that explains it
out; the CLI prints that sentence first, the page shows it before Start.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from demo.core.errors import UsageError
from demo.distill.budget import steps_per_epoch

AUTO_BELOW = 10_000  # --augment auto generates text below this many labelled rows (20,000 rows already keep 0.99)
AUTO_TEXTS = 20_000  # ... about this many generated texts (fewer by the transfer texts given): 1,000 rows x 20
AUTO_MAX_VARIANTS = 20  # ... and at most this many variants of one text (Tang et al. and TinyBERT use 20)
MIN_WORDS = 3  # a text of fewer words has too little to mask, swap or cut: it is not varied


@dataclass(frozen=True)
class AugmentPlan:
    variants: int  # augmented variants per labelled text (0: none)
    reason: str  # one sentence: what is generated and why (the run's first line)
    labelled_only_steps: int | None = None  # the budget fits less than one pass over the labelled rows


def auto_variants(n_labelled: int, n_transfer: int) -> int:
    """Variants per labelled text for about AUTO_TEXTS texts the labels do not cover, counting the transfer
    texts given (0 from AUTO_BELOW labelled rows)."""
    if n_labelled <= 0 or n_labelled >= AUTO_BELOW:
        return 0
    return min(AUTO_MAX_VARIANTS, max(0, math.ceil((AUTO_TEXTS - n_transfer) / n_labelled)))


TOO_SHORT = (f"no augmentation: every text has fewer than {MIN_WORDS} words, too short to vary by masking, swapping "
             "or cutting; training without it")


def can_vary(texts: Sequence[str]) -> bool:
    """Whether augmentation can vary any of these texts (MIN_WORDS words or more)."""
    return any(len(t.split()) >= MIN_WORDS for t in texts)


@dataclass(frozen=True)
class Passes:
    """How a run passes over its text: --epochs, the global batch, gradient accumulation, and --max-steps
    (None: no cap), to which the auto recipe fits its variants."""

    epochs: int
    batch_size: int
    accumulation: int = 1
    max_steps: int | None = None


def plan_augmentation(asked: str, n: int, variable: bool, n_transfer: int, teacher_targets: bool,
                      passes: Passes) -> AugmentPlan:
    """asked: --augment ("auto", or a number of variants); n labelled rows, of which some can be varied
    (can_vary). The auto recipe fits its variants to passes.max_steps; an explicit number is a plan told
    to the run (the page's): kept as asked (--max-steps then cuts passes as for any run), or refused where
    the run cannot honour it."""
    epochs, batch_size, accumulation, budget_steps = passes.epochs, passes.batch_size, passes.accumulation, \
        passes.max_steps
    one_pass = steps_per_epoch(n, batch_size, accumulation)
    if asked != "auto":
        wanted = int(asked)
        if wanted and not variable:
            raise UsageError(f"--augment {wanted}: every text has fewer than {MIN_WORDS} words, too short to vary "
                             "by masking, swapping or cutting; pass --augment 0 (or auto: it trains without them).")
        if wanted and budget_steps is not None and one_pass > budget_steps:
            raise UsageError(f"--augment {wanted} with --max-steps {budget_steps:,}: those steps are less than one "
                             f"pass over the {n:,} labelled rows ({one_pass:,} steps), so no variant would be seen; "
                             "raise --max-steps, or pass --augment 0.")
    if budget_steps is not None and one_pass > budget_steps:
        return AugmentPlan(0, f"no augmentation: the budget of {budget_steps:,} steps is less than one pass over "
                              f"the {n:,} labelled rows ({one_pass:,} steps), so the labelled rows alone train for "
                              "those steps", labelled_only_steps=budget_steps)
    if asked != "auto":
        return AugmentPlan(wanted, f"augmentation: {wanted} teacher-labelled variants of each labelled text "
                                   "(--augment)" if wanted else "no augmentation (--augment 0)")
    if not teacher_targets:
        return AugmentPlan(0, "no augmentation: generated text has no labels, and this loss takes no soft targets "
                              "(--alpha-ce 0)")
    wanted = auto_variants(n, n_transfer)
    if not wanted:
        return AugmentPlan(0, f"no augmentation: {n + n_transfer:,} texts are plenty (the default generates text "
                              f"for fewer than {AUTO_BELOW:,} labelled rows; --augment N asks for it)")
    if not variable:
        return AugmentPlan(0, TOO_SHORT)
    why = (f"the default for fewer than {AUTO_BELOW:,} labelled rows: about {AUTO_TEXTS:,} texts the labels do not "
           f"cover, at most {AUTO_MAX_VARIANTS} variants of a text; --augment 0 turns it off")
    if budget_steps is not None:
        fits = budget_steps // max(1, epochs) * batch_size * accumulation  # rows one pass may hold
        fitted = max(0, min(wanted, (fits - n - n_transfer) // n))
        if fitted < wanted:
            if not fitted:
                return AugmentPlan(0, f"no augmentation: the budget of {budget_steps:,} steps fits {epochs} passes "
                                      "over the labelled rows and no generated text")
            why += f"; cut from {wanted} to fit {budget_steps:,} steps at {epochs} passes"
            wanted = fitted
    return AugmentPlan(wanted, f"augmentation: {wanted} teacher-labelled variants of each labelled text ({why})")
