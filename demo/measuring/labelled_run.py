"""The evaluator's labelled tasks (`python -m demo.evaluate --task sentiment|classify`): teacher and
student on a labelled file, each figure with its interval, and with `--against MODEL` a second student
on the same rows, compared with the student row by row.

The request (measuring.evaluation.EvalRequest) is built from the evaluator's flags at its edge.
"""

from __future__ import annotations

from pathlib import Path

from demo.core.progress import ProgressLine
from demo.measuring.decision import (
    command_line,
    decision_html,
    measure_throughput,
    verdict,
)
from demo.measuring.eval_report import against_figures, write_reports
from demo.measuring.evaluation import (
    EvalRequest,
    EvalSettings,
    evaluate_pair,
    evaluate_task,
    read_eval_file,
)
from demo.models.config import ModelSpec
from demo.models.loading import load_model
from demo.models.registry import PairRegistry


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
