"""One training loop for both steps (fine-tune a teacher, distil a student), on `accelerate`.

`python -m demo.distill ...` runs it on one device; `accelerate launch ... -m demo.distill ...` on
several processes (GPUs, machines, or CPU processes over gloo) with the same code. Batches are
global: `--batch-size 32` on 2 processes gives each 16 rows of the same 32 (split_batches), so a
run's data order and optimiser steps do not depend on how many processes share it.

AdamW with linear warm-up and decay, clipping, accumulation, mixed precision, a seed, evaluation per
epoch (gathered across processes), the best epoch kept, exact resumption, history.jsonl and trackers.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from demo.core.formatting import json_text
from demo.core.progress import ProgressLine
from demo.distill.args import TrainArguments
from demo.distill.batches import (
    Examples,
    LengthGroupedBatches,
    StreamedExamples,
    data_loader,
)
from demo.distill.budget import Plan
from demo.distill.checkpoints import BEST_FILE, RunFiles, save_checkpoint
from demo.distill.objectives import classification_accuracy
from demo.distill.run_status import RunStatus

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


Scorer = Callable[[object, torch.nn.Module, DataLoader], float]  # (accelerator, model, validation loader) -> score


def _mean_over_processes(accelerator, values: dict[str, float]) -> dict[str, float]:
    """Each process saw its share of every batch: the loss of the whole batch is the mean of theirs."""
    if accelerator.num_processes == 1 or not values:
        return values
    means = accelerator.reduce(torch.tensor(list(values.values()), device=accelerator.device), reduction="mean")
    return dict(zip(values, means.tolist()))


def _write_history(run: RunFiles | None, accelerator, row: dict) -> None:
    if run is not None and accelerator.is_main_process:
        with open(run.out / HISTORY_FILE, "a", encoding="utf-8") as f:
            f.write(json_text(row, indent=None) + "\n")
    if accelerator.trackers:
        accelerator.log({k: v for k, v in row.items() if isinstance(v, (int, float)) and k != "step"},
                        step=row["step"])


LossFn = Callable[[torch.nn.Module, dict], tuple[torch.Tensor, dict]]  # (model, batch) -> (loss, {term: value})


@dataclass
class LoopState:
    """Where the loop stands. Saved in every checkpoint: a resumed run carries on from it."""

    step: int = 0  # optimiser steps done
    epoch: int = 0  # passes finished
    batches_in_epoch: int = 0  # batches of the current pass already trained on
    epoch_sums: dict = field(default_factory=dict)  # loss terms summed over this pass's batches
    epoch_batches: int = 0
    history: list = field(default_factory=list)  # one row per evaluation
    best_accuracy: float = -1.0
    best_epoch: int = -1


@dataclass
class Trainee:
    """What one fit() trains: the model, its rows, its loss, and what the best epoch is chosen by."""

    model: torch.nn.Module
    train: Examples | StreamedExamples
    validation: Examples
    loss_fn: LossFn
    desc: str = "train"  # its name in progress lines, history and the run's status ("distill", "finetune", ...)
    total_steps: int | None = None  # a budget in optimiser steps (None: the epochs' own)
    # the module scored (the student inside a training wrapper), and how: (accelerator, module, validation
    # loader) -> classification accuracy, or masked-token accuracy for a masked LM, gathered over every process
    predictor: Callable[[torch.nn.Module], torch.nn.Module] = lambda m: m
    score: Scorer = classification_accuracy


def fit(trainee: Trainee, accelerator, targs: TrainArguments, *, run: RunFiles | None = None,
        status: RunStatus | None = None, max_evaluations: int = 40) -> FitResult:
    """Train, evaluate after each epoch, restore the best epoch's weights. Returns the history.

    trainee.total_steps: e.g. to give a baseline the same budget as the run it is compared with; the data
    is passed over as many times as that takes, the last pass cut short. With many short passes,
    evaluation happens every pass for the first ten, then every few passes.
    targs: the optimiser, batch and seed settings (--epochs, --batch-size, --learning-rate, ...).
    run: where the main run keeps history.jsonl and its checkpoints (None for baselines).
    status: the run's --status-file writer (each fit one entry of it; None: nothing written).
    """
    status = status if status is not None else RunStatus()
    plan = Plan.of(len(trainee.train), targs.batch_size, accelerator.gradient_accumulation_steps, targs.epochs,
                   trainee.total_steps, max_evaluations)
    loop = _Loop(trainee, accelerator, targs, plan, run=run, status=status)
    if accelerator.is_main_process:
        status.fit_started(trainee.desc, plan.total_steps, plan.epochs, plan.steps_per_epoch, loop.state.step)
    start = time.perf_counter()
    for epoch in range(loop.state.epoch, plan.epochs):
        loop.train_epoch(epoch)
        loop.end_epoch(epoch + 1)
    return loop.finish(time.perf_counter() - start)


def _rng_neutral_start(batches):
    """Iterate batches, the global torch RNG left as it was before the first one was fetched.

    Starting a pass over a loader can draw from the global RNG (a stream's loader does); an
    uninterrupted run made that draw before its checkpoint, so a run resumed mid-pass must not make
    it again, or every dropout mask after the resume point would differ."""
    state = torch.random.get_rng_state()
    iterator = iter(batches)
    first = next(iterator, None)
    torch.random.set_rng_state(state)
    if first is None:
        return
    yield first
    yield from iterator


def _optimizer(model: torch.nn.Module, learning_rate: float, weight_decay: float) -> torch.optim.Optimizer:
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")  # the usual BERT recipe
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # frozen ones (--freeze-embeddings) not
    groups = [
        {"params": [p for n, p in trained if not any(k in n for k in no_decay)], "weight_decay": weight_decay},
        {"params": [p for n, p in trained if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=learning_rate)


class _Loop:
    """fit()'s moving parts: the prepared model, optimiser, scheduler and loaders, and the state."""

    def __init__(self, trainee: Trainee, accelerator, targs: TrainArguments, plan: Plan, *, run: RunFiles | None,
                 status: RunStatus):
        self.accelerator, self.plan, self.run, self.desc, self.status = accelerator, plan, run, trainee.desc, status
        self.loss_fn, self.predictor, self.score = trainee.loss_fn, trainee.predictor, trainee.score
        self.max_grad_norm = targs.max_grad_norm
        model, train, validation = trainee.model, trainee.train, trainee.validation
        optimizer = _optimizer(model, targs.learning_rate, targs.weight_decay)
        train_loader = data_loader(train, targs.batch_size, shuffle=True, seed=targs.seed)
        # What orders a pass (set per epoch): the length-grouped batch sampler, or the mixed stream.
        sampler = train_loader.batch_sampler
        self.order = sampler if isinstance(sampler, LengthGroupedBatches) else train_loader.dataset
        scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(targs.warmup_ratio * plan.total_steps),
                                                    plan.total_steps)
        self.model, self.optimizer, self.scheduler, self.loader, self.val_loader = accelerator.prepare(
            model, optimizer, scheduler, train_loader, data_loader(validation, targs.eval_batch_size, shuffle=False,
                                                                   seed=targs.seed))
        self.unwrapped = accelerator.unwrap_model(self.model)
        self.state, self.best_weights, self.resumed = LoopState(), None, None
        self.window: dict[str, float] = {}  # loss terms summed since the last history line
        self.window_batches = 0
        if run is not None:
            self._resume()

    def _resume(self) -> None:
        """From --resume-from-checkpoint, if given; history.jsonl is cut back to where it stood."""
        run, accelerator = self.run, self.accelerator
        self.resumed = run.resume_dir()
        if self.resumed is not None:
            self.state = LoopState(**run.check_fingerprint(self.resumed)["loop"])
            accelerator.load_state(str(self.resumed))
            if (self.resumed / BEST_FILE).is_file():
                self.best_weights = torch.load(self.resumed / BEST_FILE, map_location="cpu", weights_only=True)
            accelerator.print(f"{self.desc}: resumed from {self.resumed} at step {self.state.step:,} of "
                              f"{self.plan.total_steps:,}")
        if accelerator.is_main_process:
            history = run.out / HISTORY_FILE
            old = history.read_text().splitlines() if self.resumed is not None and history.is_file() else []
            kept = [line for line in old if json.loads(line)["step"] <= self.state.step]  # the rest comes again
            history.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def train_epoch(self, epoch: int) -> None:
        state, plan, accelerator = self.state, self.plan, self.accelerator
        # accelerate's loader sets its sampler's epoch from its own count of passes at every pass; a
        # resumed run has made fewer passes with it, so the epoch is set on the loader itself.
        self.loader.set_epoch(epoch)
        self.order.set_epoch(epoch)
        self.model.train()
        skip = state.batches_in_epoch
        batches = accelerator.skip_first_batches(self.loader, skip) if skip else self.loader
        accumulation = accelerator.gradient_accumulation_steps
        epoch_steps = min(plan.steps_per_epoch, plan.total_steps - state.step + math.ceil(skip / accumulation))
        with ProgressLine(f"{self.desc} epoch {epoch + 1}/{plan.epochs}", unit="steps",
                          enabled=accelerator.is_main_process) as progress:
            for batch in _rng_neutral_start(batches) if skip else batches:
                if state.step >= plan.total_steps:
                    break
                _loss, parts = self._train_batch(batch)
                if not accelerator.sync_gradients:
                    continue  # gradients accumulate: no optimiser step yet
                state.step += 1
                if accelerator.is_main_process:
                    self.status.step(self.desc, state.step)
                mean_loss = state.epoch_sums["loss"] / state.epoch_batches
                progress(math.ceil(state.batches_in_epoch / accumulation), epoch_steps,
                         ", ".join([f"loss {mean_loss:.4f}", *(f"{k} {v:.3f}" for k, v in parts.items())]))
                if self.run is not None and state.step % self.run.logging_steps == 0:
                    self._log_window(epoch)
                if self.run is not None and self.run.checkpoint_steps and state.step % self.run.checkpoint_steps == 0:
                    save_checkpoint(accelerator, self.run, asdict(state), self.best_weights)

    def _train_batch(self, batch: dict) -> tuple[torch.Tensor, dict]:
        state, accelerator = self.state, self.accelerator
        with accelerator.accumulate(self.model):
            loss, parts = self.loss_fn(self.model, batch)
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        state.batches_in_epoch += 1
        state.epoch_batches += 1
        self.window_batches += 1
        for k, v in {"loss": loss.item(), **parts}.items():
            state.epoch_sums[k] = state.epoch_sums.get(k, 0.0) + v
            self.window[k] = self.window.get(k, 0.0) + v
        return loss, parts

    def _log_window(self, epoch: int) -> None:
        """A history.jsonl line: the mean of each loss term since the last line, over every process."""
        means = _mean_over_processes(self.accelerator, {k: v / self.window_batches for k, v in self.window.items()})
        _write_history(self.run, self.accelerator, {
            "step": self.state.step,
            "epoch": round(epoch + self.state.batches_in_epoch / self.plan.batches_per_epoch, 4),
            "lr": self.scheduler.get_last_lr()[0],
            **{("train_loss" if k == "loss" else f"train_{k}"): round(v, 6) for k, v in means.items()}})
        self.window, self.window_batches = {}, 0

    def end_epoch(self, epoch_done: int) -> None:
        """The pass's mean losses; validation (on scheduled passes) and the best weights so far."""
        state, accelerator = self.state, self.accelerator
        sums, n = state.epoch_sums, max(state.epoch_batches, 1)
        state.epoch, state.batches_in_epoch, state.epoch_sums, state.epoch_batches = epoch_done, 0, {}, 0
        if not self.plan.evaluates(epoch_done):
            return
        accuracy = self.score(accelerator, self.predictor(self.unwrapped), self.val_loader)
        means = _mean_over_processes(accelerator, {k: v / n for k, v in sums.items()})
        row = {"epoch": epoch_done, "step": state.step, "train_loss": means.get("loss", 0.0),
               **{f"train_{k}": v for k, v in means.items() if k != "loss"}, "validation_accuracy": accuracy}
        state.history.append(row)
        _write_history(self.run, accelerator, {**row, "evaluated": True})
        accelerator.print(f"{self.desc} epoch {epoch_done}/{self.plan.epochs}: loss {row['train_loss']:.4f}, "
                          f"validation accuracy {accuracy:.4f}", flush=True)
        if accuracy > state.best_accuracy:
            state.best_accuracy, state.best_epoch = accuracy, epoch_done
            self.best_weights = copy.deepcopy({k: v.detach().cpu() for k, v in self.unwrapped.state_dict().items()})

    def finish(self, seconds: float) -> FitResult:
        """The best epoch's weights back in the model, which leaves accelerate's hands."""
        accelerator, state = self.accelerator, self.state
        if self.best_weights is not None:
            self.unwrapped.load_state_dict(self.best_weights)
        accelerator.wait_for_everyone()
        model = accelerator.unwrap_model(self.model, keep_fp32_wrapper=False)  # mixed precision's forward patch off
        model.eval()
        accelerator.free_memory()  # drop the prepared optimizer and loaders: a baseline may follow
        return FitResult(best_epoch=state.best_epoch, best_accuracy=state.best_accuracy, history=state.history,
                         train_seconds=seconds, total_steps=self.plan.total_steps,
                         resumed_from=str(self.resumed) if self.resumed is not None else None)
