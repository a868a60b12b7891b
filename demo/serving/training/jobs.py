"""Distillation jobs started from the page: the training child (child.py) one at a time for the whole
app, the others waiting in a bounded queue, watched through the data it writes (run.json and
history.jsonl), stopped at the wall-time cap, its folder deleted when it fails, is cancelled or expires.

Who may act on a job (cancel, adopt, download, publish) is whoever holds its key: the job id, a dot and
a random secret the server issued when the job was made (`3f2a9c0d1e4b.9c1d...`). The page keeps the key
in the visitor's browser (gr.BrowserState), so a reload finds the job again; an API caller gets it from
/distill_start. The id alone reads the status, never acts; a gradio session hash, which the client
chooses, grants nothing.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
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
from demo.data.files import PAGE_LIMITS, ReadLimits
from demo.distill.run_status import read_status
from demo.serving.training.child import STATUS_FILE, Spawner, scrub, start_child, stop_group

JOB_ID = re.compile(r"[0-9a-f]{12}")  # what new_folder() makes; anything else is refused unread
JOB_KEY = re.compile(r"([0-9a-f]{12})\.([0-9a-f]{32})")  # the id and the secret that makes its holder the owner


class JobError(UserError, RuntimeError):
    """A job request the app cannot take now (busy, unknown job, not yours); says what to do."""


@dataclass(frozen=True)
class TrainingLimits:
    """Caps for jobs started from the page, sized for a 2-core Space (the operator's flags change them)."""

    max_rows: int = 4000  # training rows per job (a larger upload is sampled down)
    max_steps: int = 3000  # optimiser steps per job (the student's; its wall time is capped by max_minutes)
    max_upload_mb: float = 20.0
    max_minutes: float = 10.0  # wall time, then the job is stopped
    keep_minutes: float = 60.0  # a finished job's folder (its download) is deleted after this
    max_queue: int = 4  # jobs waiting behind the running one; past this a new job is refused, with the wait
    read: ReadLimits = PAGE_LIMITS  # what an upload may cost to read (rows, columns, characters per cell)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1e6)


def split_key(key) -> tuple[str, str | None]:
    """(job id, secret or None) of what a caller sent: a whole key, or an id alone (status only)."""
    key = key.strip() if isinstance(key, str) else ""
    if JOB_ID.fullmatch(key):
        return key, None
    whole = JOB_KEY.fullmatch(key)
    if whole is None:
        raise JobError("that is not a job id (12 letters and digits, or the whole key /distill_start returned).")
    return whole.group(1), whole.group(2)


@dataclass
class Job:
    id: str
    visitor: str  # who asked (a gradio session): one job at a time each, for a fair share of the slot
    task: str
    folder: Path
    argv: list[str]
    secret: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    state: str = "queued"
    queued_at: float = field(default_factory=time.monotonic)
    started: float | None = None  # when its process started (the wall-time cap counts from here)
    started_wall: float | None = None  # the same on the wall clock, which run.json's timeline uses
    ended: float | None = None
    process: subprocess.Popen | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    plan: str = ""  # the plan shown before Start, kept on the page while the job runs
    planned_seconds: float = 0.0  # the plan's estimate: what a job queued behind this one waits for
    baseline_steps: int = 0  # the steps of the baseline trained after the student (0: none)
    adopted: bool = False  # its student answers in the tabs of a session that adopted it
    released: bool = False  # its visitor switched their tab back: a reload does not adopt it again
    position: int = 0  # 1 = next to run, while queued

    @property
    def key(self) -> str:
        """What makes its holder the owner: never shown to anyone but the one who started it."""
        return f"{self.id}.{self.secret}"

    def held_by(self, secret: str | None) -> bool:
        return secret is not None and hmac.compare_digest(secret, self.secret)

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

    def elapsed(self) -> float:
        return ((self.ended or time.monotonic()) - self.started) if self.started is not None else 0.0

    def remaining(self, run: dict | None = None) -> float | None:
        """Seconds left: from the steps' own pace once it trains (the student's steps and the baseline's),
        else what the plan has not spent yet."""
        if self.state == "queued":
            return round(self.planned_seconds, 1)
        if self.state != "running":
            return None
        run = self.run_status() if run is None else run
        fits, main = run.get("fits") or {}, run.get("main_fit")
        if main in fits and fits[main]["step"]:
            total = sum(f["total_steps"] for f in fits.values()) + (self.baseline_steps if len(fits) < 2 else 0)
            done = sum(f["step"] for f in fits.values())
            training_began = next((e["at"] for e in run.get("timeline") or [] if e.get("fit") == main), None)
            spent = time.time() - training_began if training_began else self.elapsed()
            return round(spent / max(done, 1) * max(total - done, 0) + MEASURING_SECONDS, 1)
        return round(max(self.planned_seconds - self.elapsed(), MEASURING_SECONDS), 1)

    def stages(self, run: dict) -> list[dict]:
        """Every stage so far, each with its own time: the teacher's answers, the student's fit, each
        baseline's fit, evaluation, the card (run.json's timeline, read as a visitor would say it)."""
        timeline, fits, now = run.get("timeline") or [], run.get("fits") or {}, time.time()
        out = []
        if self.started_wall is not None:  # the process's own start-up (imports, the teacher) before run.json
            first = timeline[0]["at"] if timeline else None
            seconds = round(max((first or now) - self.started_wall, 0), 1)
            out.append({"stage": STAGE_NAMES["preparing"], "seconds": seconds, "done": first is not None})
        for i, entry in enumerate(timeline):
            ends = timeline[i + 1]["at"] if i + 1 < len(timeline) else None
            if not entry.get("fit") and not entry.get("detail") and entry.get("phase") in ("preparing", "baselines"):
                continue  # a step between stages: the run opening its file, "baselines" before its first fit
            name, fit = stage_name(entry, run.get("main_fit")), fits.get(entry.get("fit") or "")
            last = run.get("updated", now) if self.state != "running" else now  # a finished run stops its clock
            stage = {"stage": name, "seconds": round(max((ends or last) - entry["at"], 0.0), 1),
                     "done": ends is not None or self.state == "done"}
            if fit:
                stage.update(step=fit["step"], total_steps=fit["total_steps"])
            out.append(stage)
        if self.state in ("done", "failed", "cancelled") and out and out[-1]["stage"] == "done":
            out.pop()
        return out

    def status(self) -> dict:
        """What /distill_status answers: plain data, no server paths, never the key."""
        run = self.run_status() if self.state != "queued" else {}  # read once: every figure from one file
        step, total = self.progress(run)
        out = {"job_id": self.id, "task": self.task, "state": self.state, "step": step, "total_steps": total,
               "elapsed_s": round(self.elapsed(), 1), "remaining_s": self.remaining(run), "error": self.error,
               "notes": self.notes, "phase": self.phase(run), "stages": self.stages(run), "plan": self.plan,
               "adopted": self.adopted}
        if self.state == "queued":
            out.update(position=self.position, waited_s=round(time.monotonic() - self.queued_at, 1))
        metrics = self.output / "metrics.json"
        if self.state == "done" and metrics.is_file():
            out["metrics"] = json.loads(metrics.read_text(encoding="utf-8"))
        return scrub(out, self.folder)

    def phase(self, run: dict) -> str:
        """Where the run stands, from its run.json: e.g. "preparing: the teacher's answers ..."."""
        if self.state == "queued":
            return "queued"
        phase, fit = run.get("phase") or "", run.get("fit")
        if phase == "baselines" and fit and fit != run.get("main_fit"):
            f = run["fits"][fit]
            return f"baselines: {fit}, step {f['step']:,} of {f['total_steps']:,}"
        return f"{phase}: {run['detail']}" if run.get("detail") else phase


MEASURING_SECONDS = 10.0  # after the last step: scoring the held-out rows, saving, the card (tiny to MiniLM)
STAGE_NAMES = {"preparing": "starting (loading the teacher, reading the rows)", "baselines": "baselines",
               "measuring": "evaluation", "done": "done", "failed": "failed"}


def stage_name(entry: dict, main_fit: str | None) -> str:
    """A timeline entry of run.json in the page's words."""
    detail, fit = entry.get("detail") or "", entry.get("fit")
    if fit:
        return "distilling the student" if fit == main_fit else f"baseline: {fit}"
    if detail.startswith("the teacher's answers"):
        return "the teacher's answers"
    if detail == "the model card":
        return "the model card"
    return STAGE_NAMES.get(entry.get("phase"), entry.get("phase") or "")


class JobRunner:
    """One job runs at a time for the whole app, up to limits.max_queue wait behind it (first come, first
    served); each visitor has one job running or waiting at a time; only a job's key acts on it."""

    def __init__(self, root: Path, limits: TrainingLimits = TrainingLimits(),
                 on_forget: Callable[[Job], None] | None = None):
        """on_forget(job): called when a finished job's folder goes (e.g. to release its adopted student)."""
        self.root, self.limits, self.on_forget = Path(root), limits, on_forget
        self.jobs: dict[str, Job] = {}
        self.waiting: list[Job] = []  # the queue, first to run first
        self._lock = threading.RLock()
        self._spawner = Spawner()
        self._closed = False

    def active(self) -> Job | None:
        """The running job, if any."""
        with self._lock:
            return next((j for j in self.jobs.values() if j.state == "running"), None)

    def training(self) -> bool:
        """Whether a job is using the CPU now (requests answered meanwhile are marked)."""
        return self.active() is not None

    def wait_seconds(self) -> float:
        """How long a job queued now would wait: the running job's remaining time, then each queued job's plan."""
        with self._lock:
            running = self.active()
            ahead = sum(j.planned_seconds for j in self.waiting)
            return ahead + ((running.remaining() or 0.0) if running is not None else 0.0)

    def new_folder(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex[:12]
        folder = self.root / f"job-{job_id}"
        folder.mkdir(parents=True)
        return job_id, folder

    def check_room(self, visitor: str, held: Job | None = None) -> None:
        """Before any file is written: refused, in one sentence, when this visitor (or the job their browser
        holds) already has a job running or waiting, or when the queue is full (with the expected wait)."""
        with self._lock:
            mine = held if held is not None and held.state in ("queued", "running") else next(
                (j for j in [*self.waiting, self.active()] if j is not None and j.visitor == visitor), None)
            if mine is not None:
                where = "running" if mine.state == "running" else f"number {mine.position} in the queue"
                raise JobError(f"your job {mine.id} is {where}; one job per visitor at a time: cancel it or wait for "
                               "it to finish before starting another.")
            if self.active() is not None and len(self.waiting) >= self.limits.max_queue:  # an idle slot takes it
                raise JobError(f"the training queue is full ({self.limits.max_queue} jobs waiting behind the running "
                               f"one, about {self.wait_seconds() / 60:.0f} min of work); try again in a few minutes.")

    def submit(self, job: Job) -> Job:
        """The job runs now if the slot is free, else waits in the queue (its files are already written, in
        a folder from new_folder())."""
        with self._lock:
            try:
                self.check_room(job.visitor)
            except JobError:
                shutil.rmtree(job.folder, ignore_errors=True)
                raise
            self.jobs[job.id] = job
            self.waiting.append(job)
            self._renumber()
            self._next()
        return job

    def _renumber(self) -> None:
        for i, queued in enumerate(self.waiting, 1):
            queued.position = i

    def _next(self) -> None:
        """Start the first queued job if nothing runs (under the lock)."""
        if self._closed or self.active() is not None or not self.waiting:
            return
        job = self.waiting.pop(0)
        self._renumber()
        job.position, job.started, job.started_wall = 0, time.monotonic(), time.time()
        try:
            job.process = start_child(self._spawner, job.argv, job.log, job.planned_seconds * 1.2 + 30)
        except OSError as exc:
            job.state, job.ended = "failed", time.monotonic()
            job.error = f"the training process could not start ({exc})"
            shutil.rmtree(job.folder, ignore_errors=True)
            self._next()
            return
        job.state = "running"
        threading.Thread(target=self._watch, args=(job,), name=f"job-{job.id}", daemon=True).start()

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
        self._forget_later(job)
        with self._lock:
            self._next()

    def _forget_later(self, job: Job) -> None:
        """A finished job's status (and a done job's folder) kept limits.keep_minutes, then forgotten."""
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

    def job(self, key: str) -> Job:
        """The job of an id or a whole key (reading its status needs no more)."""
        job_id, _ = split_key(key)
        found = self.jobs.get(job_id)
        if found is None:
            raise JobError(f"no job {job_id} here (finished jobs are forgotten after "
                           f"{self.limits.keep_minutes:g} minutes, and none outlives a restart of the app); "
                           "start a new one.")
        return found

    def owned(self, key: str, action: str) -> Job:
        """The job, if key is its whole key; else one sentence (an id alone, or a wrong secret, acts on nothing)."""
        job = self.job(key)
        if not job.held_by(split_key(key)[1]):
            raise JobError(f"only the browser or script that started job {job.id} can {action} it (it holds the "
                           "job's key).")
        return job

    def cancel(self, key: str) -> Job:
        job = self.owned(key, "cancel")
        with self._lock:
            was_queued = job.state == "queued"
            if was_queued:
                self.waiting.remove(job)
                self._renumber()
            if job.state in ("queued", "running"):
                job.state = "cancelled"
                self._stop(job)
                job.ended = time.monotonic()
                shutil.rmtree(job.folder, ignore_errors=True)
            if was_queued:  # no watcher of its own: its status is kept as long as a finished job's
                self._forget_later(job)
            self._next()
        return job

    def forget(self, job_id: str) -> None:
        job = self.jobs.pop(job_id, None)
        if job is not None and job.state not in ("queued", "running"):
            shutil.rmtree(job.folder, ignore_errors=True)
            if self.on_forget is not None:
                self.on_forget(job)

    def close(self) -> None:
        """At exit: stop every job and delete every folder (queued ones never start)."""
        with self._lock:
            self._closed = True
            self.waiting.clear()
        for job in list(self.jobs.values()):
            self._stop(job)
        shutil.rmtree(self.root, ignore_errors=True)
