"""What the "Distil a student" tab and its API do, without Gradio: estimate, start, watch, cancel, adopt
the student in its task's tab, zip it, publish it. The layout and wiring live in train_tab.py.
"""

from __future__ import annotations

import shutil
import time
import zipfile
from dataclasses import dataclass

import torch

from demo.core import zerogpu
from demo.core.errors import UserError, whole_number
from demo.core.measure import INFERENCE_LOCK
from demo.data.files import TEXT_COLUMNS, obvious_column, read_labelled, read_rows
from demo.distill.args import DataArguments, DistillTrainArguments, default_of
from demo.distill.budget import steps_per_epoch
from demo.distill.recipe import AUTO_TEXTS, can_vary, plan_augmentation
from demo.models.config import LABELLED_TASKS
from demo.models.inputs import model_inputs
from demo.models.registry import PairRegistry, TaskUnavailable
from demo.models.session_students import SessionStudents, spec_for
from demo.serving.edge import remove_upload
from demo.serving.training import uploads
from demo.serving.training.child import distill_argv
from demo.serving.training.jobs import Job, JobError, JobRunner, TrainingLimits

BATCH_SIZE = default_of(DistillTrainArguments, "batch_size")  # the CLI's default training batch, as jobs run it
MAX_TOKENS = default_of(DataArguments, "max_seq_length")  # the CLI's default --max-seq-length
MAX_EPOCHS = 20
DEFAULT_TEXT = "the film is a gripping portrait of a family coming apart under pressure"
START_SECONDS = 15  # a new Python process importing torch and transformers, saving, the card: measured ~10-20 s
BUDGET_MINUTES = 3.0  # a job's default time budget: 1,000 rows with augmentation and the baseline, or 4,000 rows
STEP_TIMING_SECONDS = 20  # GPU time asked on ZeroGPU to price a job's step


@dataclass(frozen=True)
class JobPlan:
    """A job fitted to its time budget: what the child is told (--max-steps) and what it will do."""

    budget_steps: int  # the optimiser steps the budget buys (the child's --max-steps)
    steps: int  # the steps the run will take (fewer when its passes need fewer)
    variants: int  # generated variants per labelled text (the CLI's --augment auto under that budget)
    reason: str  # the CLI's sentence for it
    seconds: float  # the estimate


def page_words(reason: str) -> str:
    """The CLI's sentence about its recipe, with the page's control in place of the flag, capitalised."""
    for flag, control in (("--augment 0 turns it off", "untick the teacher-labelled variants to turn it off"),
                          (" (--augment 0)", " (the box is unticked)")):
        reason = reason.replace(flag, control)
    return reason[:1].upper() + reason[1:]


def budget_of(minutes, cap: float) -> float:
    """The visitor's time budget in minutes, as a number within [0.5, the job's wall-time cap]; none given:
    the default."""
    if minutes is None or minutes == "":
        return min(BUDGET_MINUTES, cap)
    try:
        value = float(minutes)
    except (TypeError, ValueError):
        raise JobError(f"time budget {minutes!r}: give minutes as a number, e.g. 3.") from None
    if not 0.5 <= value <= cap:
        raise JobError(f"time budget {value:g} min: give 0.5 to {cap:g} minutes (this app's cap per job).")
    return value


def synchronize(device: torch.device) -> None:
    """A GPU runs ahead of Python: its work is timed only once it has finished."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class StepTime:
    """One measured training step of the task's loaded student (forward, backward), per encoder layer."""

    seconds_per_layer: float
    teacher_seconds_per_text: float


class TrainingService:
    def __init__(self, registry: PairRegistry, runner: JobRunner, enabled: bool,
                 students: SessionStudents | None = None):
        """students: where a finished job's student answers for the session that trained it."""
        self.registry, self.runner, self.enabled = registry, runner, enabled
        self.students = students if students is not None else SessionStudents(registry)
        self.limits: TrainingLimits = runner.limits
        self._step_times: dict[tuple, StepTime] = {}
        self._time_step = zerogpu.gpu(STEP_TIMING_SECONDS)(self._time_step_now)  # ZeroGPU: in a lent GPU call
        runner.on_forget = self.forgotten

    # ---- before starting ----------------------------------------------------------------------------
    def objective(self, task: str) -> str:
        return "classification" if task in LABELLED_TASKS else "mlm"

    def pair(self, task: str):
        if task not in self.registry.config.pairs:
            raise JobError(f"task {task!r} is not served by this app; pick one of "
                           f"{', '.join(self.registry.config.tasks)}.")
        try:
            return self.registry.pair(task)
        except TaskUnavailable as exc:
            raise JobError(f"{exc} A student is distilled from the task's loaded teacher.") from None

    def step_time(self, task: str, texts: list[str] | None = None) -> StepTime:
        """Measured on the loaded models, on the visitor's own texts when there are some (their length
        decides the cost): one training step of the student (after one untimed), the teacher on a batch."""
        texts = (texts or [DEFAULT_TEXT])[:BATCH_SIZE]
        texts = (texts * BATCH_SIZE)[:BATCH_SIZE]
        _, student = self.pair(task)
        enc = student.tokenizer(texts, truncation=True, max_length=MAX_TOKENS, padding=True, return_tensors="pt")
        key = (task, int(enc["input_ids"].shape[1]) // 8)  # one measurement per task and length band
        if key not in self._step_times:
            self._step_times[key] = self._time_step(task, texts)
        return self._step_times[key]

    def _time_step_now(self, task: str, texts: list[str]) -> StepTime:
        """One training step of the student (the second of two: the first pays for allocations) and the teacher
        on a batch, each timed alone (requests wait a fraction of a second), CUDA synchronised before the clock."""
        teacher, student = self.pair(task)
        model = student.model
        enc = student.tokenizer(texts, truncation=True, max_length=MAX_TOKENS, padding=True, return_tensors="pt")
        inputs = model_inputs(model, enc, student.device)
        with INFERENCE_LOCK:
            for _ in range(2):
                start = time.perf_counter()
                with torch.enable_grad():
                    model(**inputs).logits.float().sum().backward()
                model.zero_grad(set_to_none=True)
                synchronize(student.device)
                step = time.perf_counter() - start
        layers = getattr(model.config, "n_layers", None) or getattr(model.config, "num_hidden_layers", 6)
        batch = teacher.tokenizer(texts, truncation=True, max_length=MAX_TOKENS, padding=True, return_tensors="pt")
        with INFERENCE_LOCK, torch.inference_mode():
            start = time.perf_counter()
            teacher.model(**model_inputs(teacher.model, batch, teacher.device))
            synchronize(teacher.device)
            teacher_seconds = (time.perf_counter() - start) / len(texts)
        return StepTime(step / layers, teacher_seconds)

    def plan(self, task: str, rows: int, epochs: int, layers: int, baselines: bool, augment: bool,
             budget_minutes: float, texts: list[str] | None = None, transfer_rows: int = 0) -> JobPlan:
        """A job fitted to its time budget, from a training step measured here: the steps the budget buys
        (after start-up and the teacher's pass), then the CLI's own rule for how many variants fit them."""
        timing = self.step_time(task, texts)
        per_step = timing.seconds_per_layer * max(1, layers) * (2 if baselines else 1)  # the baseline: as long again
        teacher_text = timing.teacher_seconds_per_text * 1.3  # its pass, and scoring on the held-out tenth
        classification = self.objective(task) == "classification"
        variable = texts is None or can_vary(texts)
        texts_seen = rows + transfer_rows + (max(0, AUTO_TEXTS - transfer_rows) if classification and augment else 0)
        for _ in range(2):  # priced first with the most text the recipe may generate, then with what it will
            spare = budget_minutes * 60 - START_SECONDS - texts_seen * teacher_text
            budget_steps = max(1, min(self.limits.max_steps, int(spare / per_step)))
            aug = plan_augmentation("auto" if classification and augment else "0", rows, variable, transfer_rows,
                                    True, epochs, BATCH_SIZE, 1, budget_steps)
            texts_seen = rows * (1 + aug.variants) + transfer_rows
        steps = min(budget_steps, steps_per_epoch(texts_seen, BATCH_SIZE) * max(1, epochs))
        seconds = START_SECONDS + texts_seen * teacher_text + steps * per_step
        return JobPlan(budget_steps, steps, aug.variants, aug.reason, seconds)

    def plan_sentence(self, plan: JobPlan, rows: int, budget: float, baselines: bool) -> str:
        """The plan in the page's words: shown before Start, and kept on the page while the job runs."""
        made = f", {rows * plan.variants:,} of them generated" if plan.variants else ""
        again = " and the baseline as long again" if baselines else ""
        return (f"About **{plan.seconds / 60:.1f} min** of your {budget:g}: {plan.steps:,} steps of {BATCH_SIZE} rows "
                f"over {rows * (1 + plan.variants):,} texts{made}{again}"
                f". {page_words(plan.reason)}. Caps: {self.limits.max_rows:,} rows, "
                f"{self.limits.max_steps:,} steps, {self.limits.max_minutes:g} min.")

    def estimate(self, task: str, rows: int, epochs: int, layers: int, baselines: bool, augment: bool = True,
                 budget_minutes: float = BUDGET_MINUTES, upload: str | None = None) -> str:
        """The estimate shown before Start: how the rows fall into the teacher's classes (with what would
        mislead), the job fitted to its budget (plan), and the wait when the slot is taken."""
        rows = max(1, min(int(rows or self.limits.max_rows), self.limits.max_rows))
        texts, balance = None, ""
        if upload:  # the file's own rows and texts (9 in 10 train, 1 in 10 scores the student), read once
            texts, found, balance = self.read_for_plan(task, upload)
            rows = min(rows, max(1, round(found * 0.9))) if found else rows
        budget = budget_of(budget_minutes, self.limits.max_minutes)
        plan = self.plan(task, rows, int(epochs or 1), layers, baselines, augment, budget, texts)
        wait = self.runner.wait_seconds()
        queued = (f"\n\n⏳ The app trains one student at a time: yours would start in about {wait / 60:.0f} min "
                  f"({len(self.runner.waiting)} waiting)." if self.runner.training() else "")
        return "\n\n".join(x for x in (balance, self.plan_sentence(plan, rows, budget, baselines)) if x) + queued

    def read_for_plan(self, task: str, upload: str) -> tuple[list[str] | None, int, str]:
        """(the first texts, the rows, the class balance as the page says it) of an upload, from one reading;
        what Start would refuse is said here and the plan goes on from the defaults."""
        try:
            if self.objective(task) != "classification":
                columns, found = read_rows(upload, self.limits.max_upload_bytes, limits=self.limits.read)
                column = obvious_column(columns, TEXT_COLUMNS) or columns[0]
                return [str(r.get(column) or "") for r in found[:BATCH_SIZE]] or None, len(found), ""
            data = read_labelled(upload, max_bytes=self.limits.max_upload_bytes, limits=self.limits.read)
        except UserError:
            return None, 0, ""  # said when Start reads it
        teacher, _ = self.pair(task)
        try:
            balance = uploads.ClassBalance.of(teacher, data.labels).markdown()
        except UserError as exc:
            balance = f"⚠️ {exc} Start will refuse this file."
        return data.texts[:BATCH_SIZE] or None, len(data), balance

    # ---- a job --------------------------------------------------------------------------------------
    def start(self, session: str, task: str, upload: str | None, transfer: str | None, layers, rows, epochs,
              baselines: bool, augment: bool = True, budget_minutes=BUDGET_MINUTES, held_key: str | None = None) -> Job:
        """Check every setting, turn the upload into the job's files, start the child or queue the job;
        the visitor's uploads are deleted once read, whether the job starts or not. held_key: the job this
        browser already holds (a second tab of it starts nothing while that job runs or waits)."""
        try:
            return self._start(session, task, upload, transfer, layers, rows, epochs, baselines, augment,
                               budget_minutes, held_key)
        finally:
            remove_upload(upload)
            remove_upload(transfer)

    def held(self, key: str | None) -> Job | None:
        """The job a browser's stored key names, if it is this server's and the secret matches; else None."""
        try:
            return self.runner.owned(key, "hold") if key else None
        except UserError:
            return None

    def _start(self, session, task, upload, transfer, layers, rows, epochs, baselines, augment, budget_minutes,
               held_key) -> Job:
        if not self.enabled:
            raise JobError("training is off in this app (a public address); its operator can start it with "
                           "--allow-training, or run the CLI command shown in this tab.")
        teacher, _ = self.pair(task)
        rows = whole_number(rows, "rows to learn from", uploads.MIN_ROWS, self.limits.max_rows)
        teacher_layers = getattr(teacher.model.config, "num_hidden_layers", 12)
        layers = whole_number(layers, f"student layers (the teacher has {teacher_layers})", 1, teacher_layers - 1)
        epochs = whole_number(epochs, "epochs", 1, MAX_EPOCHS)
        budget = budget_of(budget_minutes, self.limits.max_minutes)
        self.runner.check_room(session, self.held(held_key))
        job_id, folder = self.runner.new_folder()
        try:
            files = uploads.prepare(teacher, self.objective(task), upload, transfer, rows, folder,
                                     self.limits.max_upload_bytes, self.limits.read)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        plan = self.plan(task, files.rows, epochs, layers, bool(baselines), bool(augment), budget,
                         list(files.sample_texts) or None, files.transfer_rows)
        argv = distill_argv(teacher.spec.model, files, layers, epochs, bool(baselines), plan.budget_steps, folder,
                            augment=bool(augment))
        notes = [f"{files.rows:,} training rows" + (f" (sampled from {files.sampled_from:,})"
                                                    if files.sampled_from > files.rows + files.validation_rows else "")
                 + (f", {files.validation_rows:,} held out (each class its share) to score the student"
                    if files.validation_rows else ""), *files.balance_warnings]
        return self.runner.submit(job_id, folder, session, task, argv, notes,
                                  plan=self.plan_sentence(plan, files.rows, budget, bool(baselines)),
                                  planned_seconds=plan.seconds, fits_planned=2 if baselines else 1)

    def status(self, key: str) -> dict:
        return self.runner.job(key).status()

    def cancel(self, key: str) -> dict:
        return self.runner.cancel(key).status()

    # ---- the result ---------------------------------------------------------------------------------
    def adopt(self, key: str, session: str) -> str:
        """The job's student answers in this session's task tab beside the teacher; other visitors keep the
        configured pair. Only the holder of the job's key can adopt it, once it is done (again after a
        reload or after switching back: the page's session is new then)."""
        job = self.runner.owned(key, "adopt")
        if job.state != "done":
            raise JobError(f"the job is {job.state}" + (f" ({job.error})" if job.error else "")
                           + "; a student can be adopted once its job is done.")
        teacher, _ = self.pair(job.task)
        own = self.students.of(session, job.task)
        if own is None or own.source != f"job {job.id}":  # adopting twice loads nothing again
            self.students.adopt(session, job.task, spec_for(str(job.output), teacher.spec), source=f"job {job.id}")
        job.adopted, job.released = True, False
        return (f"Your {job.task} tab now runs this student beside its teacher (job {job.id}); other visitors "
                "still see the configured student.")

    def restore(self, task: str, session: str, key: str | None = None) -> str:
        """This session's task tab back to the configured student; the job (key) is not adopted again on reload."""
        gone = self.students.release(session)
        if gone is None or gone.task != task:
            raise JobError(f"your {task} tab already shows its configured student.")
        job = self.held(key)
        if job is not None and gone.source == f"job {job.id}":
            job.released = True
        return f"Your {task} tab is back to its configured student, `{self.registry.config.pairs[task].student.model}`."

    def forgotten(self, job: Job) -> None:
        """A finished job's folder expired: the student it made is released too."""
        self.students.release_source(f"job {job.id}", f"your student of job {job.id} expired with its folder "
                                     f"after {self.limits.keep_minutes:g} minutes; the configured student answers.")

    def archive(self, key: str) -> str:
        """The student as a zip: model, tokenizer, card, metrics, training code (no checkpoints or held-out text)."""
        job = self.runner.owned(key, "download")
        if job.state != "done":
            raise JobError("the job has not finished; its student can be downloaded once it is done.")
        from demo.distill.hub import planned_upload

        name = f"student-{job.id}"
        archive = job.folder / "download" / f"{name}.zip"
        archive.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:  # what a Hub upload would hold
            for local, remote in planned_upload(job.output, name):
                zipped.write(local, remote)
        return str(archive)

    def publish(self, key: str, repo_id: str, token: str | None, dry_run: bool, username: str | None = None,
                signed_in: bool = False) -> str:
        """The CLI's push path (demo.distill.hub.publish) with the visitor's token (on a Space: their sign-in's,
        and then only under their own name); its output, never the token."""
        from demo.distill.hub import publish

        job = self.runner.owned(key, "publish")
        if job.state != "done":
            raise JobError("the job has not finished; publish its student once it is done.")
        repo_id = (repo_id or "").strip()
        if repo_id.count("/") != 1 or not all(repo_id.split("/")):
            raise JobError("give the Hub repo as you/name.")
        if not dry_run and not (token or "").strip():
            raise JobError("sign in with Hugging Face first (the button above), or tick dry run to list the upload."
                           if signed_in else "give a Hub token with write access (or tick dry run to list the upload).")
        if username and repo_id.split("/")[0] != username:
            raise JobError(f"{repo_id} is not under your name: publish as {username}/{repo_id.split('/')[1]}.")
        plan = publish(job.output, repo_id, dry_run=dry_run, token=(token or "").strip() or None)
        files = "\n".join(f"  {remote}" for _, remote in plan)
        return (f"{'dry run: would upload' if dry_run else 'published'} {len(plan)} files to "
                f"https://huggingface.co/{repo_id}:\n{files}")

