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

from .compare import Comparison, compare, warm_up
from .config import ROLES, TASKS, AppConfig
from .loading import LoadedModel, LoadError, ModelCache, resolve_device, resolve_dtype
from .measure import SizeReport, size_of

log = logging.getLogger(__name__)


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
            for task in config.tasks for role in ROLES
        }
        self._teacher_first: dict[str, bool] = {task: True for task in config.tasks}
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

    def _set(self, task: str, role: str, **changes) -> None:
        with self._lock:
            self._status[(task, role)] = replace(self._status[(task, role)], **changes)

    def _load(self, task: str, role: str) -> None:
        spec = self.config.pairs[task].spec(role)
        start = time.perf_counter()
        self._set(task, role, state="loading", reason="", fix="")
        log.info("loading %s %s: %s", task, role, spec.model)
        try:
            loaded = self.cache.get(spec, task, self.device, self.dtype)
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
        with self._lock:
            self._models[(task, role)] = loaded
        self._set(task, role, state="ready", seconds=time.perf_counter() - start, device=str(loaded.device),
                  dtype=loaded.dtype, size=size_of(loaded.model, loaded.weight_files))
        log.info("%s %s ready in %.1fs", task, role, time.perf_counter() - start)

    # ---- queries -------------------------------------------------------------------------
    def status(self, task: str) -> list[ModelStatus]:
        with self._lock:
            return [self._status[(task, role)] for role in ROLES]

    def all_settled(self) -> bool:
        with self._lock:
            return all(s.state in ("ready", "failed") for s in self._status.values())

    def pair(self, task: str) -> tuple[LoadedModel, LoadedModel]:
        """Both models of a task, or TaskUnavailable saying what is missing."""
        if task not in self.config.pairs:
            raise TaskUnavailable(f"The task {task!r} is not configured; configured: {', '.join(self.config.tasks)}.")
        statuses = self.status(task)
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
        return compare(task, text, teacher, student, teacher_first=first)
