"""The run's plan and progress as data, for a program that watches it (the app's "Distil a student" tab).

`--status-file PATH` makes the CLI keep PATH up to date as JSON, replaced whole on every write (a
reader never sees half a file):

    {"version": 1, "phase": "training", "fit": "distill", "state": "running",
     "fits": {"distill": {"step": 120, "total_steps": 250, "epochs": 2, "steps_per_epoch": 125}},
     "main_fit": "distill", "updated": 1733212345.2,
     "timeline": [{"phase": "preparing", "detail": "the teacher's answers ...", "fit": null, "at": 1733212301.0}, ...]}

phase: preparing (data, the teacher's targets) -> training -> baselines -> measuring -> done, or failed
with "error". Each fit() is one entry of "fits"; "main_fit" is the run's own student (the first fit).
"timeline" holds every phase and fit as it began (wall-clock "at"), so a watcher can show each stage with
its own time. history.jsonl beside the model keeps the curves. Without the flag nothing is written.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

STATUS_VERSION = 1
MIN_INTERVAL_S = 0.5  # step updates are written at most this often (a step can take a few ms)
PHASES = ("preparing", "training", "baselines", "measuring", "done", "failed")


class RunStatus:
    """The writer; a no-op without a path (other processes of a multi-process run, or no flag)."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else None
        self.data: dict = {"version": STATUS_VERSION, "phase": "preparing", "state": "running", "fit": None,
                           "main_fit": None, "fits": {}, "timeline": []}
        self._written = 0.0
        self._mark("preparing", "")

    def _mark(self, phase: str, detail: str, fit: str | None = None) -> None:
        self.data["timeline"].append({"phase": phase, "detail": detail, "fit": fit, "at": time.time()})

    def _write(self, force: bool = True) -> None:
        if self.path is None or (not force and time.monotonic() - self._written < MIN_INTERVAL_S):
            return
        self.data["updated"] = time.time()
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data), encoding="utf-8")
        os.replace(tmp, self.path)
        self._written = time.monotonic()

    def phase(self, phase: str, detail: str = "") -> None:
        assert phase in PHASES, phase
        if (phase, detail) != (self.data["phase"], self.data.get("detail", "")):
            self._mark(phase, detail)
        self.data.update(phase=phase, detail=detail)
        if phase in ("done", "failed"):
            self.data["state"] = phase
        self._write()

    def fit_started(self, name: str, total_steps: int, epochs: int, steps_per_epoch: int, step: int = 0) -> None:
        self.data["fits"][name] = {"step": step, "total_steps": total_steps, "epochs": epochs,
                                   "steps_per_epoch": steps_per_epoch}
        self.data["fit"] = name
        self.data["main_fit"] = self.data["main_fit"] or name
        if self.data["phase"] == "preparing":
            self.data.update(phase="training", detail="")
        self._mark(self.data["phase"], "", name)
        self._write()

    def step(self, name: str, step: int) -> None:
        fit = self.data["fits"].get(name)
        if fit is not None:
            fit["step"] = step
            self._write(force=step >= fit["total_steps"])

    def failed(self, error: str) -> None:
        self.data["error"] = error
        self.phase("failed")


def open_status(path: str | os.PathLike | None) -> RunStatus:
    """The run's writer, its first state written at once (set up at the CLI's edge, passed to each fit)."""
    status = RunStatus(path)
    status._write()
    return status


def read_status(path: str | os.PathLike) -> dict | None:
    """What a watcher reads: the last whole file, or None before the first write."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
