"""Distillation jobs started from the page: the project's own `python -m demo.distill distill` in a child
process, one at a time for the whole app.

A child process, not a thread: a crash or an out-of-memory in training ends the job, not the app, and
the command is the CLI's (one code path). The child is niced (the app's requests come first), dies with
the app (PR_SET_PDEATHSIG), and is stopped at the wall-time cap. Its progress is read from what the CLI
writes anyway: history.jsonl and its progress lines.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from demo.core.errors import UserError

STATES = ("queued", "running", "done", "failed", "cancelled")
TOTAL_STEPS = re.compile(r"([\d,]+) steps \(")  # the CLI's first line: "... 250 steps (2.0 epochs of 125 steps)"
PROGRESS = re.compile(r"(\d[\d,]*)/(\d[\d,]*) steps")
REPO_ROOT = Path(__file__).resolve().parents[3]  # demo/serving/training/jobs.py -> the checkout (where `-m demo` runs)


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

    @property
    def output(self) -> Path:
        return self.folder / "student"

    @property
    def log(self) -> Path:
        return self.folder / "job.log"

    def progress(self) -> tuple[int, int | None]:
        """(steps done, total steps) from the history and the CLI's progress lines."""
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.is_file() else ""
        total = TOTAL_STEPS.search(text)
        total_steps = int(total.group(1).replace(",", "")) if total else None
        done = [int(m.group(1).replace(",", "")) for m in PROGRESS.finditer(text)]
        steps = [row.get("step", 0) for row in self.history()]
        return max(done + steps + [0]), total_steps

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
        step, total = self.progress()
        elapsed = (self.ended or time.monotonic()) - self.started
        remaining = None
        if self.state == "running" and total and step:
            remaining = round(elapsed / step * max(total - step, 0), 1)
        out = {"job_id": self.id, "task": self.task, "state": self.state, "step": step, "total_steps": total,
               "elapsed_s": round(elapsed, 1), "remaining_s": remaining, "error": self.error, "notes": self.notes,
               "phase": self.phase()}
        metrics = self.output / "metrics.json"
        if self.state == "done" and metrics.is_file():
            out["metrics"] = without_path_keys(json.loads(metrics.read_text(encoding="utf-8")))
        return out

    def phase(self) -> str:
        """The CLI's last line, e.g. the teacher's soft-target pass before the first step."""
        if not self.log.is_file():
            return ""
        lines = [line.strip() for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines()
                 if line.strip()]
        return lines[-1][:200] if lines else ""


def without_path_keys(data):
    """metrics.json with each "path" key named "file_path": gradio takes any object with a "path" string for a
    file to send, and refuses to serve one from outside its folders (a 403 for the client)."""
    if isinstance(data, dict):
        return {("file_path" if k == "path" else k): without_path_keys(v) for k, v in data.items()}
    if isinstance(data, list):
        return [without_path_keys(v) for v in data]
    return data


def _die_with_parent() -> None:  # runs in the child before exec (Linux): end when the app ends
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    os.nice(10)


class JobRunner:
    """One job at a time for the whole app; jobs keyed by id, cancellable only by the session that started them."""

    def __init__(self, root: Path, limits: TrainingLimits = TrainingLimits()):
        self.root, self.limits = Path(root), limits
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

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
            with job.log.open("w", encoding="utf-8") as log:
                job.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                               env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                               preexec_fn=_die_with_parent, start_new_session=True)
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
        lines = job.log.read_text(encoding="utf-8", errors="replace").splitlines() if job.log.is_file() else []
        said = next((line[len("error: "):] for line in reversed(lines) if line.startswith("error: ")), None)
        if said:
            return said
        if code is not None and code < 0:
            return f"the training process was stopped from outside (signal {signal.Signals(-code).name})."
        last = next((line for line in reversed(lines) if line.strip()), "no output")
        return f"training failed (exit code {code}): {last[:300]}"

    def _stop(self, job: Job) -> None:
        if job.process is None or job.process.poll() is not None:
            return
        try:
            os.killpg(job.process.pid, signal.SIGTERM)
            job.process.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(job.process.pid, signal.SIGKILL)
            job.process.wait(5)
        except ProcessLookupError:
            pass

    def job(self, job_id: str) -> Job:
        found = self.jobs.get((job_id or "").strip())
        if found is None:
            raise JobError(f"no job {job_id!r} here (finished jobs are forgotten after "
                           f"{self.limits.keep_minutes:g} minutes); start a new one.")
        return found

    def cancel(self, job_id: str, session: str) -> Job:
        job = self.job(job_id)
        if job.session != session:
            raise JobError("this job was started from another browser tab; only that tab can cancel it.")
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

    def close(self) -> None:
        """At exit: stop every job and delete every folder."""
        for job in list(self.jobs.values()):
            self._stop(job)
        shutil.rmtree(self.root, ignore_errors=True)


def distill_argv(teacher: str, files, student_layers: int, epochs: int, baselines: bool, limits: TrainingLimits,
                 output: Path) -> list[str]:
    """The CLI command of a job, as a user would type it (sys.executable for `python`)."""
    argv = [sys.executable, "-m", "demo.distill", "distill", "--teacher", teacher,
            "--student-layers", str(student_layers), "--train-file", str(files.train),
            "--epochs", str(epochs), "--min-steps", "0", "--max-steps", str(limits.max_steps), "--logging-steps", "5",
            "--output-dir", str(output)]
    if files.objective == "mlm":
        argv += ["--objective", "mlm"]
    else:
        argv += ["--validation-file", str(files.validation), "--text-column", "text", "--label-column", "label"]
    if files.transfer is not None:
        argv += ["--transfer-file", str(files.transfer)]
    if baselines:
        argv.append("--baselines")
    return argv
