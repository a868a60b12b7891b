"""One training loop for both steps (fine-tune a teacher, distil a student), on `accelerate`.

`python -m demo.distill ...` runs it on one device; `accelerate launch ... -m demo.distill ...` on
several processes (GPUs, machines, or CPU processes over gloo) with the same code. Batches are
global: `--batch-size 32` on 2 processes gives each 16 rows of the same 32 (split_batches), so a
run's data order and optimiser steps do not depend on how many processes share it.

AdamW with linear warm-up and decay, gradient clipping and accumulation, mixed precision through
accelerate, a seed, evaluation per epoch (gathered across processes), the best epoch's weights
kept, checkpoints that resume exactly, and history.jsonl (plus accelerate's trackers).
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from ..errors import UsageError
from ..progress import ProgressLine
from .batches import Examples, LengthGroupedBatches, StreamedExamples, data_loader
from .checkpoints import BEST_FILE, RunFiles, save_checkpoint

HISTORY_FILE = "history.jsonl"


@dataclass
class FitResult:
    best_epoch: int
    best_accuracy: float
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    total_steps: int = 0
    resumed_from: str | None = None


def set_seed(seed: int) -> None:
    from accelerate.utils import set_seed as accelerate_set_seed

    random.seed(seed)
    accelerate_set_seed(seed)  # python, numpy, torch (and CUDA) alike


def check_mixed_precision(mode: str, device_type: str) -> None:
    """Refuse a precision the device cannot run, before anything is loaded."""
    if mode == "fp16" and device_type not in ("cuda", "mps"):
        raise UsageError(f"--mixed-precision fp16 needs a GPU; this run is on {device_type}. Use bf16 or no.")
    if mode == "bf16" and not bf16_supported(device_type):
        raise UsageError(f"--mixed-precision bf16: this {device_type} device cannot compute in bfloat16. "
                         "Use fp16 (GPU) or no.")


def bf16_supported(device_type: str) -> bool:
    if device_type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device_type == "mps":
        return torch.backends.mps.is_macos_or_newer(14, 0)
    return device_type == "cpu"  # PyTorch's CPU autocast computes in bfloat16 on any x86/ARM CPU


def make_accelerator(device: str, mixed_precision: str, gradient_accumulation_steps: int,
                     report_to: str = "none", project_dir: str | None = None):
    """One Accelerator per run. Outside `accelerate launch` a new run in the same process (tests,
    notebooks) may change the precision, so the single-process state is reset first."""
    import os

    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DataLoaderConfiguration

    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        AcceleratorState._reset_state(reset_partial_state=True)
    # Without a GPU, processes started by `accelerate launch --multi_gpu` join over gloo on the CPU
    # (MULTI_CPU) only when told cpu=True; otherwise each would run alone.
    gpu = torch.cuda.is_available() or bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    cpu = device == "cpu" or (device == "auto" and not gpu)
    trackers = None if report_to == "none" else [t.strip() for t in report_to.split(",") if t.strip()]
    if trackers:
        from accelerate.tracking import get_available_trackers
        from accelerate.utils import LoggerType

        known = [t for t in LoggerType.list() if t != "all"]
        unknown = [t for t in trackers if t not in known]
        if unknown:
            raise UsageError(f"--report-to {','.join(unknown)}: not a tracker accelerate knows; pick from none, "
                             f"{', '.join(known)}.")
        missing = [t for t in trackers if t not in [str(a) for a in get_available_trackers()]]
        if missing:
            raise UsageError(f"--report-to {','.join(missing)}: not installed here; pip install {' '.join(missing)} "
                             "(or --report-to none; history.jsonl is always written).")
    accelerator = Accelerator(cpu=cpu, mixed_precision=mixed_precision,
                              gradient_accumulation_steps=gradient_accumulation_steps, log_with=trackers,
                              project_dir=project_dir,
                              dataloader_config=DataLoaderConfiguration(split_batches=True))
    check_mixed_precision(mixed_precision, accelerator.device.type)
    return accelerator


@torch.inference_mode()
def gathered_predictions(accelerator, model: torch.nn.Module, loader: DataLoader) -> tuple[list[int], list[int]]:
    """Argmax predictions and labels of every validation row, gathered from every process (the
    padding rows of an uneven last batch dropped by gather_for_metrics)."""
    from ..model_inputs import model_inputs

    model.eval()
    preds, labels = [], []
    for batch in loader:
        logits = model(**model_inputs(model, batch, accelerator.device)).logits
        p, y = accelerator.gather_for_metrics((logits.argmax(-1), batch["labels"].to(accelerator.device)))
        preds += p.tolist()
        labels += y.tolist()
    return preds, labels


def _mean_over_processes(accelerator, values: dict[str, float]) -> dict[str, float]:
    """Each process saw its share of every batch: the loss of the whole batch is the mean of theirs."""
    if accelerator.num_processes == 1 or not values:
        return values
    means = accelerator.reduce(torch.tensor(list(values.values()), device=accelerator.device), reduction="mean")
    return dict(zip(values, means.tolist()))


def _write_history(run: RunFiles | None, accelerator, row: dict) -> None:
    if run is not None and accelerator.is_main_process:
        with open(run.out / HISTORY_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
    if accelerator.trackers:
        accelerator.log({k: v for k, v in row.items() if isinstance(v, (int, float)) and k != "step"},
                        step=row["step"])


LossFn = Callable[[torch.nn.Module, dict], tuple[torch.Tensor, dict]]  # (model, batch) -> (loss, {term: value})


def fit(model: torch.nn.Module, train: Examples | StreamedExamples, loss_fn: LossFn, accelerator, *,
        validation: Examples, predictor: Callable[[torch.nn.Module], torch.nn.Module] = lambda m: m, epochs: int, batch_size: int, eval_batch_size: int, learning_rate: float, weight_decay: float,
        warmup_ratio: float, max_grad_norm: float, seed: int, desc: str = "train", total_steps: int | None = None,
        max_evaluations: int = 40, run: RunFiles | None = None) -> FitResult:
    """Train, evaluate after each epoch, restore the best epoch's weights. Returns the history.

    total_steps: a budget in optimiser steps (e.g. to give a baseline the same budget as the run it
    is compared with); the data is passed over as many times as that takes, the last pass cut short.
    With many short passes, evaluation happens every pass for the first ten, then every few passes.
    predictor(model) is the module whose logits are scored (the student inside a training wrapper).
    """
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")  # the usual BERT recipe
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
         "weight_decay": weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=learning_rate)
    accumulation = accelerator.gradient_accumulation_steps
    train_loader = data_loader(train, batch_size, shuffle=True, seed=seed)
    epoch_order = train_loader.batch_sampler if train_loader.batch_sampler is not None and \
        isinstance(train_loader.batch_sampler, LengthGroupedBatches) else train_loader.dataset  # has set_epoch
    n_batches = -(-len(train) // batch_size)
    steps_per_epoch = max(1, math.ceil(n_batches / accumulation))
    total_steps = max(1, total_steps if total_steps is not None else steps_per_epoch * epochs)
    epochs = max(1, math.ceil(total_steps / steps_per_epoch))
    # Every epoch for the first ten (small data peaks early), then spaced so that at most
    # max_evaluations happen in all: a long budget on few rows must not skip its best epoch.
    eval_every = max(1, math.ceil((epochs - 10) / max(1, max_evaluations - 10)))
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(warmup_ratio * total_steps), total_steps)
    model, optimizer, scheduler, loader, val_loader = accelerator.prepare(
        model, optimizer, scheduler, train_loader, data_loader(validation, eval_batch_size, shuffle=False, seed=seed))
    unwrapped = accelerator.unwrap_model(model)

    state = {"step": 0, "epoch": 0, "batches_in_epoch": 0, "epoch_sums": {}, "epoch_batches": 0,
             "history": [], "best_accuracy": -1.0, "best_epoch": -1}
    best_state = None
    resumed = run.resume_dir() if run is not None else None
    if resumed is not None:
        state = {**state, **run.check_fingerprint(resumed)["loop"]}
        accelerator.load_state(str(resumed))
        if (resumed / BEST_FILE).is_file():
            best_state = torch.load(resumed / BEST_FILE, map_location="cpu", weights_only=True)
        accelerator.print(f"{desc}: resumed from {resumed} at step {state['step']:,} of {total_steps:,}")
    if run is not None and accelerator.is_main_process:
        history = run.out / HISTORY_FILE
        kept = [line for line in (history.read_text().splitlines() if resumed is not None and history.is_file() else [])
                if json.loads(line)["step"] <= state["step"]]  # lines after the checkpoint are logged again
        history.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    window: dict[str, float] = {}
    window_batches = 0
    start = time.perf_counter()
    for epoch in range(state["epoch"], epochs):
        # accelerate's loader sets its sampler's epoch from its own count of passes at every pass; a
        # resumed run has made fewer passes with it, so the epoch is set on the loader itself.
        loader.set_epoch(epoch)
        epoch_order.set_epoch(epoch)
        model.train()
        skip = state["batches_in_epoch"]
        batches = accelerator.skip_first_batches(loader, skip) if skip else loader
        epoch_steps = min(steps_per_epoch, total_steps - state["step"] + math.ceil(skip / accumulation))
        with ProgressLine(f"{desc} epoch {epoch + 1}/{epochs}", unit="steps",
                          enabled=accelerator.is_main_process) as progress:
            for batch in batches:
                if state["step"] >= total_steps:
                    break
                with accelerator.accumulate(model):
                    loss, parts = loss_fn(model, batch)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                state["batches_in_epoch"] += 1
                values = {"loss": loss.item(), **parts}
                for k, v in values.items():
                    state["epoch_sums"][k] = state["epoch_sums"].get(k, 0.0) + v
                    window[k] = window.get(k, 0.0) + v
                state["epoch_batches"] += 1
                window_batches += 1
                if not accelerator.sync_gradients:
                    continue
                state["step"] += 1
                mean_loss = state["epoch_sums"]["loss"] / state["epoch_batches"]
                progress(math.ceil(state["batches_in_epoch"] / accumulation), epoch_steps,
                         ", ".join([f"loss {mean_loss:.4f}", *(f"{k} {v:.3f}" for k, v in parts.items())]))
                if run is not None and state["step"] % run.logging_steps == 0:
                    means = _mean_over_processes(accelerator, {k: v / window_batches for k, v in window.items()})
                    _write_history(run, accelerator, {
                        "step": state["step"], "epoch": round(epoch + state["batches_in_epoch"] / n_batches, 4),
                        "lr": scheduler.get_last_lr()[0],
                        **{("train_loss" if k == "loss" else f"train_{k}"): round(v, 6) for k, v in means.items()}})
                    window, window_batches = {}, 0
                if run is not None and run.checkpoint_steps and state["step"] % run.checkpoint_steps == 0:
                    save_checkpoint(accelerator, run, state, best_state)
        epoch_done = epoch + 1
        state.update(epoch=epoch_done, batches_in_epoch=0)
        sums, n = state["epoch_sums"], max(state["epoch_batches"], 1)
        state.update(epoch_sums={}, epoch_batches=0)
        if epoch_done > 10 and (epoch_done - 10) % eval_every and epoch_done < epochs:
            continue
        preds, labels = gathered_predictions(accelerator, predictor(unwrapped), val_loader)
        accuracy = sum(p == y for p, y in zip(preds, labels)) / max(len(labels), 1)
        means = _mean_over_processes(accelerator, {k: v / n for k, v in sums.items()})
        row = {"epoch": epoch_done, "step": state["step"], "train_loss": means.get("loss", 0.0),
               **{f"train_{k}": v for k, v in means.items() if k != "loss"}, "validation_accuracy": accuracy}
        state["history"].append(row)
        _write_history(run, accelerator, {**row, "evaluated": True})
        accelerator.print(f"{desc} epoch {epoch_done}/{epochs}: loss {row['train_loss']:.4f}, "
                          f"validation accuracy {accuracy:.4f}", flush=True)
        if accuracy > state["best_accuracy"]:
            state["best_accuracy"], state["best_epoch"] = accuracy, epoch_done
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in unwrapped.state_dict().items()})
    result = FitResult(best_epoch=state["best_epoch"], best_accuracy=state["best_accuracy"],
                       history=state["history"], train_seconds=time.perf_counter() - start, total_steps=total_steps,
                       resumed_from=str(resumed) if resumed is not None else None)
    if best_state is not None:
        unwrapped.load_state_dict(best_state)
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model, keep_fp32_wrapper=False)  # mixed precision's forward patch off
    unwrapped.eval()
    accelerator.free_memory()  # drop the prepared optimizer and loaders: a baseline may follow
    return result


def forward(model: torch.nn.Module, batch: dict, device, **extra):
    """A training forward pass through the prepared model (DDP's wrapper, where there is one, must
    see the call), given exactly the inputs the inner model takes."""
    from ..model_inputs import model_inputs

    inner = getattr(model, "module", model)
    return model(**model_inputs(inner, batch, device), **extra)


@torch.inference_mode()
def predict_ids(model: torch.nn.Module, batch_iter, device) -> list[int]:
    """Argmax class ids in one process (final figures on the main process)."""
    from ..model_inputs import model_inputs

    model.eval()
    out = []
    for batch in batch_iter:
        out += model(**model_inputs(model, batch, device)).logits.argmax(-1).tolist()
    return out
