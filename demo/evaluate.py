"""`python -m demo.evaluate`: teacher and student on your labelled file -> report.md/json/html + predictions.csv.

With `--task fill_mask` the file is plain text (held-out text, .txt one per line or a text column):
the masked-LM figures of mlm_eval (top-1/top-5 masked-token accuracy, perplexities, top-1
agreement, speedup) -> report.md and report.json; `--against MODEL` adds a second student measured
on the same masks and a token-by-token comparison of the two (is the distilled student's lead over,
say, the one trained without a teacher more than the noise of the sample?).

The edge only: flags -> EvalSettings -> eval_run (the Evaluate tab calls the same functions, so
the page and the CLI give the same figures and refuse the same input).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

from .errors import UsageError, exit_on_user_error
from .config import DEVICES, LABELLED_TASKS, ConfigError, ModelSpec, load_config
from .datafiles import QUOTING, read_texts
from .eval_report import write_reports
from .eval_run import DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH, MAX_ROWS, EvalSettings, evaluate_task, read_eval_file
from .loading import load_model
from .mlm_eval import check_same_vocabulary, evaluate_masked_lm, paired_top1
from .progress import ProgressLine
from .registry import PairRegistry


def load_registry_for(config_path: str | None, task: str, device: str | None) -> PairRegistry:
    """Only the evaluated task's pair, loaded now (the CLI has nothing to do until it is)."""
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
                   help="fill_mask only: a second student (Hub id or directory, e.g. a run's baselines/mlm-alone) "
                        "measured on the same masks, compared with the student token by token (McNemar)")
    return p.parse_args(argv)


def evaluate_fill_mask(args: argparse.Namespace, settings: EvalSettings) -> int:
    """The configured fill-mask pair on held-out text, fixed seeded masks."""
    texts = read_texts(args.file, args.text_column, quoting=settings.quoting).texts[:settings.max_rows or MAX_ROWS]
    registry = load_registry_for(args.config, "fill_mask", args.device)
    teacher, student = registry.pair("fill_mask")
    check_same_vocabulary(teacher.tokenizer, student.tokenizer)
    other = load_model(ModelSpec(args.against), "fill_mask", teacher.device) if args.against else None
    if other is not None:
        check_same_vocabulary(teacher.tokenizer, other.tokenizer)

    def measure(model, label: str, teacher_pppl: float | None = None):
        with ProgressLine(label, unit="texts") as progress:
            return evaluate_masked_lm(teacher.model, teacher.tokenizer, texts, student=model,
                                      max_length=settings.max_length, batch_size=settings.batch_size,
                                      device=teacher.device, progress=progress, teacher_pppl=teacher_pppl)

    report = measure(student.model, "measured")
    against = measure(other.model, "measured --against", report.teacher.pseudo_perplexity) if other else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = (teacher.spec.model, student.spec.model)
    markdown = (f"# Fill-mask: teacher and student on `{Path(args.file).name}`\n\nteacher `{names[0]}`, student "
                f"`{names[1]}`\n\n{report.markdown()}\n")
    figures = {"task": "fill_mask", "file": str(args.file), "teacher": names[0], "student": names[1],
               **report.figures()}
    if against is not None:
        paired = paired_top1(report, against)
        markdown += (f"\n## The student against `{args.against}`\n\n"
                     f"{against.markdown(student_name='against')}\n\nOn the same tokens: "
                     f"{paired.sentence('the student', '`' + args.against + '`')}.\n")
        figures["against"] = {"model": args.against, "student": asdict(against.student),
                              "retention_top1": against.retention_top1, "agreement_top1": against.agreement_top1,
                              "paired_top1": paired.figures("student", "against")}
    (out / "report.md").write_text(markdown, encoding="utf-8")
    (out / "report.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    print(f"{report.n_texts:,} texts, {report.n_masked:,} masked tokens: top-1 teacher "
          f"{report.teacher.top1_accuracy:.4f}, student {report.student.top1_accuracy:.4f} (retention "
          f"{report.retention_top1:.4f}), top-5 {report.teacher.top5_accuracy:.4f} / {report.student.top5_accuracy:.4f}"
          f", pseudo-perplexity {report.teacher.pseudo_perplexity:.2f} / {report.student.pseudo_perplexity:.2f}, "
          f"top-1 agreement {report.agreement_top1:.4f}, speedup {report.speedup:.2f}x")
    if against is not None:
        print(f"against {args.against}: top-1 {against.student.top1_accuracy:.4f}; "
              f"{paired.sentence('the student', 'it')}")
    print(f"wrote {out / 'report.md'}, {out / 'report.json'}")
    return 0


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = EvalSettings(task=args.task, batch_size=args.batch_size, max_length=args.max_length,
                            max_rows=args.max_rows, unbatched_baseline=args.unbatched_baseline, quoting=args.quoting)
    if args.task == "fill_mask":
        return evaluate_fill_mask(args, settings)
    if args.against:
        raise UsageError("--against compares two fill-mask students on the same masks; use it with --task fill_mask "
                         "(for a labelled task, evaluate each pair on the same file and compare the reports).")
    data = read_eval_file(args.file, args.text_column, args.label_column, settings)
    registry = load_registry_for(args.config, args.task, args.device)
    with ProgressLine("evaluated", unit="examples") as progress:
        report, ctx = evaluate_task(registry, data, settings, progress)
    paths = write_reports(report, ctx, args.out)
    print(f"{report.n_examples:,} examples: teacher accuracy {report.teacher_accuracy:.4f}, student "
          f"{report.student_accuracy:.4f}, retention {report.retention:.4f}, agreement {report.agreement:.4f}, "
          f"speedup {report.speedup:.2f}x" + (f", batching {ctx.unbatched['ratio']:.1f}x faster than one at a time"
                                                if ctx.unbatched else ""))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
