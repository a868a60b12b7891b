"""What the "Distil a student" tab and its API do, without Gradio: estimate, start, watch, cancel, adopt
the student in its task's tab, zip it, publish it. The layout and wiring live in train_tab.py.
"""

from __future__ import annotations

import math
import shutil
import time
import zipfile
from dataclasses import dataclass

import torch

from demo.core.errors import UserError
from demo.core.measure import INFERENCE_LOCK
from demo.data.files import TEXT_COLUMNS, obvious_column, read_rows
from demo.models.config import LABELLED_TASKS, ModelSpec, TaskPair
from demo.models.inputs import model_inputs
from demo.models.registry import PairRegistry, TaskUnavailable
from demo.serving.training import uploads
from demo.serving.training.jobs import (
    Job,
    JobError,
    JobRunner,
    TrainingLimits,
    distill_argv,
)

BATCH_SIZE = 32  # the CLI's default training batch
MAX_TOKENS = 128  # the CLI's default --max-seq-length
DEFAULT_TEXT = "the film is a gripping portrait of a family coming apart under pressure"
START_SECONDS = 15  # a new Python process importing torch and transformers, saving, the card: measured ~10-20 s


@dataclass
class StepTime:
    """One measured training step of the task's loaded student (forward, backward), per encoder layer."""

    seconds_per_layer: float
    teacher_seconds_per_text: float


class TrainingService:
    def __init__(self, registry: PairRegistry, runner: JobRunner, enabled: bool):
        self.registry, self.runner, self.enabled = registry, runner, enabled
        self.limits: TrainingLimits = runner.limits
        self.original: dict[str, TaskPair] = {}  # task -> its configured pair, while a job's student is shown
        self._step_times: dict[tuple, StepTime] = {}

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
        teacher, student = self.pair(task)
        enc = student.tokenizer(texts, truncation=True, max_length=MAX_TOKENS, padding=True, return_tensors="pt")
        key = (task, int(enc["input_ids"].shape[1]) // 8)  # one measurement per task and length band
        if key not in self._step_times:
            model = student.model
            inputs = model_inputs(model, enc, student.device)
            with INFERENCE_LOCK:  # timed alone, as the benchmark times (requests wait a fraction of a second)
                for _ in range(2):  # the first step pays for allocations; the second is the one counted
                    start = time.perf_counter()
                    with torch.enable_grad():
                        model(**inputs).logits.float().sum().backward()
                    model.zero_grad(set_to_none=True)
                    step = time.perf_counter() - start
            layers = getattr(model.config, "n_layers", None) or getattr(model.config, "num_hidden_layers", 6)
            batch = teacher.tokenizer(texts, truncation=True, max_length=MAX_TOKENS, padding=True, return_tensors="pt")
            with INFERENCE_LOCK, torch.inference_mode():
                start = time.perf_counter()
                teacher.model(**model_inputs(teacher.model, batch, teacher.device))
                teacher_seconds = (time.perf_counter() - start) / len(texts)
            self._step_times[key] = StepTime(step / layers, teacher_seconds)
        return self._step_times[key]

    def planned_steps(self, rows: int, epochs: int) -> int:
        return min(self.limits.max_steps, math.ceil(rows / BATCH_SIZE) * max(1, epochs))

    def estimate(self, task: str, rows: int, epochs: int, layers: int, baselines: bool, upload: str | None = None) -> str:
        """The estimate shown before Start: a step measured here x planned steps, the teacher's pass, start-up."""
        rows = max(1, min(int(rows or self.limits.max_rows), self.limits.max_rows))
        texts = None
        if upload:  # the file's own rows and texts (9 in 10 train, 1 in 10 scores the student)
            try:
                columns, found = read_rows(upload, self.limits.max_upload_bytes)
                rows = min(rows, max(1, round(len(found) * 0.9)))
                column = obvious_column(columns, TEXT_COLUMNS) or columns[0]
                texts = [str(r.get(column) or "") for r in found[:BATCH_SIZE]] or None
            except UserError:
                pass  # said when Start reads it
        steps = self.planned_steps(rows, int(epochs or 1))
        timing = self.step_time(task, texts)
        # training, then the teacher's pass over the rows plus scoring both models on the held-out tenth
        seconds = steps * timing.seconds_per_layer * max(1, layers) + rows * timing.teacher_seconds_per_text * 1.3
        if baselines:
            seconds *= 2  # the hard-label student trains as long again (layer dropping costs one evaluation)
        seconds += START_SECONDS
        return (f"About **{seconds / 60:.1f} min** for {steps:,} steps of {BATCH_SIZE} rows (a step of this "
                f"{layers}-layer student measured here: {timing.seconds_per_layer * layers * 1000:.0f} ms), plus the "
                f"teacher's pass over {rows:,} rows{' and the baselines' if baselines else ''}. Caps: "
                f"{self.limits.max_rows:,} rows, {self.limits.max_steps:,} steps, {self.limits.max_minutes:g} min.")

    # ---- a job --------------------------------------------------------------------------------------
    def start(self, session: str, task: str, upload: str | None, transfer: str | None, layers, rows, epochs,
              baselines: bool) -> Job:
        if not self.enabled:
            raise JobError("training is off in this app (a public address); its operator can start it with "
                           "--allow-training, or run the CLI command shown in this tab.")
        teacher, _ = self.pair(task)
        self.runner.check_free()
        rows = int(rows or self.limits.max_rows)
        if not 1 <= rows <= self.limits.max_rows:
            raise JobError(f"rows: give 1 to {self.limits.max_rows:,} (this app's cap).")
        teacher_layers = getattr(teacher.model.config, "num_hidden_layers", 12)
        layers = int(layers or 3)
        if not 1 <= layers < teacher_layers:
            raise JobError(f"student layers: give 1 to {teacher_layers - 1} (the teacher has {teacher_layers}).")
        if not 1 <= int(epochs or 0) <= 20:
            raise JobError("epochs: give 1 to 20.")
        job_id, folder = self.runner.new_folder()
        try:
            files = uploads.prepare(teacher, self.objective(task), upload, transfer, rows, folder,
                                     self.limits.max_upload_bytes)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        argv = distill_argv(teacher.spec.model, files, layers, int(epochs), bool(baselines), self.limits,
                            folder / "student")
        notes = [f"{files.rows:,} training rows" + (f" (sampled from {files.sampled_from:,})"
                                                    if files.sampled_from > files.rows + files.validation_rows else "")
                 + (f", {files.validation_rows:,} held out to score the student" if files.validation_rows else "")]
        return self.runner.start(job_id, folder, session, task, argv, notes)

    def status(self, job_id: str) -> dict:
        return self.runner.job(job_id).status()

    def cancel(self, job_id: str, session: str) -> dict:
        return self.runner.cancel(job_id, session).status()

    # ---- the result ---------------------------------------------------------------------------------
    def adopt(self, job: Job) -> str:
        """Show the job's student in its task's tab beside the teacher (the configured one kept to switch back)."""
        pair = self.registry.config.pairs[job.task]
        self.original.setdefault(job.task, pair)
        student = ModelSpec(str(job.output), labels=self.original[job.task].teacher.labels)
        self.registry.set_pair(job.task, pair.teacher, student)
        return f"The {job.task} tab now runs this student beside its teacher (`{job.output.name}` of job {job.id})."

    def restore(self, task: str) -> str:
        original = self.original.pop(task, None)
        if original is None:
            raise JobError(f"the {task} tab already shows its configured student.")
        self.registry.set_pair(task, original.teacher, original.student)
        return f"The {task} tab is back to its configured student, `{original.student.model}`."

    def archive(self, job_id: str) -> str:
        """The student as a zip: model, tokenizer, card, metrics, training code (no checkpoints or held-out text)."""
        job = self.runner.job(job_id)
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

    def publish(self, job_id: str, repo_id: str, token: str | None, dry_run: bool) -> str:
        """The CLI's push path (demo.distill.hub.publish) with the visitor's token; its output, never the token."""
        from demo.distill.hub import publish

        job = self.runner.job(job_id)
        if job.state != "done":
            raise JobError("the job has not finished; publish its student once it is done.")
        if not repo_id or repo_id.count("/") != 1:
            raise JobError("give the Hub repo as you/name.")
        if not dry_run and not (token or "").strip():
            raise JobError("give a Hub token with write access (or tick dry run to list the upload).")
        repo_id = repo_id.strip()
        plan = publish(job.output, repo_id, dry_run=dry_run, token=(token or "").strip() or None)
        files = "\n".join(f"  {remote}" for _, remote in plan)
        return (f"{'dry run: would upload' if dry_run else 'published'} {len(plan)} files to "
                f"https://huggingface.co/{repo_id}:\n{files}")

