"""The one skeleton of every training step (finetune and distill, each for classification and for
`--objective mlm`): what they share is written here once, each step says only what is its own.

Order of work: every input is read and checked before the output directory is made (bad input writes
nothing); the model and metrics.json are written before the card; the card and the upload come last.
"""

from __future__ import annotations

from pathlib import Path

from demo.core.errors import UsageError, UserError
from demo.distill.accel import make_accelerator
from demo.distill.args import TrainArguments, settings_dict
from demo.distill.checkpoints import RunFiles
from demo.distill.hub import publish
from demo.distill.loop import FitResult, set_seed
from demo.distill.outputs import (
    check_output_dir,
    command_line,
    copy_training_code,
    prepare_output_dir,
    run_fingerprint,
    write_json,
    write_onnx,
)
from demo.distill.run_status import RunStatus, open_status
from demo.models.loading import resolve_device


class Step:
    """One training step. A subclass fills in what is its own; run_step() does the rest, calling these
    hooks in the order they are written here."""

    name = "train"  # the command ("finetune" or "distill"): tracker project and metrics' command line

    def __init__(self, settings: tuple, targs: TrainArguments, argv: list[str]):
        self.settings, self.targs, self.argv = settings, targs, argv
        self.status = RunStatus()  # the run's --status-file writer, set by run_step; each fit is passed it

    def prepare(self, accelerator) -> None:
        """Read and check every input and load the models; nothing is written yet."""

    def fingerprint_inputs(self) -> dict:
        """What besides the flags makes this run (e.g. the teacher's weights digest)."""
        return {}

    def train(self, accelerator, run: RunFiles) -> FitResult:
        """The step's own training: its rows, model and loss through loop.fit (history and checkpoints in run)."""
        raise NotImplementedError

    def train_baselines(self, accelerator, result: FitResult) -> None:
        """Students trained without (part of) the recipe, on every process (--baselines)."""

    def save(self, out: Path) -> None:
        """The model and its tokenizer (main process)."""
        raise NotImplementedError

    def export(self, out: Path) -> None:
        """Further formats of the saved model, written beside it (the distill step's --export-onnx)."""

    def measure(self, accelerator, out: Path, result: FitResult) -> dict:
        """The step's own figures for metrics.json (main process)."""
        raise NotImplementedError

    def write_card(self, out: Path, metrics: dict) -> None:
        """The model card (README.md), where the step writes one."""

    def summary(self, out: Path, metrics: dict) -> str:
        raise NotImplementedError

    def publish_to(self) -> tuple[str, bool, bool] | None:
        """(repo id, private, dry run) where the run is to be published."""
        return None


class FinetuneStep(Step):
    """`finetune`: a teacher from an encoder (--model, the data flags, the training flags)."""

    name = "finetune"

    def __init__(self, margs, data_args, targs: TrainArguments, argv: list[str]):
        super().__init__((margs, data_args, targs), targs, argv)
        self.margs, self.data_args = margs, data_args


class DistillStep(Step):
    """`distill`: a student from a teacher (the distillation flag groups, the data and training flags)."""

    name = "distill"

    def __init__(self, dargs, data_args, targs: TrainArguments, argv: list[str]):
        super().__init__((dargs, data_args, targs), targs, argv)
        self.dargs, self.data_args = dargs, data_args
        self.baselines: list = []  # the students trained without (part of) the recipe, when --baselines

    def publish_to(self) -> tuple[str, bool, bool] | None:
        p = self.dargs.publish
        return (p.push_to_hub, p.hub_private, p.dry_run) if p.push_to_hub else None

    def export(self, out: Path) -> None:
        if self.dargs.publish.export_onnx:
            print(f"exporting the student to ONNX (fp32 and dynamic int8) in {out / 'onnx'}", flush=True)
            write_onnx(out, "fill_mask" if self.data_args.objective == "mlm" else "classify")


def run_step(step: Step) -> dict:
    """Train, save and report one step; returns metrics.json's content (empty on other processes).
    With --status-file the run's phase and progress are kept there as data (run_status.py)."""
    status = step.status = open_status(step.targs.status_file)
    try:
        metrics = _run_step(step, status)
    except UserError as exc:
        status.failed(str(exc))
        raise
    except BaseException as exc:
        status.failed(f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
        raise
    status.phase("done")
    return metrics


def _run_step(step: Step, status: RunStatus) -> dict:
    targs = step.targs
    accelerator = start(targs)
    if not accelerator.is_main_process:
        status.path = None  # one writer: the main process
    set_seed(targs.seed)
    step.prepare(accelerator)
    out = open_output_dir(accelerator, targs)
    fingerprint = run_fingerprint(*step.settings, step=step.name, **step.fingerprint_inputs())
    if accelerator.log_with:
        accelerator.init_trackers(f"distill-demo-{step.name}", config={
            k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in fingerprint.items()})
    status.phase("preparing", "the teacher's answers on the training text")  # "training" from the first step
    result = step.train(accelerator, RunFiles(
        out=out, fingerprint=fingerprint, checkpoint_steps=targs.checkpoint_steps,
        keep_checkpoints=targs.keep_checkpoints, logging_steps=targs.logging_steps,
        resume_from=targs.resume_from_checkpoint))
    status.phase("baselines")
    step.train_baselines(accelerator, result)
    main = accelerator.is_main_process
    accelerator.end_training()
    if not main:
        return {}
    status.phase("measuring", "the student's scores on the held-out rows")
    step.save(out)
    step.export(out)
    metrics = {**step.measure(accelerator, out, result), **run_record(step, accelerator, result)}
    write_json(out / "metrics.json", metrics)
    copy_training_code(out)
    status.phase("measuring", "the model card")
    card_failure = write_card_or_warn(step, out, metrics)
    print(step.summary(out, metrics), flush=True)
    if card_failure is not None:  # saved and measured; said in one line, exit 2, nothing published without a card
        raise ReportError(f"{card_failure}; the model and metrics.json in {out} are complete, and nothing was "
                          "published.")
    if (target := step.publish_to()) is not None:
        repo_id, private, dry_run = target
        publish(out, repo_id, private=private, dry_run=dry_run)
    return metrics


def run_record(step: Step, accelerator, result: FitResult) -> dict:
    """What every step's metrics.json says about how it was trained."""
    targs = step.targs
    return {"train_seconds": result.train_seconds, "total_steps": result.total_steps,
            "best_epoch": result.best_epoch, "history": result.history, "resumed_from": result.resumed_from,
            "num_processes": accelerator.num_processes, "mixed_precision": accelerator.mixed_precision,
            "gradient_accumulation_steps": targs.gradient_accumulation_steps,
            "eval_batch_size": targs.eval_batch_size, "command": command_line(step.name, step.argv),
            "args": settings_dict(*step.settings)}


class ReportError(UserError, RuntimeError):
    """A report step (the model card) failed after the model and its figures were saved."""


def write_card_or_warn(step: Step, out: Path, metrics: dict) -> str | None:
    """A card that cannot be written must not cost the run: the model and metrics.json are already saved.
    Returns what failed (None when the card was written)."""
    try:
        step.write_card(out, metrics)
    except Exception as exc:  # noqa: BLE001 - said once, in the error line run_step ends with
        return f"the model card could not be written ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
    return None


def start(targs: TrainArguments):
    """Before any work: the output directory and flags checked, then the run's Accelerator.

    Under `accelerate launch` there is one per process; batch sizes are global, so each must split
    evenly over the processes.
    """
    resolve_device(targs.device)  # an explicit device that is absent: a clear error now
    check_output_dir(targs.output_dir, targs.overwrite_output_dir, resuming=bool(targs.resume_from_checkpoint))
    accelerator = make_accelerator(targs.device, targs.mixed_precision, targs.gradient_accumulation_steps,
                                   targs.report_to, project_dir=targs.output_dir)
    for flag, size in (("--batch-size", targs.batch_size), ("--eval-batch-size", targs.eval_batch_size)):
        if size % accelerator.num_processes:
            raise UsageError(f"{flag} {size} is the global batch: make it a multiple of the "
                             f"{accelerator.num_processes} processes.")
    return accelerator


def open_output_dir(accelerator, targs: TrainArguments) -> Path:
    """The output directory, created (or kept, when resuming) by the main process while the others wait."""
    accelerator.wait_for_everyone()
    out = Path(targs.output_dir)
    if accelerator.is_main_process:
        out = prepare_output_dir(targs.output_dir, targs.overwrite_output_dir, bool(targs.resume_from_checkpoint))
    accelerator.wait_for_everyone()
    return out
