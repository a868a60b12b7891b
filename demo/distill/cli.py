"""`python -m demo.distill {finetune,distill,push} ...`: teacher fine-tuning, distillation, publishing."""

from __future__ import annotations

import sys

from transformers import HfArgumentParser

from ..config import ConfigError
from ..datafiles import DataError
from ..evaluation import LabelMismatch
from ..loading import LoadError
from .args import DataArguments, DistillArguments, DistillTrainArguments, FinetuneArguments, PushArguments, \
    TrainArguments
from .augment import AugmentError
from .finetune import run_finetune
from .hub import PublishError, publish
from .kd import run_distill
from .outputs import UsageError
from .targets import TargetsCacheError

STEPS = {
    "finetune": "fine-tune a BERT encoder on a classification task (the teacher)",
    "distill": "distil a fine-tuned BERT teacher into a smaller student, write metrics and model card",
    "push": "publish a finished output directory to the Hugging Face Hub",
}
USER_ERRORS = (DataError, LoadError, LabelMismatch, UsageError, ConfigError, PublishError, AugmentError,
               TargetsCacheError)


# ---- entry point -------------------------------------------------------------------------------
def usage() -> str:
    lines = ["usage: python -m demo.distill STEP [options]   (python -m demo.distill STEP --help for options)", ""]
    lines += [f"  {name:<9} {text}" for name, text in STEPS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    step, rest = argv[0], argv[1:]
    if step not in STEPS:
        print(f"error: unknown step {step!r}.\n{usage()}", file=sys.stderr)
        return 2
    types = {"finetune": (FinetuneArguments, DataArguments, TrainArguments),
             "distill": (DistillArguments, DataArguments, DistillTrainArguments),
             "push": (PushArguments,)}[step]
    parser = HfArgumentParser(types, prog=f"python -m demo.distill {step}", description=STEPS[step])
    try:
        parsed = parser.parse_args_into_dataclasses(args=rest)
    except ValueError as exc:  # __post_init__ checks: say how to fix, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if step == "finetune":
            run_finetune(*parsed, argv=rest)
        elif step == "distill":
            run_distill(*parsed, argv=rest)
        else:
            (pargs,) = parsed
            publish(pargs.output_dir, pargs.repo_id, private=pargs.hub_private, dry_run=pargs.dry_run)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # e.g. --student-layers out of range, a non-BERT teacher
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
