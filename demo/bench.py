"""`python -m demo.bench`: the headless speed and size sweep -> bench.json, bench.md, bench.html.

The edge only: flags -> BenchSettings -> measuring.sweep.sweep -> measuring.bench_report (the Benchmark tab
calls the same three, so the page and the CLI measure and refuse alike).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from demo.core.errors import EXIT_INTERRUPTED, exit_on_user_error
from demo.core.progress import ProgressLine
from demo.data.files import QUOTING
from demo.measuring.bench_report import write_outputs
from demo.measuring.sweep import (
    BATCH_SIZES,
    DEFAULT_WARMUP,
    EVAL_MAX_ROWS,
    MIN_REPEATS,
    SEQ_LENS,
    BenchSettings,
    parse_int_list,
    sweep,
)
from demo.models.config import DEVICES, load_config
from demo.models.variants import BENCH_VARIANTS, VARIANTS


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m demo.bench", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=None, help="pairs YAML (default: pairs.yaml)")
    p.add_argument("--tasks", default=None, help="comma-separated tasks (default: all configured)")
    p.add_argument("--variants", default=",".join(BENCH_VARIANTS),
                   help=f"comma-separated, from {', '.join(VARIANTS)} (the *-int8 ones: the faster int8 backend of "
                        "this machine, measured on first use)")
    p.add_argument("--batch-sizes", default=",".join(map(str, BATCH_SIZES)), help="comma-separated sequences per call")
    p.add_argument("--seq-lens", default=",".join(map(str, SEQ_LENS)), help="comma-separated tokens per sequence")
    p.add_argument("--repeats", type=int, default=MIN_REPEATS, help=f"timed repeats per measurement (>= {MIN_REPEATS})")
    p.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="untimed repeats first")
    p.add_argument("--threads", type=int, default=0, help="threads for PyTorch and ONNX Runtime (0: physical cores)")
    p.add_argument("--device", choices=DEVICES, default=None, help="overrides the config's device")
    p.add_argument("--architecture-only", action="store_true",
                   help="random weights from each model's config (or built-in BERT/DistilBERT-base shapes)")
    p.add_argument("--eval-file", default=None, help="labelled file: agreement with the fp32 student, and accuracy")
    p.add_argument("--eval-text-column", default=None)
    p.add_argument("--eval-label-column", default=None)
    p.add_argument("--eval-max-rows", type=int, default=EVAL_MAX_ROWS)
    p.add_argument("--eval-quoting", choices=QUOTING, default="auto", help="CSV/TSV quoting of the eval file")
    p.add_argument("--out", required=True, help="directory for bench.json, bench.md and bench.html")
    return p.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = load_config(args.config)
    if args.device:
        config = replace(config, device=args.device)
    settings = BenchSettings(
        tasks=[t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else config.tasks,
        variants=[v.strip() for v in args.variants.split(",") if v.strip()],
        batch_sizes=parse_int_list(args.batch_sizes, "--batch-sizes"),
        seq_lens=parse_int_list(args.seq_lens, "--seq-lens"), repeats=args.repeats, warmup=args.warmup,
        threads=args.threads, architecture_only=args.architecture_only, eval_file=args.eval_file,
        eval_text_column=args.eval_text_column, eval_label_column=args.eval_label_column,
        eval_max_rows=args.eval_max_rows, eval_quoting=args.eval_quoting)
    with ProgressLine("bench", unit="measurements") as progress:
        result = sweep(config, settings, progress)
    paths = write_outputs(result, args.out)
    print(result.markdown())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return EXIT_INTERRUPTED if result.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
