"""`python -m demo.evaluate`: teacher and student on your labelled file -> report.md/json/html + predictions.csv.

The Evaluate tab calls evaluate_task() too, so the page and the CLI give the same figures.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

from .config import DEVICES, ConfigError, load_config
from .datafiles import MAX_FILE_BYTES, DataError, LabelledData, read_labelled
from .evaluation import DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH, EvalReport, LabelMismatch, evaluate_pair, label_index
from .registry import PairRegistry, TaskUnavailable
from .reports import ReportContext, write_reports

LABELLED_TASKS = ("sentiment", "classify")  # fill-mask has no labels to score against
MAX_ROWS = 20_000  # examples per evaluation unless --max-rows says otherwise; bounds time on 2 CPU cores


def evaluate_task(registry: PairRegistry, task: str, data: LabelledData, batch_size: int = DEFAULT_BATCH_SIZE,
                  max_length: int = DEFAULT_MAX_LENGTH, unbatched_baseline: bool = False,
                  progress: Callable[[int, int], None] | None = None) -> tuple[EvalReport, ReportContext]:
    """Both models of a configured task on a labelled set; labels are checked before any inference."""
    if task not in LABELLED_TASKS:
        raise DataError(f"task {task!r} has no labels to evaluate against; use one of {', '.join(LABELLED_TASKS)}.")
    teacher, student = registry.pair(task)
    for model in (teacher, student):
        label_index(model, data.labels)  # raises LabelMismatch naming unknown and known labels
    report = evaluate_pair(teacher, student, data.texts, data.labels, batch_size, max_length, progress)
    unbatched = None
    if unbatched_baseline:
        one = evaluate_pair(teacher, student, data.texts, data.labels, 1, max_length)
        unbatched = {"batch_size": 1, "teacher_total_ms": one.teacher_total_ms, "student_total_ms": one.student_total_ms,
                     "ratio": (one.teacher_total_ms + one.student_total_ms) /
                              (report.teacher_total_ms + report.student_total_ms)}
    sizes = {s.role: s.size for s in registry.status(task)}
    return report, ReportContext(task=task, data_name=Path(data.source).name, sizes=sizes, unbatched=unbatched)


def load_registry_for(config_path: str | None, task: str, device: str | None) -> PairRegistry:
    config = load_config(config_path)
    if task not in config.pairs:
        raise ConfigError(f"task {task!r} is not in {config.source}; configured: {', '.join(config.tasks)}.")
    config = replace(config, pairs={task: config.pairs[task]}, device=device or config.device)
    registry = PairRegistry(config)
    registry.load_task(task)
    return registry


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m demo.evaluate", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=None, help="pairs YAML (default: pairs.yaml)")
    p.add_argument("--task", required=True, choices=LABELLED_TASKS, help="which configured pair to evaluate")
    p.add_argument("--file", required=True, help="labelled CSV, TSV, JSON or JSON-lines file")
    p.add_argument("--text-column", default=None, help="column with the text (guessed when obvious)")
    p.add_argument("--label-column", default=None, help="column with the gold label (guessed when obvious)")
    p.add_argument("--out", required=True, help="directory for report.md, report.json, report.html, predictions.csv")
    p.add_argument("--max-rows", type=int, default=None, help=f"evaluate the first N rows (default: all, up to {MAX_ROWS:,})")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="sequences per forward pass")
    p.add_argument("--max-length", type=int, default=DEFAULT_MAX_LENGTH, help="tokens per text; longer texts are cut")
    p.add_argument("--device", choices=DEVICES, default=None, help="overrides the config's device")
    p.add_argument("--unbatched-baseline", action="store_true",
                   help="also time one example at a time, to show what batching buys")
    args = p.parse_args(argv)
    if args.batch_size < 1 or (args.max_rows is not None and args.max_rows < 1) or not 8 <= args.max_length <= 512:
        p.error("--batch-size and --max-rows must be at least 1; --max-length between 8 and 512.")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        data = read_labelled(args.file, args.text_column, args.label_column, max_rows=args.max_rows,
                             max_bytes=MAX_FILE_BYTES)
        if args.max_rows is None and len(data) > MAX_ROWS:
            raise DataError(f"{Path(args.file).name} has {len(data):,} rows, over the {MAX_ROWS:,} limit; "
                            f"pass --max-rows N to evaluate a sample of the first N rows.")
        registry = load_registry_for(args.config, args.task, args.device)

        def progress(done: int, total: int) -> None:
            print(f"\revaluated {done:,}/{total:,}", end="" if done < total else "\n", file=sys.stderr, flush=True)

        report, ctx = evaluate_task(registry, args.task, data, args.batch_size, args.max_length,
                                    args.unbatched_baseline, progress)
    except (DataError, ConfigError, LabelMismatch, TaskUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    paths = write_reports(report, ctx, args.out)
    print(f"{report.n_examples:,} examples: teacher accuracy {report.teacher_accuracy:.4f}, student "
          f"{report.student_accuracy:.4f}, retention {report.retention:.4f}, agreement {report.agreement:.4f}, "
          f"speedup {report.speedup:.2f}x" + (f", batching {ctx.unbatched['ratio']:.1f}x faster than one at a time"
                                                if ctx.unbatched else ""))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
