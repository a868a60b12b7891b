"""One training loop for both steps (fine-tune a teacher, distil a student).

AdamW with linear warm-up and decay, gradient clipping, a seed, fp16 autocast on CUDA, a
progress bar, evaluation every epoch, and the best epoch's weights kept.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from transformers import get_linear_schedule_with_warmup

from ..model_inputs import model_inputs
from ..progress import ProgressLine


@dataclass
class FitResult:
    best_epoch: int
    best_accuracy: float
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    total_steps: int = 0


def set_seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


@torch.inference_mode()
def predict_ids(model: torch.nn.Module, batch_iter: Iterable[dict], device: torch.device) -> list[int]:
    model.eval()
    out = []
    for batch in batch_iter:
        out += model(**model_inputs(model, batch, device)).logits.argmax(-1).tolist()
    return out


def fit(model: torch.nn.Module, make_train_batches: Callable[[int], Iterable[dict]], steps_per_epoch: int,
        loss_fn: Callable[[torch.nn.Module, dict], tuple[torch.Tensor, dict]],
        evaluate: Callable[[torch.nn.Module], float], *, epochs: int, learning_rate: float,
        weight_decay: float, warmup_ratio: float, max_grad_norm: float, device: torch.device,
        desc: str = "train", total_steps: int | None = None, max_evaluations: int = 40) -> FitResult:
    """Train, evaluate after each epoch, restore the best epoch's weights. Returns the history.

    total_steps: a budget in optimiser steps (e.g. to give a baseline the same budget as the run it
    is compared with); the data is passed over as many times as that takes, the last pass cut short.
    With many short passes, evaluation happens every pass for the first ten, then every few passes.
    """
    model.to(device)
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")  # the usual BERT recipe
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
         "weight_decay": weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=learning_rate)
    if total_steps is None:
        total_steps = steps_per_epoch * epochs
    total_steps = max(1, total_steps)
    epochs = max(1, math.ceil(total_steps / max(1, steps_per_epoch)))
    # Every epoch for the first ten (small data peaks early), then spaced so that at most
    # max_evaluations happen in all: a long budget on few rows must not skip its best epoch.
    eval_every = max(1, math.ceil((epochs - 10) / max(1, max_evaluations - 10)))
    steps_done = 0
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(warmup_ratio * total_steps), total_steps)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    result = FitResult(best_epoch=-1, best_accuracy=-1.0, total_steps=total_steps)
    best_state = None
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        running, seen, part_sums = 0.0, 0, {}
        epoch_steps = min(steps_per_epoch, total_steps - steps_done)
        with ProgressLine(f"{desc} epoch {epoch + 1}/{epochs}", unit="steps") as progress:
            for batch in make_train_batches(epoch):
                if steps_done >= total_steps:
                    break
                steps_done += 1
                with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                    loss, parts = loss_fn(model, batch)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                running += loss.item()
                seen += 1
                for k, v in parts.items():
                    part_sums[k] = part_sums.get(k, 0.0) + v
                progress(seen, epoch_steps, ", ".join([f"loss {running / seen:.4f}",
                                                       *(f"{k} {v:.3f}" for k, v in parts.items())]))
        if epoch + 1 > 10 and (epoch + 1 - 10) % eval_every and epoch + 1 < epochs:
            continue
        accuracy = evaluate(model)
        result.history.append({"epoch": epoch + 1, "step": steps_done, "train_loss": running / max(seen, 1),
                               **{f"train_{k}": v / max(seen, 1) for k, v in part_sums.items()},
                               "validation_accuracy": accuracy})
        print(f"{desc} epoch {epoch + 1}/{epochs}: loss {running / max(seen, 1):.4f}, "
              f"validation accuracy {accuracy:.4f}", flush=True)
        if accuracy > result.best_accuracy:
            result.best_accuracy, result.best_epoch = accuracy, epoch + 1
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
    result.train_seconds = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result
