"""`python -m demo.distill {finetune,distill,push} ...`: teacher fine-tuning, distillation, publishing."""

from __future__ import annotations

import sys

from transformers import HfArgumentParser

from demo.core.errors import (
    EXIT_INTERRUPTED,
    EXIT_USER_ERROR,
    UsageError,
    exit_on_user_error,
)
from demo.distill.args import (
    DataArguments,
    DistillArguments,
    DistillTrainArguments,
    FinetuneArguments,
    PushArguments,
    TrainArguments,
)
from demo.distill.finetune import run_finetune
from demo.distill.general import run_mlm_distill, run_mlm_finetune
from demo.distill.hub import publish
from demo.distill.kd import run_distill

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
    types = {"finetune": (FinetuneArguments, DataArguments, TrainArguments),
             "distill": (DistillArguments, DataArguments, DistillTrainArguments),
             "push": (PushArguments,)}[step]
    parser = HfArgumentParser(types, prog=f"python -m demo.distill {step}", description=STEPS[step])
    # __post_init__ checks raise UsageError; flags no dataclass knows come back here.
    *parsed, unknown = parser.parse_args_into_dataclasses(args=rest, return_remaining_strings=True)
    if unknown:
        raise UsageError(f"unknown argument(s) {' '.join(unknown)}; see python -m demo.distill {step} --help.")
    if step == "distill":
        parsed[0].check(parsed[1].objective)
        parsed[2].check(parsed[1].objective)
    if step in ("finetune", "distill"):
        try:
            mlm = parsed[1].objective == "mlm"
            run = {"finetune": run_mlm_finetune if mlm else run_finetune,
                   "distill": run_mlm_distill if mlm else run_distill}[step]
            run(*parsed, argv=rest)
        except KeyboardInterrupt:
            targs = parsed[-1]
            print("interrupted. Continue with the same command plus --resume-from-checkpoint latest"
                  + ("" if targs.checkpoint_steps else " (this run saved no checkpoint: pass --checkpoint-steps N)")
                  + ".", file=sys.stderr)
            return EXIT_INTERRUPTED
    else:
        (pargs,) = parsed
        publish(pargs.output_dir, pargs.repo_id, private=pargs.hub_private, dry_run=pargs.dry_run)
    return 0
