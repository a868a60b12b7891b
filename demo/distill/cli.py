"""`python -m demo.distill {finetune,distill,push} ...`: teacher fine-tuning, distillation, publishing."""

from __future__ import annotations

import sys

from demo.core.errors import (
    EXIT_INTERRUPTED,
    EXIT_USER_ERROR,
    UsageError,
    exit_on_user_error,
)
from demo.distill.args import (
    GROUPS,
    ArgumentParser,
    DataArguments,
    DistillArguments,
    DistillTrainArguments,
    FinetuneArguments,
    PushArguments,
    TrainArguments,
)
from demo.distill.finetune import ClassifierFinetune, MlmFinetune
from demo.distill.general import MlmDistill
from demo.distill.hub import publish
from demo.distill.kd import ClassifierDistill
from demo.distill.steps import run_step

STEPS = {
    "finetune": "fine-tune a BERT encoder on a classification task (the teacher), or adapt it to text "
                "(--objective mlm)",
    "distill": "distil a BERT teacher into a smaller student (a classifier, or with --objective mlm a fill-mask "
               "model), write metrics and model card",
    "push": "publish a finished output directory to the Hugging Face Hub",
}


# ---- entry point -------------------------------------------------------------------------------
def usage() -> str:
    lines = ["usage: python -m demo.distill STEP [options]   (python -m demo.distill STEP --help for options)", ""]
    lines += [f"  {name:<9} {text}" for name, text in STEPS.items()]
    return "\n".join(lines)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    """Bad flags, files, models or labels (every UserError) end in one line and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else EXIT_USER_ERROR
    step, rest = argv[0], argv[1:]
    if step not in STEPS:
        print(f"error: unknown step {step!r}.\n{usage()}", file=sys.stderr)
        return EXIT_USER_ERROR
    if step == "push":
        (pargs,) = parse(step, rest, (PushArguments,))
        publish(pargs.output_dir, pargs.repo_id, private=pargs.hub_private, dry_run=pargs.dry_run)
        return 0
    run = make_step(step, rest)
    try:
        run_step(run)
    except KeyboardInterrupt:
        print("interrupted. Continue with the same command plus --resume-from-checkpoint latest"
              + ("" if run.targs.checkpoint_steps else " (this run saved no checkpoint: pass --checkpoint-steps N)")
              + ".", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def parse(step: str, rest: list[str], types: tuple) -> list:
    """Flags -> the step's settings; __post_init__ checks raise UsageError, and so does a flag no
    dataclass knows."""
    parser = ArgumentParser(types, prog=f"python -m demo.distill {step}", description=STEPS[step])
    *parsed, unknown = parser.parse_args_into_dataclasses(args=rest, return_remaining_strings=True)
    if unknown:
        raise UsageError(f"unknown argument(s) {' '.join(unknown)}; see python -m demo.distill {step} --help.")
    if isinstance(parsed[-1], TrainArguments):  # an epoch count typed by the user is kept as given
        parsed[-1].epochs_given = any(a == "--epochs" or a.startswith("--epochs=") for a in rest)
    return parsed


def make_step(step: str, rest: list[str]):
    """The step object for `finetune` or `distill` (classification or --objective mlm)."""
    if step == "finetune":
        margs, data_args, targs = parse(step, rest, (FinetuneArguments, DataArguments, TrainArguments))
        return (MlmFinetune if data_args.objective == "mlm" else ClassifierFinetune)(margs, data_args, targs, rest)
    *groups, data_args, targs = parse(step, rest, (*GROUPS, DataArguments, DistillTrainArguments))
    dargs = DistillArguments(*groups).check(data_args.objective)
    targs.check(data_args.objective)
    if data_args.objective == "mlm":
        return MlmDistill(dargs, data_args, targs, rest)
    return ClassifierDistill(dargs, data_args, targs, rest)
