"""The configured pairs, loaded in the background, with a status per model the page can show.

The app, the benchmark and the evaluator all go through a PairRegistry, so they load and run
models the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace

import torch

from .compare import Comparison, ModelFailure, compare, warm_up
from .config import ROLES, TASKS, AppConfig, ModelSpec, TaskPair
from .loading import LoadedModel, LoadError, ModelCache, resolve_device, resolve_dtype
from .measure import SizeReport, size_of_loaded

log = logging.getLogger(__name__)


def is_out_of_memory(exc: BaseException | None) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


class TaskUnavailable(RuntimeError):
    """A task whose models are still loading or failed to load; the message says which and why."""


@dataclass(frozen=True)
class ModelStatus:
    """Where one model of a pair stands, for the page's status line."""

    task: str
    role: str
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
            (task, role): ModelStatus(task, role, config.pairs[task].spec(role).model)
            for task in config.tasks for role in config.pairs[task].roles
        }
        self._teacher_first: dict[str, bool] = {task: True for task in config.tasks}
        self._task_device: dict[str, torch.device] = {}  # tasks moved off the default device
        self._thread: threading.Thread | None = None

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
        for role in ROLES:
            self._load(task, role)
        if self.config.pairs[task].onnx:
            self._load_onnx(task)

    def load_random(self, task: str, wait: bool = False) -> None:
        """Offline fallback: the task's architectures with random weights (latency and size only)."""
        def work():
            from .architecture import build_random

            pair = self.config.pairs[task]
            device = self._task_device.get(task, self.device)
            for role in ROLES:
                start = time.perf_counter()
                self._set(task, role, state="loading", reason="", fix="")
                try:
                    loaded, source = build_random(pair.spec(role), task, role, device)
                    warm_up(loaded)
                except Exception as exc:  # noqa: BLE001 - a status, not a dead thread stuck on "loading"
                    log.exception("random-weights fallback failed for %s %s", task, role)
                    self._set(task, role, state="failed", reason=f"even random weights failed ({exc}).".split("\n")[0],
                              fix="Check the model's config.", seconds=time.perf_counter() - start)
                    return
                self._ready(task, role, loaded, start, reason=f"RANDOM WEIGHTS from the {source}")

        thread = threading.Thread(target=work, name=f"random-{task}", daemon=True)
        thread.start()
        if wait:
            thread.join()

    def _load_onnx(self, task: str) -> None:
        from . import onnx_variants
        from .config import ONNX_ROLE

        start = time.perf_counter()
        with self._lock:
            student = self._models.get((task, "student"))
        if student is None:
            self._set(task, ONNX_ROLE, state="failed", reason="the fp32 student did not load.", fix="Fix it first.")
            return
        if student.device.type != "cpu":
            self._set(task, ONNX_ROLE, state="failed", reason=f"dynamic int8 is a CPU technique; the app runs on "
                      f"{student.device.type}.", fix="Run with --device cpu to compare it.")
            return
        self._set(task, ONNX_ROLE, state="loading")
        try:
            loaded = onnx_variants.export(student, int8=True, threads=torch.get_num_threads())
            self._set(task, ONNX_ROLE, state="warming up")
            warm_up(loaded)
        except LoadError as exc:
            self._set(task, ONNX_ROLE, state="failed", reason=exc.reason, fix=exc.fix,
                      seconds=time.perf_counter() - start)
            return
        self._ready(task, ONNX_ROLE, loaded, start)

    def _ready(self, task: str, role: str, loaded: LoadedModel, start: float, **status) -> None:
        """Publish a loaded model and its status (device, dtype, size, load time) together."""
        with self._lock:
            self._models[(task, role)] = loaded
        self._set(task, role, state="ready", seconds=time.perf_counter() - start, device=str(loaded.device),
                  dtype=loaded.dtype, size=size_of_loaded(loaded), **status)

    def _set(self, task: str, role: str, **changes) -> None:
        with self._lock:
            self._status[(task, role)] = replace(self._status[(task, role)], **changes)

    def _load(self, task: str, role: str) -> None:
        spec = self.config.pairs[task].spec(role)
        device = self._task_device.get(task, self.device)
        dtype = self.dtype if device == self.device else torch.float32
        start = time.perf_counter()
        self._set(task, role, state="loading", reason="", fix="")
        log.info("loading %s %s: %s", task, role, spec.model)
        try:
            loaded = self.cache.get(spec, task, device, dtype)
            self._set(task, role, state="warming up")
            warm_up(loaded)
        except LoadError as exc:
            log.warning("could not load %s %s: %s", task, role, exc)
            self._set(task, role, state="failed", reason=exc.reason, fix=exc.fix,
                      seconds=time.perf_counter() - start)
            return
        except Exception as exc:  # noqa: BLE001 - a broken model must not stop the others
            log.exception("warm-up failed for %s %s", task, role)
            self._set(task, role, state="failed", reason=f"its first (warm-up) pass failed: {exc}".split("\n")[0],
                      fix="Check that the checkpoint matches the task.", seconds=time.perf_counter() - start)
            return
        self._ready(task, role, loaded, start)
        log.info("%s %s ready in %.1fs", task, role, time.perf_counter() - start)

    # ---- queries -------------------------------------------------------------------------
    def status(self, task: str) -> list[ModelStatus]:
        with self._lock:
            return [self._status[(task, role)] for role in self.config.pairs[task].roles]

    def all_settled(self) -> bool:
        with self._lock:
            return all(s.state in ("ready", "failed") for s in self._status.values())

    def pair(self, task: str) -> tuple[LoadedModel, LoadedModel]:
        """Both models of a task, or TaskUnavailable saying what is missing."""
        if task not in self.config.pairs:
            raise TaskUnavailable(f"The task {task!r} is not configured; configured: {', '.join(self.config.tasks)}.")
        statuses = self.status(task)
        statuses = [s for s in statuses if s.role in ROLES]  # the optional ONNX column never blocks a task
        failed = [s for s in statuses if s.state == "failed"]
        if failed:
            raise TaskUnavailable(" ".join(f"The {s.role} ({s.model}) failed to load: {s.reason} {s.fix}"
                                           for s in failed))
        waiting = [s for s in statuses if not s.ready]
        if waiting:
            names = ", ".join(f"{s.role} {s.state}" for s in waiting)
            raise TaskUnavailable(f"The {TASKS[task].lower()} models are still loading ({names}); "
                                  "try again in a moment.")
        with self._lock:
            return self._models[(task, "teacher")], self._models[(task, "student")]

    def run(self, task: str, text: str) -> Comparison:
        """Compare teacher and student on a text, alternating which one runs first per task."""
        teacher, student = self.pair(task)
        with self._lock:
            first = self._teacher_first[task]
            self._teacher_first[task] = not first
        extra = {}
        for role in self.config.pairs[task].roles[len(ROLES):]:
            with self._lock:
                model = self._models.get((task, role))
            if model is not None:
                extra[role] = model
        try:
            return compare(task, text, teacher, student, teacher_first=first, extra=extra)
        except ModelFailure as exc:
            if is_out_of_memory(exc.__cause__):
                log.warning("out of GPU memory in %s %s", task, exc.role)
                raise TaskUnavailable(f"The {exc.role} ran out of GPU memory on this request. Shorter text may fit; "
                                      "or press 'Run this task on CPU' to reload both models on the CPU.") from None
            log.exception("forward pass failed in %s %s", task, exc.role)
            raise TaskUnavailable(f"The {exc.role} failed while answering ({exc.reason}). The other tasks still "
                                  "work; fix the cause and press 'Reload models'.") from None

    # ---- recovery ------------------------------------------------------------------------------
    def reload(self, task: str, device: torch.device | None = None, wait: bool = False) -> None:
        """Read a task's models again (after fixing a directory, or on another device), in the background."""
        if task not in self.config.pairs:
            raise TaskUnavailable(f"The task {task!r} is not configured.")
        pair = self.config.pairs[task]
        with self._lock:
            for role in pair.roles:
                self._models.pop((task, role), None)
                self._status[(task, role)] = ModelStatus(task, role, pair.spec(role).model)
            if device is not None:
                self._task_device[task] = device
        for role in ROLES:
            self.cache.forget(pair.spec(role))
        thread = threading.Thread(target=self.load_task, args=(task,), name=f"reload-{task}", daemon=True)
        thread.start()
        if wait:
            thread.join()

    def set_pair(self, task: str, teacher: ModelSpec, student: ModelSpec, wait: bool = False) -> None:
        """Swap a task's models (only where the operator allowed custom models)."""
        pairs = {**self.config.pairs, task: TaskPair(task, teacher, student, self.config.pairs[task].onnx)}
        self.config = replace(self.config, pairs=pairs)
        with self._lock:
            self._teacher_first.setdefault(task, True)
        self.reload(task, wait=wait)
