"""Distillation jobs started from the page: the training child (child.py) one at a time for the whole
app, watched through the data it writes (run.json and history.jsonl), stopped at the wall-time cap,
cancelled only by the session that started it, its folder deleted when it fails, is cancelled or
expires.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from demo.core.errors import UserError
from demo.distill.run_status import read_status
from demo.serving.training.child import STATUS_FILE, Spawner, scrub, stop_group

JOB_ID = re.compile(r"[0-9a-f]{12}")  # what new_folder() makes; anything else is refused unread


class JobError(UserError, RuntimeError):
    """A job request the app cannot take now (busy, unknown job, not yours); says what to do."""


@dataclass(frozen=True)
class TrainingLimits:
    """Caps for jobs started from the page, sized for a 2-core Space (the operator's flags change them)."""

    max_rows: int = 4000  # training rows per job (a larger upload is sampled down)
    max_steps: int = 500  # optimiser steps per job
    max_upload_mb: float = 20.0
    max_minutes: float = 10.0  # wall time, then the job is stopped
    keep_minutes: float = 60.0  # a finished job's folder (its download) is deleted after this

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1e6)


@dataclass
class Job:
    id: str
    session: str
    task: str
    folder: Path
    argv: list[str]
    state: str = "queued"
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    process: subprocess.Popen | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    adopted: bool = False  # its student answers in the starting session's tabs

    @property
    def output(self) -> Path:
        return self.folder / "student"

    @property
    def log(self) -> Path:
        return self.folder / "job.log"

    def run_status(self) -> dict:
        """The CLI's run.json (its --status-file): phase, fits, error; {} before its first write."""
        return read_status(self.folder / STATUS_FILE) or {}

    def progress(self, run: dict | None = None) -> tuple[int, int | None]:
        """(steps done, total steps) of the run's own student (baselines train after it)."""
        run = self.run_status() if run is None else run
        main = (run.get("fits") or {}).get(run.get("main_fit") or "")
        return (main["step"], main["total_steps"]) if main else (0, None)

    def history(self) -> list[dict]:
        path = self.output / "history.jsonl"
        if not path.is_file():
            return []
        rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # the line being written
                continue
        return rows

    def status(self) -> dict:
        """What /distill_status answers: plain data, no server paths."""
        run = self.run_status()  # read once: progress and phase come from the same file
        step, total = self.progress(run)
        elapsed = (self.ended or time.monotonic()) - self.started
        remaining = None
        if self.state == "running" and total and step:
            remaining = round(elapsed / step * max(total - step, 0), 1)
        out = {"job_id": self.id, "task": self.task, "state": self.state, "step": step, "total_steps": total,
               "elapsed_s": round(elapsed, 1), "remaining_s": remaining, "error": self.error, "notes": self.notes,
               "phase": self.phase(run), "adopted": self.adopted}
        metrics = self.output / "metrics.json"
        if self.state == "done" and metrics.is_file():
            out["metrics"] = json.loads(metrics.read_text(encoding="utf-8"))
        return scrub(out, self.folder)

    def phase(self, run: dict) -> str:
        """Where the run stands, from its run.json: e.g. "preparing: the teacher's answers ..."."""
        phase, fit = run.get("phase") or "", run.get("fit")
        if phase == "baselines" and fit and fit != run.get("main_fit"):
            f = run["fits"][fit]
            return f"baselines: {fit}, step {f['step']:,} of {f['total_steps']:,}"
        return f"{phase}: {run['detail']}" if run.get("detail") else phase


class JobRunner:
    """One job at a time for the whole app; jobs keyed by id, cancellable only by the session that started them."""

    def __init__(self, root: Path, limits: TrainingLimits = TrainingLimits(),
                 on_forget: Callable[[Job], None] | None = None):
        """on_forget(job): called when a finished job's folder goes (e.g. to release its adopted student)."""
        self.root, self.limits, self.on_forget = Path(root), limits, on_forget
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._spawner = Spawner()

    def active(self) -> Job | None:
        with self._lock:
            return next((j for j in self.jobs.values() if j.state in ("queued", "running")), None)

    def training(self) -> bool:
        """Whether a job is using the CPU now (requests answered meanwhile are marked)."""
        return self.active() is not None

    def new_folder(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex[:12]
        folder = self.root / f"job-{job_id}"
        folder.mkdir(parents=True)
        return job_id, folder

    def check_free(self) -> None:
        running = self.active()
        if running is not None:
            left = running.status()["remaining_s"]
            when = f"about {left:.0f} s left" if left is not None else "it has just started"
            raise JobError(f"a distillation job is already running ({running.task}, {when}); the app trains one "
                           "student at a time: try again when it has finished.")

    def start(self, job_id: str, folder: Path, session: str, task: str, argv: list[str],
              notes: list[str] | None = None) -> Job:
        with self._lock:
            if any(j.state in ("queued", "running") for j in self.jobs.values()):
                shutil.rmtree(folder, ignore_errors=True)
                raise JobError("a distillation job is already running; the app trains one student at a time: try "
                               "again when it has finished.")
            job = Job(id=job_id, session=session, task=task, folder=folder, argv=argv, notes=list(notes or []))
            self.jobs[job_id] = job
            job.process = self._spawner.popen(argv, job.log)
            job.state = "running"
        threading.Thread(target=self._watch, args=(job,), name=f"job-{job_id}", daemon=True).start()
        return job

    def _watch(self, job: Job) -> None:
        deadline = job.started + self.limits.max_minutes * 60
        while job.process.poll() is None:
            if time.monotonic() > deadline:
                self._stop(job)
                job.state, job.error = "failed", (f"stopped at this app's wall-time cap of "
                                                  f"{self.limits.max_minutes:g} minutes; distil fewer rows or steps.")
                break
            time.sleep(0.5)
        job.ended = job.ended or time.monotonic()
        if job.state == "running":
            code = job.process.returncode
            if code == 0 and (job.output / "metrics.json").is_file():
                job.state = "done"
            else:
                job.state = "failed"
                job.error = self._failure(job, code)
        if job.state != "done":  # a failed or cancelled job leaves nothing behind; its status keeps the reason
            shutil.rmtree(job.folder, ignore_errors=True)
        expiry = threading.Timer(self.limits.keep_minutes * 60, self.forget, args=(job.id,))
        expiry.daemon = True  # never holds the app open at exit (the scratch area goes then anyway)
        expiry.start()

    @staticmethod
    def _failure(job: Job, code: int | None) -> str:
        said = job.run_status().get("error")
        lines = job.log.read_text(encoding="utf-8", errors="replace").splitlines() if job.log.is_file() else []
        # before the CLI opened its status file (a refused flag), its one "error: " line says why
        said = said or next((line[len("error: "):] for line in reversed(lines) if line.startswith("error: ")), None)
        if said:
            return said
        if code is not None and code < 0:
            return f"the training process was stopped from outside (signal {signal.Signals(-code).name})."
        last = next((line for line in reversed(lines) if line.strip()), "no output")
        return f"training failed (exit code {code}): {last[:300]}"

    @staticmethod
    def _stop(job: Job) -> None:
        stop_group(job.process)

    def job(self, job_id: str) -> Job:
        job_id = job_id.strip() if isinstance(job_id, str) else ""
        if not JOB_ID.fullmatch(job_id):
            raise JobError("that is not a job id (12 letters and digits, as /distill_start returned).")
        found = self.jobs.get(job_id)
        if found is None:
            raise JobError(f"no job {job_id} here (finished jobs are forgotten after "
                           f"{self.limits.keep_minutes:g} minutes); start a new one.")
        return found

    def owned(self, job_id: str, session: str, action: str) -> Job:
        """The job, if session started it; else one sentence."""
        job = self.job(job_id)
        if job.session != session:
            raise JobError(f"this job was started from another browser tab; only that tab can {action} it.")
        return job

    def cancel(self, job_id: str, session: str) -> Job:
        job = self.owned(job_id, session, "cancel")
        if job.state in ("queued", "running"):
            job.state = "cancelled"
            self._stop(job)
            job.ended = time.monotonic()
            shutil.rmtree(job.folder, ignore_errors=True)
        return job

    def forget(self, job_id: str) -> None:
        job = self.jobs.pop(job_id, None)
        if job is not None and job.state not in ("queued", "running"):
            shutil.rmtree(job.folder, ignore_errors=True)
            if self.on_forget is not None:
                self.on_forget(job)

    def close(self) -> None:
        """At exit: stop every job and delete every folder."""
        for job in list(self.jobs.values()):
            self._stop(job)
        shutil.rmtree(self.root, ignore_errors=True)
