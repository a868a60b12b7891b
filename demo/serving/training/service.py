"""What the "Distil a student" tab and its API do, without Gradio: estimate, start, watch, cancel, adopt
the student in its task's tab, zip it, publish it. The layout and wiring live in train_tab.py.
"""

from __future__ import annotations

import math
import shutil
import time
import zipfile
from dataclasses import dataclass, replace

import torch

from demo.core import zerogpu
from demo.core.errors import UserError, whole_number
from demo.core.measure import INFERENCE_LOCK
from demo.data.files import TEXT_COLUMNS, obvious_column, read_labelled, read_rows
from demo.distill.args import DataArguments, DistillTrainArguments, default_of, labels_alone_steps
from demo.distill.budget import steps_per_epoch
from demo.distill.hub import planned_upload, publish
from demo.distill.recipe import Passes, can_vary, plan_augmentation
from demo.distill.student import make_student, parse_layers
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
BUDGET_MINUTES = 4.5  # a job's default budget: 1,000 rows with the small-data recipe and the baseline (results.md)
STEP_TIMING_SECONDS = 20  # GPU time asked on ZeroGPU to price a job's step
SAMPLE_TEXTS = 256  # the texts of an upload that price its steps (as many as a job's files keep: uploads.py)
TEACHER_PASSES = 1.3  # the teacher's pass over the training text, and its share of the final scoring


@dataclass(frozen=True)
class JobRequest:
    """What a visitor asks of a job, by name: the page's fields and /distill_start's arguments map onto it.
    Values come as the page sent them (numbers as floats, blanks as None); the service checks each."""

    task: str
    upload: str | None = None  # the labelled file (a .txt of text for fill-mask); deleted once read
    transfer: str | None = None  # unlabelled in-domain text the teacher labels too (optional)
    layers: int | float | None = 3  # the student's layers, taken from the teacher's
    rows: int | float | None = None  # rows to learn from (an estimate reads None as the cap; Start needs one)
    epochs: int | float | None = 2
    baselines: bool = True  # also train this student on the labels alone, to say what distilling bought
    augment: bool = True  # the small-data recipe: the teacher labels variants of the rows
    budget_minutes: float | str | None = None  # None: the default budget (budget_of)


@dataclass(frozen=True)
class JobPlan:
    """A job fitted to its time budget, computed once (before Start and at Start) and told to the child as
    flags: how many variants the teacher labels (--augment), the steps (--max-steps), the baseline's steps."""

    steps: int  # the student's optimiser steps (the child's --max-steps)
    variants: int  # generated variants per labelled text (--augment N; 0 none)
    wanted: int  # what the small-data recipe asks for these rows (the CLI's --augment auto), before the budget
    baseline_steps: int  # the labels-alone baseline's own budget (--baseline-steps), 0 without baselines
    seconds: float  # the estimate, start to result
    texts: int  # every text the student learns from: the rows, the transfer text, the variants
    reason: str  # in the page's words: what the recipe is, and what the budget cut
    baseline: str = ""  # which baseline trains, and for how long, in words ("" without)
    full_minutes: float | None = None  # the budget that runs the whole recipe, where this one cuts it

    @property
    def cut(self) -> bool:
        """The budget cut the recipe: fewer variants, or fewer passes (then full_minutes says what fits it)."""
        return self.full_minutes is not None


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
    """Measured optimiser steps (forward, backward, AdamW) of the job's own student and of its labels-alone
    baseline, and the teacher's seconds per text, on a batch of the visitor's texts."""

    step_seconds: float
    baseline_step_seconds: float
    teacher_seconds_per_text: float


def typical_batch(tokenizer, texts: list[str]) -> list[str]:
    """A training batch of the texts' typical length: the child groups its batches by length, so a batch pads
    to about its own texts' length, not to the longest text of a random batch."""
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=MAX_TOKENS)["input_ids"]]
    mean = sum(lengths) / len(lengths)
    typical = [texts[i] for i in sorted(range(len(texts)), key=lambda i: abs(lengths[i] - mean))[:BATCH_SIZE]]
    return (typical * BATCH_SIZE)[:BATCH_SIZE]


def one_step_seconds(teacher, layers: list[int], enc, frozen_embeddings: bool) -> float:
    """A student made from these teacher layers: the fastest of three optimiser steps after two untimed ones
    (which pay for allocations); the fastest, because a busy moment only ever slows a step."""
    model = make_student(teacher.model, layers).to(teacher.device).train()
    if frozen_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    inputs = model_inputs(model, enc, teacher.device)
    timed = []
    with INFERENCE_LOCK:
        for _ in range(5):
            start = time.perf_counter()
            with torch.enable_grad():
                model(**inputs).logits.float().sum().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            synchronize(teacher.device)
            timed.append(time.perf_counter() - start)
    return min(timed[2:])


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
    @property
    def default_budget(self) -> float:
        """The page's and the API's default budget: BUDGET_MINUTES, or this app's cap where it is lower."""
        return budget_of(None, self.limits.max_minutes)

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

    def step_time(self, task: str, layers: int, texts: list[str] | None = None) -> StepTime:
        """Measured on the job's own student (the teacher's layers, as the child makes it) and on a batch of the
        visitor's texts of their typical length (the child groups batches by length), once per shape and
        length band: one optimiser step of the student and of the baseline, the teacher on the batch."""
        teacher, _ = self.pair(task)
        batch = typical_batch(teacher.tokenizer, texts or [DEFAULT_TEXT])
        enc = teacher.tokenizer(batch, truncation=True, max_length=MAX_TOKENS, padding=True, return_tensors="pt")
        key = (task, layers, int(enc["input_ids"].shape[1]) // 8)
        if key not in self._step_times:
            self._step_times[key] = self._time_step(task, layers, batch)
        return self._step_times[key]

    def _time_step_now(self, task: str, layers: int, texts: list[str]) -> StepTime:
        """The job's student made from the teacher's layers (as the child makes it), with its word embeddings
        frozen as the child's classification jobs keep them, and the labels-alone baseline, which trains
        them; each step timed alone (requests wait a fraction of a second), CUDA synchronised first."""
        teacher, _ = self.pair(task)
        try:
            picked = parse_layers(layers, teacher.model.config.num_hidden_layers)
        except UserError as exc:
            raise JobError(str(exc)) from None
        enc = teacher.tokenizer(texts, truncation=True, max_length=MAX_TOKENS, padding=True, return_tensors="pt")
        classification = self.objective(task) == "classification"
        student = one_step_seconds(teacher, picked, enc, frozen_embeddings=classification)
        baseline = one_step_seconds(teacher, picked, enc, frozen_embeddings=False) if classification else student
        with INFERENCE_LOCK, torch.inference_mode():
            start = time.perf_counter()
            teacher.model(**model_inputs(teacher.model, enc, teacher.device))
            synchronize(teacher.device)
            teacher_seconds = (time.perf_counter() - start) / len(texts)
        return StepTime(student, baseline, teacher_seconds)

    def plan(self, request: JobRequest, texts: list[str] | None = None, transfer_rows: int = 0) -> JobPlan:
        """The job fitted to its budget, from a step measured here: start-up, the baseline's own steps and
        the teacher's pass over the rows first, then as many of the recipe's variants a row as the rest buys
        at its passes (the CLI's --augment auto says how many the rows call for). request: checked numbers."""
        task, rows, baselines = request.task, int(request.rows), bool(request.baselines)
        timing = self.step_time(task, int(request.layers), texts)
        classification = self.objective(task) == "classification"
        # The labels-alone baseline trains for what the CLI gives it alone; the masked-LM one as long as the student.
        own_steps = labels_alone_steps(rows) if baselines and classification else 0
        as_long = baselines and not classification
        per_step = timing.step_seconds + (0 if classification else BATCH_SIZE * timing.teacher_seconds_per_text)
        baseline_step = per_step if as_long else timing.baseline_step_seconds
        epochs, budget = max(1, int(request.epochs)), budget_of(request.budget_minutes, self.limits.max_minutes) * 60

        def cost(variants: int, steps: int | None = None) -> tuple[float, int, int]:
            """(seconds, texts, the student's steps) of a job with these variants a row."""
            seen = rows * (1 + variants) + transfer_rows
            steps = min(steps_per_epoch(seen, BATCH_SIZE) * epochs if steps is None else steps, self.limits.max_steps)
            labelling = seen * timing.teacher_seconds_per_text * TEACHER_PASSES if classification else 0.0
            baseline = (steps if as_long else own_steps) * baseline_step
            return START_SECONDS + labelling + steps * per_step + baseline, seen, steps

        variable = texts is None or can_vary(texts)
        asked = "auto" if classification and request.augment else "0"
        augmentation = plan_augmentation(asked, rows, variable, transfer_rows, True, Passes(epochs, BATCH_SIZE))
        wanted = augmentation.variants
        one_pass = lambda v: steps_per_epoch(rows * (1 + v) + transfer_rows, BATCH_SIZE)
        buys = lambda v: int((budget - cost(v, 0)[0]) / (per_step + (baseline_step if as_long else 0)))
        # Short of the whole recipe, passes go first (one pass over every variant is more new text than two
        # over half of them: results.md), then variants, then the passes over the rows themselves.
        whole_seconds, _, whole_steps = cost(wanted)
        if whole_seconds <= budget or (wanted and buys(wanted) >= one_pass(wanted)):
            variants = wanted
        else:
            variants = next((v for v in range(wanted - 1, 0, -1) if buys(v) >= one_pass(v)), 0)
        seconds, seen, steps = cost(variants)
        if seconds > budget:
            seconds, seen, steps = cost(variants, max(1, buys(variants)))
        full = whole_seconds if steps < whole_steps else None
        words = self.recipe_words(augmentation, variants, epochs, steps / steps_per_epoch(seen, BATCH_SIZE))
        baseline = ("the masked-LM-alone baseline as long" if as_long else
                    "the labels-alone baseline for what the CLI gives it alone" if baselines else "")
        return JobPlan(steps, variants, wanted, steps if as_long else own_steps, seconds, seen, words, baseline,
                       math.ceil(full / 30) / 2 if full is not None else None)

    @staticmethod
    def recipe_words(augmentation, variants: int, epochs: int, passes: float) -> str:
        """What the job learns from, in the page's words; where the budget cut the recipe, by how much.
        augmentation: the CLI's plan for the rows (recipe.AugmentPlan: the variants they call for, and why)."""
        wanted = augmentation.variants
        of_passes = f"{passes:.1f} of {epochs} passes" if passes < epochs - 0.05 else f"{epochs} passes"
        if variants and variants == wanted:
            whole = "whole" if passes >= epochs - 0.05 else "with all its variants, fewer passes to fit your budget"
            return (f"The small-data recipe {whole}: the teacher labels {variants} variants of each of your rows "
                    f"(masked, cut and swapped words: text your labels do not cover), {of_passes}")
        if wanted:
            if variants:
                return (f"The small-data recipe cut to fit your budget: {variants} of its {wanted} teacher-labelled "
                        f"variants of each row, one pass")
            return (f"No generated text: your budget buys {passes:.1f} passes over your rows and nothing of the "
                    f"small-data recipe ({wanted} teacher-labelled variants of each row)")
        cut = f"; your budget buys {passes:.1f} of the {epochs} passes" if passes < epochs - 0.05 else ""
        return page_words(augmentation.reason) + cut

    def plan_sentence(self, plan: JobPlan, rows: int, budget: float, baselines: bool) -> str:
        """The plan in the page's words: shown before Start, and kept on the page while the job runs."""
        generated = plan.variants * rows
        made = f" ({plan.texts - generated:,} yours, {generated:,} generated)" if plan.variants else ""
        baseline = f"; {plan.baseline}, {plan.baseline_steps:,} steps" if baselines and plan.baseline else ""
        over = (f" ⚠️ More than your budget: raise it to {math.ceil(plan.seconds / 30) / 2:g} min, or untick the "
                "baseline." if plan.seconds > budget * 60 + 1 else "")
        full = ""
        if plan.full_minutes is not None:
            full = (f" A budget of **{plan.full_minutes:g} min** runs the whole recipe." if plan.full_minutes <=
                    self.limits.max_minutes else f" The whole recipe needs about {plan.full_minutes:g} min, more than "
                    f"this app's cap of {self.limits.max_minutes:g} min: fewer rows fit it.")
        return (f"About **{plan.seconds / 60:.1f} min** of your {budget:g}: {plan.steps:,} steps of {BATCH_SIZE} over "
                f"{plan.texts:,} texts{made}{baseline}.{over} {plan.reason}.{full} Caps: {self.limits.max_rows:,} "
                f"rows, {self.limits.max_steps:,} steps, {self.limits.max_minutes:g} min.")

    def estimate(self, request: JobRequest) -> str:
        """The estimate shown before Start: how the rows fall into the teacher's classes (with what would
        mislead), the job fitted to its budget (plan), and the wait when the slot is taken."""
        return self.estimate_and_offer(request)[0]

    def estimate_and_offer(self, request: JobRequest) -> tuple[str, float | None]:
        """The estimate, and the budget that runs the whole recipe where this one cuts it (within the cap;
        the page offers it in one click). Rows past the cap are planned at the cap (Start refuses them, saying so)."""
        task, upload = request.task, request.upload
        rows = max(1, min(int(request.rows or self.limits.max_rows), self.limits.max_rows))
        texts, balance = None, ""
        if upload:  # the file's own rows and texts (9 in 10 train, 1 in 10 scores the student), read once
            texts, found, balance = self.read_for_plan(task, upload)
            rows = min(rows, max(1, round(found * 0.9))) if found else rows
        budget = budget_of(request.budget_minutes, self.limits.max_minutes)
        baselines = bool(request.baselines)
        plan = self.plan(replace(request, rows=rows, epochs=int(request.epochs or 1), budget_minutes=budget), texts)
        wait = self.runner.wait_seconds()
        queued = (f"\n\n⏳ The app trains one student at a time: yours would start in about {wait / 60:.0f} min "
                  f"({len(self.runner.waiting)} waiting)." if self.runner.training() else "")
        offer = plan.full_minutes if plan.full_minutes is not None and plan.full_minutes <= self.limits.max_minutes \
            else None
        return "\n\n".join(x for x in (balance, self.plan_sentence(plan, rows, budget, baselines)) if x) + queued, offer

    def read_for_plan(self, task: str, upload: str) -> tuple[list[str] | None, int, str]:
        """(the first texts, the rows, the class balance as the page says it) of an upload, from one reading;
        what Start would refuse is said here and the plan goes on from the defaults."""
        try:
            if self.objective(task) != "classification":
                columns, found = read_rows(upload, self.limits.max_upload_bytes, limits=self.limits.read)
                column = obvious_column(columns, TEXT_COLUMNS) or columns[0]
                return [str(r.get(column) or "") for r in found[:SAMPLE_TEXTS]] or None, len(found), ""
            data = read_labelled(upload, max_bytes=self.limits.max_upload_bytes, limits=self.limits.read)
        except UserError:
            return None, 0, ""  # said when Start reads it
        teacher, _ = self.pair(task)
        try:
            balance = uploads.ClassBalance.of(teacher, data.labels).markdown()
        except UserError as exc:
            balance = f"⚠️ {exc} Start will refuse this file."
        return data.texts[:SAMPLE_TEXTS] or None, len(data), balance

    # ---- a job --------------------------------------------------------------------------------------
    def start(self, session: str, request: JobRequest, held_key: str | None = None) -> Job:
        """Check every setting, turn the upload into the job's files, start the child or queue the job;
        the visitor's uploads are deleted once read, whether the job starts or not. held_key: the job this
        browser already holds (a second tab of it starts nothing while that job runs or waits)."""
        try:
            return self._start(session, request, held_key)
        finally:
            remove_upload(request.upload)
            remove_upload(request.transfer)

    def held(self, key: str | None) -> Job | None:
        """The job a browser's stored key names, if it is this server's and the secret matches; else None."""
        try:
            return self.runner.owned(key, "hold") if key else None
        except UserError:
            return None

    def _start(self, session: str, request: JobRequest, held_key: str | None) -> Job:
        if not self.enabled:
            raise JobError("training is off in this app (a public address); its operator can start it with "
                           "--allow-training, or run the CLI command shown in this tab.")
        task, baselines = request.task, bool(request.baselines)
        teacher, _ = self.pair(task)
        rows = whole_number(request.rows, "rows to learn from", uploads.MIN_ROWS, self.limits.max_rows)
        teacher_layers = getattr(teacher.model.config, "num_hidden_layers", 12)
        layers = whole_number(request.layers, f"student layers (the teacher has {teacher_layers})", 1,
                              teacher_layers - 1)
        epochs = whole_number(request.epochs, "epochs", 1, MAX_EPOCHS)
        budget = budget_of(request.budget_minutes, self.limits.max_minutes)
        self.runner.check_room(session, self.held(held_key))
        job_id, folder = self.runner.new_folder()
        try:
            files = uploads.prepare(teacher, self.objective(task), request.upload, request.transfer, rows, folder,
                                    self.limits)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        checked = replace(request, rows=files.rows, layers=layers, epochs=epochs, budget_minutes=budget)
        plan = self.plan(checked, list(files.sample_texts) or None, files.transfer_rows)
        argv = distill_argv(teacher.spec.model, files, layers, epochs, baselines, plan, folder)
        notes = [f"{files.rows:,} training rows" + (f" (sampled from {files.sampled_from:,})"
                                                    if files.sampled_from > files.rows + files.validation_rows else "")
                 + (f", {files.validation_rows:,} held out (each class its share) to score the student"
                    if files.validation_rows else ""), *files.balance_warnings]
        return self.runner.submit(Job(id=job_id, visitor=session, task=task, folder=folder, argv=argv, notes=notes,
                                      plan=self.plan_sentence(plan, files.rows, budget, baselines),
                                      planned_seconds=plan.seconds,
                                      baseline_steps=plan.baseline_steps if baselines else 0))

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

