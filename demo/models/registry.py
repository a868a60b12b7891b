"""The configured pairs, loaded in the background, with a status per model the page can show.

The app, the benchmark and the evaluator all go through a PairRegistry, so they load and run
models the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from demo.core.errors import UserError
from demo.core.measure import SizeReport, size_of_loaded
from demo.models import variants
from demo.models.architecture import build_random
from demo.models.compare import Comparison, ModelFailure, compare, warm_up
from demo.models.config import (
    APP_INT8,
    PAIR,
    TASKS,
    AppConfig,
    ConfigError,
    ModelSpec,
    TaskPair,
    load_config,
)
from demo.models.loading import (
    LoadedModel,
    LoadError,
    ModelCache,
    resolve_device,
    resolve_dtype,
)

log = logging.getLogger(__name__)


def is_out_of_memory(exc: BaseException | None) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


class TaskUnavailable(UserError, RuntimeError):
    """A task whose models are still loading or failed to load; the message says which and why."""


@dataclass(frozen=True)
class ModelStatus:
    """Where one model of a pair stands, for the page's status line."""

    task: str
    variant: str
    model: str
    state: str = "queued"  # queued | loading | warming up | ready | failed
    reason: str = ""
    fix: str = ""
    seconds: float | None = None
    device: str = ""
    dtype: str = ""
    size: SizeReport | None = None

    @property
    def ready(self) -> bool:
        return self.state == "ready"


class PairRegistry:
    """Owns the configured pairs: loads them once, reports progress, runs comparisons."""

    def __init__(self, config: AppConfig, cache: ModelCache | None = None):
        self.config = config
        self.device: torch.device = resolve_device(config.device)
        self.dtype: torch.dtype = resolve_dtype(self.device, config.fp16)
        self.cache = cache or ModelCache()
        self._lock = threading.Lock()
        self._models: dict[tuple[str, str], LoadedModel] = {}
        self._status: dict[tuple[str, str], ModelStatus] = {
            (task, variant): ModelStatus(task, variant, config.pairs[task].spec(variant).model)
            for task in config.tasks for variant in config.pairs[task].variants
        }
        self._teacher_first: dict[str, bool] = dict.fromkeys(config.tasks, True)
        self._task_device: dict[str, torch.device] = {}  # tasks moved off the default device
        self._thread: threading.Thread | None = None

    @classmethod
    def for_task(cls, config_path: str | None, task: str, device: str | None) -> PairRegistry:
        """Only one task's pair from a config file, loaded now (a CLI has nothing to do until it is)."""
        config = load_config(config_path)
        if task not in config.pairs:
            raise ConfigError(f"task {task!r} is not in {config.source}; configured: {', '.join(config.tasks)}.")
        registry = cls(replace(config, pairs={task: config.pairs[task]}, device=device or config.device))
        registry.load_task(task)
        return registry

    # ---- loading -------------------------------------------------------------------------
    def start(self) -> threading.Thread:
        """Load every model in a background thread, one at a time (they share the CPU)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.load_all, name="model-loader", daemon=True)
            self._thread.start()
        return self._thread

    def load_all(self) -> None:
        for task in self.config.tasks:
            self.load_task(task)

    def load_task(self, task: str) -> None:
        for variant in PAIR:
            self._load_pretrained(task, variant)
        if self.config.pairs[task].int8:
            self._load_int8(task)

    def load_random(self, task: str, wait: bool = False) -> None:
        """Offline fallback: the task's architectures with random weights (latency and size only)."""
        pair = self.config.pairs[task]
        device = self._task_device.get(task, self.device)

        def work():
            for variant in PAIR:
                def build(variant=variant):
                    loaded, source = build_random(pair.spec(variant), task, variant, device)
                    return loaded, f"RANDOM WEIGHTS from the {source}"

                if not self._load_variant(task, variant, build, failure="even random weights failed",
                                          fix="Check the model's config."):
                    return

        thread = threading.Thread(target=work, name=f"random-{task}", daemon=True)
        thread.start()
        if wait:
            thread.join()

    def _load_pretrained(self, task: str, variant: str) -> None:
        spec = self.config.pairs[task].spec(variant)
        device = self._task_device.get(task, self.device)
        dtype = self.dtype if device == self.device else torch.float32
        log.info("loading %s %s: %s", task, variant, spec.model)
        self._load_variant(task, variant, lambda: (self.cache.get(spec, task, device, dtype), ""),
                           failure="its first (warm-up) pass failed", fix="Check that the checkpoint matches the task.")

    def _load_int8(self, task: str) -> None:
        """The third column: the student as int8 on this machine's fastest backend (models/variants.py)."""
        with self._lock:
            student = self._models.get((task, "student"))
        if student is None:
            self._set(task, APP_INT8, state="failed", reason="the fp32 student did not load.", fix="Fix it first.")
        elif student.device.type != "cpu":
            self._set(task, APP_INT8, state="failed", reason=f"int8 is a CPU technique here; the app runs on "
                      f"{student.device.type}.", fix="Run with --device cpu to compare it.")
        else:
            def build():
                built = variants.build(APP_INT8, {"student": student}, torch.get_num_threads())
                return built, built.note or ""  # the note: which backend, and both timings

            self._load_variant(task, APP_INT8, build, failure="the int8 export failed",
                               fix="The PyTorch student still runs.")

    def _load_variant(self, task: str, variant: str, build: Callable[[], tuple[LoadedModel, str]], *,
                      failure: str, fix: str) -> bool:
        """The one loading path: build, warm up, publish with its status; any failure becomes a status.

        build() returns the model and a note for its status line (e.g. that its weights are random).
        A LoadError keeps its own reason and fix; anything else is logged with its traceback and
        shown as `failure` (a broken model must not stop the others, nor leave a thread "loading").
        """
        start = time.perf_counter()
        self._set(task, variant, state="loading", reason="", fix="")
        try:
            loaded, note = build()
            self._set(task, variant, state="warming up")
            warm_up(loaded)
        except LoadError as exc:
            log.warning("could not load %s %s: %s", task, variant, exc)
            self._set(task, variant, state="failed", reason=exc.reason, fix=exc.fix,
                      seconds=time.perf_counter() - start)
            return False
        except Exception as exc:
            log.exception("%s for %s %s", failure, task, variant)
            self._set(task, variant, state="failed", reason=f"{failure}: {exc}".split("\n")[0], fix=fix,
                      seconds=time.perf_counter() - start)
            return False
        with self._lock:
            self._models[(task, variant)] = loaded
        self._set(task, variant, state="ready", seconds=time.perf_counter() - start, device=str(loaded.device),
                  dtype=loaded.dtype, size=size_of_loaded(loaded), reason=note)
        log.info("%s %s ready in %.1fs", task, variant, time.perf_counter() - start)
        return True

    def _set(self, task: str, variant: str, **changes) -> None:
        with self._lock:
            self._status[(task, variant)] = replace(self._status[(task, variant)], **changes)

    # ---- queries -------------------------------------------------------------------------
    def device_of(self, task: str) -> torch.device:
        """Where the task's models run (a task can be moved to the CPU on its own)."""
        return self._task_device.get(task, self.device)

    def status(self, task: str) -> list[ModelStatus]:
        with self._lock:
            return [self._status[(task, variant)] for variant in self.config.pairs[task].variants]

    def all_settled(self) -> bool:
        with self._lock:
            return all(s.state in ("ready", "failed") for s in self._status.values())

    def pair(self, task: str) -> tuple[LoadedModel, LoadedModel]:
        """Both models of a task, or TaskUnavailable saying what is missing."""
        if task not in self.config.pairs:
            raise TaskUnavailable(f"The task {task!r} is not configured; configured: {', '.join(self.config.tasks)}.")
        statuses = self.status(task)
        statuses = [s for s in statuses if s.variant in PAIR]  # the optional ONNX column never blocks a task
        failed = [s for s in statuses if s.state == "failed"]
        if failed:
            raise TaskUnavailable(" ".join(f"The {s.variant} ({s.model}) failed to load: {s.reason} {s.fix}"
                                           for s in failed))
        waiting = [s for s in statuses if not s.ready]
        if waiting:
            names = ", ".join(f"{s.variant} {s.state}" for s in waiting)
            raise TaskUnavailable(f"The {TASKS[task].lower()} models are still loading ({names}); "
                                  "try again in a moment.")
        with self._lock:
            return self._models[(task, "teacher")], self._models[(task, "student")]

    def run(self, task: str, text: str, student: LoadedModel | None = None) -> Comparison:
        """Compare teacher and student on a text, alternating which one runs first per task.

        student: one visitor's own student in place of the configured one (the configured student's
        int8 column is then left out: it is not this student's)."""
        teacher, configured = self.pair(task)
        with self._lock:
            first = self._teacher_first[task]
            self._teacher_first[task] = not first
        extra = {}
        for variant in self.config.pairs[task].variants[len(PAIR):] if student is None else ():
            with self._lock:
                model = self._models.get((task, variant))
            if model is not None:
                extra[variant] = model
        try:
            return compare(task, text, teacher, student or configured, teacher_first=first, extra=extra)
        except ModelFailure as exc:
            if is_out_of_memory(exc.__cause__):
                log.warning("out of GPU memory in %s %s", task, exc.variant)
                raise TaskUnavailable(f"The {exc.variant} ran out of GPU memory on this request. Shorter text may fit; "
                                      "or press 'Run this task on CPU' to reload both models on the CPU.") from None
            log.exception("forward pass failed in %s %s", task, exc.variant)
            raise TaskUnavailable(f"The {exc.variant} failed while answering ({exc.reason}). The other tasks still "
                                  "work; fix the cause and press 'Reload models'.") from None

    # ---- recovery ------------------------------------------------------------------------------
    def reload(self, task: str, device: torch.device | str | None = None, wait: bool = False) -> None:
        """Read a task's models again (after fixing a directory, or on another device), in the background."""
        device = torch.device(device) if isinstance(device, str) else device
        if task not in self.config.pairs:
            raise TaskUnavailable(f"The task {task!r} is not configured.")
        pair = self.config.pairs[task]
        with self._lock:
            for variant in pair.variants:
                self._models.pop((task, variant), None)
                self._status[(task, variant)] = ModelStatus(task, variant, pair.spec(variant).model)
            if device is not None:
                self._task_device[task] = device
        for variant in PAIR:
            self.cache.forget(pair.spec(variant))
        thread = threading.Thread(target=self.load_task, args=(task,), name=f"reload-{task}", daemon=True)
        thread.start()
        if wait:
            thread.join()

    def set_pair(self, task: str, teacher: ModelSpec, student: ModelSpec, wait: bool = False) -> None:
        """Swap a task's models (only where the operator allowed custom models)."""
        pairs = {**self.config.pairs, task: TaskPair(task, teacher, student, self.config.pairs[task].int8)}
        self.config = replace(self.config, pairs=pairs)
        with self._lock:
            self._teacher_first.setdefault(task, True)
        self.reload(task, wait=wait)
