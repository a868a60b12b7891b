"""A tokenised batch turned into exactly what one model's forward takes, on its device.

The one place this happens: a DistilBERT takes no token_type_ids, labels are never an input, and
tensors move to the model's device here (the app, benchmark, evaluator and trainer all call it).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import torch

# Real sentences for timing and int8 calibration, repeated and cut to a length (uncased English, varied
# vocabulary); never an evaluation file, which would flatter an int8 variant's agreement.
GENERIC_SENTENCES = [
    "the film is a gripping portrait of a family coming apart under pressure",
    "i was bored from the opening scene and the ending made it even worse",
    "a warm and funny story that never stoops to easy sentiment",
    "the acting is wooden and the plot makes no sense at all",
    "she felt a sudden surge of joy when the letter finally arrived",
    "he could not hide how angry the long delay had made him",
    "the quiet streets of the old city were covered in fresh snow",
    "our team shipped the new release two weeks ahead of schedule",
]


def accepted_inputs(model: torch.nn.Module) -> set[str]:
    """The keyword inputs a model's forward takes (read once per model, then remembered on it)."""
    cached = getattr(model, "_demo_accepted_inputs", None)
    if cached is None:
        cached = set(inspect.signature(model.forward).parameters)
        model._demo_accepted_inputs = cached
    return cached


def model_inputs(model: torch.nn.Module, batch: Mapping[str, torch.Tensor],
                 device: torch.device | str) -> dict[str, torch.Tensor]:
    """The batch's tensors this model's forward accepts (never "labels"), moved to device."""
    accepted = accepted_inputs(model)
    return {k: v.to(device) for k, v in batch.items() if k in accepted and k != "labels"}


IGNORE_INDEX = -100  # the label of a position or row with nothing to score (torch's cross-entropy ignore_index)
MIN_LENGTH, MAX_LENGTH = 8, 512  # tokens per text: below 8 nothing is left once [CLS]/[SEP] are in; 512 is BERT's limit


def length_problem(value: int, flag: str) -> str | None:
    """Why a tokens-per-text setting cannot be used (None when it can): one rule for every tool."""
    if not MIN_LENGTH <= value <= MAX_LENGTH:
        return f"{flag} must lie between {MIN_LENGTH} and {MAX_LENGTH} tokens."
    return None
