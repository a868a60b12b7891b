"""`python -m demo.evaluate`: teacher and student on your labelled file -> report.md/json/html + predictions.csv.

With `--task fill_mask` the file is plain text (held-out text, .txt one per line or a text column):
the masked-LM figures of mlm_eval (top-1/top-5 masked-token accuracy, perplexities, top-1
agreement, speedup) -> report.md and report.json; `--against MODEL` adds a second student measured
on the same masks and a token-by-token comparison of the two (is the distilled student's lead over,
say, the one trained without a teacher more than the noise of the sample?).

The command whole: its flags become an EvalRequest and EvalSettings once, and each kind of run (labelled,
fill-mask, frontier) reads, measures through measuring/, writes its reports and says where. The Evaluate tab
calls the same measuring functions, so the page and the CLI give the same figures and refuse the same input.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from demo.core.errors import UsageError, exit_on_user_error
from demo.core.formatting import json_text
from demo.core.progress import ProgressLine
from demo.data.files import QUOTING, read_texts
from demo.measuring.decision import (
    command_line,
    decision_html,
    measure_throughput,
    verdict,
)
from demo.measuring.eval_report import against_figures, write_reports
from demo.measuring.evaluation import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_LENGTH,
    MAX_ROWS,
    EvalRequest,
    EvalSettings,
    evaluate_pair,
    evaluate_task,
    read_eval_file,
)
from demo.measuring.frontier import (
    DEFAULT_MARGIN,
    Frontier,
    FrontierRequest,
    frontier_of,
    write_frontier,
)
from demo.measuring.mlm_eval import (
    MaskedLMSettings,
    check_same_vocabulary,
    evaluate_masked_lm,
    paired_top1,
)
from demo.models.config import (
    DEVICES,
    LABELLED_TASKS,
    ModelSpec,
)
from demo.models.loading import load_model
from demo.models.registry import PairRegistry


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



# ---- what each kind of run does: read, measure, write the reports, say where -------------------------
def evaluate_labelled(request: EvalRequest, settings: EvalSettings, lead: str | None = None) -> dict[str, Path]:
    """The reports written, by name. lead: the frontier's recommendation, which the decision page then says
    first."""
    data = read_eval_file(request.file, request.text_column, request.label_column, settings)
    registry = PairRegistry.for_task(request.config, request.task, request.device)
    teacher, student = registry.pair(request.task)
    other = load_model(ModelSpec(request.against), request.task, teacher.device) if request.against else None
    with ProgressLine("evaluated", unit="examples") as progress:
        report, ctx = evaluate_task(registry, data, settings, progress)
    if other is not None:
        with ProgressLine("evaluated --against", unit="examples") as progress:
            second = evaluate_pair(teacher, other, data.texts, data.labels, settings.batch_size, settings.max_length,
                                   progress)
        ctx.against = against_figures(report, second, request.against)
        print(f"against {request.against}: {ctx.against['paired']['sentence']}")
    paths = write_reports(report, ctx, request.out)
    if request.decision:
        with ProgressLine("timing batch 1 and 32", unit="batch sizes") as progress:
            progress(0, 2)
            throughput = measure_throughput(teacher, student, data.texts, settings.max_length)
        paths["decision.html"] = paths["report.md"].with_name("decision.html")
        paths["decision.html"].write_text(decision_html(report, ctx, throughput, request.price_per_hour,
                                                        command_line(list(request.command)), lead), encoding="utf-8")
        print(verdict(report, ctx)[0])
    e = report.estimate
    print(f"{report.n_examples:,} examples (95% intervals): teacher accuracy {e('teacher_accuracy').text()}, student "
          f"{e('student_accuracy').text()}, retention {e('retention').text()}, agreement {e('agreement').text()}, "
          f"speedup {e('speedup').text(2, unit='x')}" + (f", batching {ctx.unbatched['ratio']:.1f}x faster than one "
                                                         "at a time" if ctx.unbatched else ""))
    print(f"teacher against student on the same rows: {report.paired['sentence']}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return paths


def evaluate_fill_mask(request: EvalRequest, settings: EvalSettings) -> dict[str, Path]:
    """The configured fill-mask pair on held-out text, fixed seeded masks; the reports written, by name."""
    texts = read_texts(request.file, request.text_column, quoting=settings.quoting).texts
    texts = texts[:settings.max_rows or MAX_ROWS]
    registry = PairRegistry.for_task(request.config, "fill_mask", request.device)
    teacher, student = registry.pair("fill_mask")
    check_same_vocabulary(teacher.tokenizer, student.tokenizer)
    other = load_model(ModelSpec(request.against), "fill_mask", teacher.device) if request.against else None
    if other is not None:
        check_same_vocabulary(teacher.tokenizer, other.tokenizer)

    how = MaskedLMSettings(settings.max_length, settings.batch_size, teacher.device)

    def measure(model, label: str, teacher_pppl: float | None = None):
        with ProgressLine(label, unit="texts") as progress:
            return evaluate_masked_lm(teacher.model, teacher.tokenizer, texts, student=model, settings=how,
                                      progress=progress, teacher_pppl=teacher_pppl)

    report = measure(student.model, "measured")
    against = measure(other.model, "measured --against", report.teacher.pseudo_perplexity) if other else None
    out = Path(request.out)
    out.mkdir(parents=True, exist_ok=True)
    names = (teacher.spec.model, student.spec.model)
    markdown = (f"# Fill-mask: teacher and student on `{Path(request.file).name}`\n\nteacher `{names[0]}`, student "
                f"`{names[1]}`\n\n{report.markdown()}\n")
    figures = {"task": "fill_mask", "file": str(request.file), "teacher": names[0], "student": names[1],
               **report.figures()}
    if against is not None:
        paired = paired_top1(report, against)
        markdown += (f"\n## The student against `{request.against}`\n\n"
                     f"{against.markdown(student_name='against')}\n\nOn the same tokens: "
                     f"{paired.sentence('the student', '`' + request.against + '`')}.\n")
        figures["against"] = {"model": request.against, "student": asdict(against.student),
                              "retention_top1": against.retention_top1, "agreement_top1": against.agreement_top1,
                              "paired_top1": paired.figures("student", "against")}
    (out / "report.md").write_text(markdown, encoding="utf-8")
    (out / "report.json").write_text(json_text(figures), encoding="utf-8")
    print(f"{report.n_texts:,} texts, {report.n_masked:,} masked tokens: top-1 teacher "
          f"{report.teacher.top1_accuracy:.4f}, student {report.student.top1_accuracy:.4f} (retention "
          f"{report.retention_top1:.4f}), top-5 {report.teacher.top5_accuracy:.4f} / {report.student.top5_accuracy:.4f}"
          f", pseudo-perplexity {report.teacher.pseudo_perplexity:.2f} / {report.student.pseudo_perplexity:.2f}, "
          f"top-1 agreement {report.agreement_top1:.4f}, speedup {report.speedup:.2f}x")
    if against is not None:
        print(f"against {request.against}: top-1 {against.student.top1_accuracy:.4f}; "
              f"{paired.sentence('the student', 'it')}")
    print(f"wrote {out / 'report.md'}, {out / 'report.json'}")
    return {"report.md": out / "report.md", "report.json": out / "report.json"}


def evaluate_frontier(request: EvalRequest, settings: EvalSettings) -> Frontier:
    asked = FrontierRequest(request.task, Path(request.file).name, request.margin, request.price_per_hour,
                            settings.max_length, tuple(request.students))  # the margin checked before any reading
    data = read_eval_file(request.file, request.text_column, request.label_column, settings)
    teacher, student = PairRegistry.for_task(request.config, request.task, request.device).pair(request.task)
    with ProgressLine("measuring the frontier", unit="steps") as progress:
        progress(0, 1)
        frontier = frontier_of(teacher, student, data, asked)
        progress(1, 1)
    skipped = frontier.not_measured
    paths = write_frontier(frontier, request.out)
    for p in frontier.points:
        print(f"  {p.name:<28} accuracy {p.accuracy['value']:.4f}, {p.p50_ms_batch1:7.1f} ms at batch 1, "
              f"{p.per_second_batch32:8.1f}/s at batch 32{'  (Pareto)' if p.pareto else ''}")
    for name, why in skipped.items():
        print(f"  {name}: not measured: {why}")
    print(frontier.recommendation())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return frontier


if __name__ == "__main__":
    sys.exit(main())
