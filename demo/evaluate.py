"""`python -m demo.evaluate`: teacher and student on your labelled file -> report.md/json/html + predictions.csv.

With `--task fill_mask` the file is plain text (held-out text, .txt one per line or a text column):
the masked-LM figures of mlm_eval (top-1/top-5 masked-token accuracy, perplexities, top-1
agreement, speedup) -> report.md and report.json; `--against MODEL` adds a second student measured
on the same masks and a token-by-token comparison of the two (is the distilled student's lead over,
say, the one trained without a teacher more than the noise of the sample?).

The edge only: flags -> EvalSettings -> measuring.evaluation (the Evaluate tab calls the same functions, so
the page and the CLI give the same figures and refuse the same input).
"""

from __future__ import annotations

import argparse
import sys

from demo.core.errors import UsageError, exit_on_user_error
from demo.data.files import QUOTING
from demo.measuring.evaluation import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_LENGTH,
    MAX_ROWS,
    EvalRequest,
    EvalSettings,
)
from demo.measuring.fill_mask_report import evaluate_fill_mask
from demo.measuring.frontier_run import DEFAULT_MARGIN, evaluate_frontier
from demo.measuring.labelled_run import evaluate_labelled
from demo.models.config import (
    DEVICES,
    LABELLED_TASKS,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m demo.evaluate", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=None, help="pairs YAML (default: pairs.yaml)")
    p.add_argument("--task", required=True, choices=(*LABELLED_TASKS, "fill_mask"),
                   help="which configured pair to evaluate")
    p.add_argument("--file", required=True, help="labelled CSV, TSV, JSON, JSON-lines or parquet file (fill_mask: "
                                                 "text, .txt one per line or a text column)")
    p.add_argument("--text-column", default=None, help="column with the text (guessed when obvious)")
    p.add_argument("--label-column", default=None, help="column with the gold label (guessed when obvious)")
    p.add_argument("--quoting", choices=QUOTING, default="auto",
                   help="CSV/TSV quoting: auto (detect), none (GLUE-style TSV) or csv (fields may span lines)")
    p.add_argument("--out", required=True, help="directory for report.md, report.json, report.html, predictions.csv")
    p.add_argument("--max-rows", type=int, default=None,
                   help=f"evaluate the first N rows (default: all, up to {MAX_ROWS:,})")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="sequences per forward pass")
    p.add_argument("--max-length", type=int, default=DEFAULT_MAX_LENGTH, help="tokens per text; longer texts are cut")
    p.add_argument("--device", choices=DEVICES, default=None, help="overrides the config's device")
    p.add_argument("--unbatched-baseline", action="store_true",
                   help="also time one example at a time, to show what batching buys")
    p.add_argument("--against", default=None, metavar="MODEL",
                   help="a second student (Hub id or directory, e.g. a run's baselines/...) measured on the same "
                        "rows (fill_mask: the same masks), compared with the student row by row (exact McNemar)")
    p.add_argument("--decision", action="store_true",
                   help="labelled tasks: also write decision.html, one page that answers 'can the student replace the "
                        "teacher here?' (verdict with intervals, per-class figures, throughput and cost at batch 1 "
                        "and 32, size; prints to PDF)")
    p.add_argument("--price-per-hour", type=float, default=None, metavar="P",
                   help="with --decision or --frontier: what an hour of this machine costs (any currency), for the "
                        "cost per million predictions")
    frontier = p.add_argument_group("which variant to ship (labelled tasks)")
    frontier.add_argument("--frontier", action="store_true",
                          help="measure every variant (teacher and student, fp32 and int8 on this machine's fastest "
                               "backend, and each --student) on the file -> frontier.json and frontier.html, with the "
                               "recommended one: the cheapest within --margin of the teacher")
    frontier.add_argument("--student", action="append", default=[], metavar="DIR",
                          help="with --frontier: another student of the same labels (e.g. runs with 2 and 4 layers); "
                               "may be given several times")
    frontier.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                          help="with --frontier: points of accuracy a variant may lose against the teacher (the lower "
                               "bound of its paired 95%% interval), 0 to 100")
    return p.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.decision and (args.task == "fill_mask" or args.price_per_hour is None or args.price_per_hour < 0):
        raise UsageError("--decision covers the labelled tasks (sentiment, classify) and needs --price-per-hour P, "
                         "what an hour of this machine costs you (0 or more).")
    settings = EvalSettings(task=args.task, batch_size=args.batch_size, max_length=args.max_length,
                            max_rows=args.max_rows, unbatched_baseline=args.unbatched_baseline, quoting=args.quoting)
    request = EvalRequest(config=args.config, task=args.task, file=args.file, text_column=args.text_column,
                          label_column=args.label_column, device=args.device, out=args.out, against=args.against,
                          decision=args.decision, price_per_hour=args.price_per_hour, margin=args.margin,
                          students=tuple(args.student or ()),
                          command=tuple(sys.argv[1:] if argv is None else argv))  # as typed, for the decision page
    if args.task == "fill_mask":
        if args.frontier:
            raise UsageError("--frontier covers the labelled tasks (sentiment, classify).")
        evaluate_fill_mask(request, settings)
        return 0
    lead = evaluate_frontier(request, settings).recommendation() if args.frontier else None
    if not args.frontier or args.decision:
        evaluate_labelled(request, settings, lead)  # with --frontier --decision: the page leads with its answer
    return 0


if __name__ == "__main__":
    sys.exit(main())
