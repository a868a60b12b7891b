"""The evaluator's labelled tasks (`python -m demo.evaluate --task sentiment|classify`): teacher and
student on a labelled file, each figure with its interval, and with `--against MODEL` a second student
on the same rows, compared with the student row by row.

`args` is the evaluator's parsed flags (config, file, columns, device, against, out).
"""

from __future__ import annotations

from demo.core.progress import ProgressLine
from demo.measuring.decision import (
    command_line,
    decision_html,
    measure_throughput,
    verdict,
)
from demo.measuring.eval_report import against_figures, write_reports
from demo.measuring.evaluation import (
    EvalSettings,
    evaluate_pair,
    evaluate_task,
    read_eval_file,
)
from demo.models.config import ModelSpec
from demo.models.loading import load_model
from demo.models.registry import PairRegistry


def evaluate_labelled(args, settings: EvalSettings, lead: str | None = None) -> int:
    """lead: the frontier's recommendation, which the decision page then says first."""
    data = read_eval_file(args.file, args.text_column, args.label_column, settings)
    registry = PairRegistry.for_task(args.config, args.task, args.device)
    teacher, student = registry.pair(args.task)
    other = load_model(ModelSpec(args.against), args.task, teacher.device) if args.against else None
    with ProgressLine("evaluated", unit="examples") as progress:
        report, ctx = evaluate_task(registry, data, settings, progress)
    if other is not None:
        with ProgressLine("evaluated --against", unit="examples") as progress:
            second = evaluate_pair(teacher, other, data.texts, data.labels, settings.batch_size, settings.max_length,
                                   progress)
        ctx.against = against_figures(report, second, args.against)
        print(f"against {args.against}: {ctx.against['paired']['sentence']}")
    paths = write_reports(report, ctx, args.out)
    if args.decision:
        with ProgressLine("timing batch 1 and 32", unit="batch sizes") as progress:
            progress(0, 2)
            throughput = measure_throughput(teacher, student, data.texts, settings.max_length)
        paths["decision.html"] = paths["report.md"].with_name("decision.html")
        paths["decision.html"].write_text(decision_html(report, ctx, throughput, args.price_per_hour,
                                                        command_line(args.argv), lead), encoding="utf-8")
        print(verdict(report, ctx)[0])
    e = report.estimate
    print(f"{report.n_examples:,} examples (95% intervals): teacher accuracy {e('teacher_accuracy').text()}, student "
          f"{e('student_accuracy').text()}, retention {e('retention').text()}, agreement {e('agreement').text()}, "
          f"speedup {e('speedup').text(2, unit='x')}" + (f", batching {ctx.unbatched['ratio']:.1f}x faster than one "
                                                         "at a time" if ctx.unbatched else ""))
    print(f"teacher against student on the same rows: {report.paired['sentence']}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
