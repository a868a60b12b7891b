"""The fill-mask pair on held-out text (the evaluator's `--task fill_mask`): fixed seeded masks, the
masked-LM figures of mlm_eval, and with `--against` a second student compared token by token.

The request (measuring.evaluation.EvalRequest) is built from the evaluator's flags at its edge.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from demo.core.formatting import json_text
from demo.core.progress import ProgressLine
from demo.data.files import read_texts
from demo.measuring.evaluation import MAX_ROWS, EvalRequest, EvalSettings
from demo.measuring.mlm_eval import (
    check_same_vocabulary,
    evaluate_masked_lm,
    paired_top1,
)
from demo.models.config import ModelSpec
from demo.models.loading import load_model
from demo.models.registry import PairRegistry


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

    def measure(model, label: str, teacher_pppl: float | None = None):
        with ProgressLine(label, unit="texts") as progress:
            return evaluate_masked_lm(teacher.model, teacher.tokenizer, texts, student=model,
                                      max_length=settings.max_length, batch_size=settings.batch_size,
                                      device=teacher.device, progress=progress, teacher_pppl=teacher_pppl)

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
