"""An evaluation (measuring.evaluation's plain data) rendered for people (Markdown, HTML) and machines (JSON,
CSV). No Gradio."""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from demo.core.formatting import code, human_bytes, human_count, json_text, md_escape
from demo.measuring import stats
from demo.measuring.evaluation import EvalContext, EvalReport
from demo.measuring.overlap import Overlap
from demo.measuring.scorecard import Scorecard, ScoreRow, params_saved
from demo.measuring.scoring import macro_f1_over
from demo.measuring.stats import Estimate

DISAGREEMENTS_SHOWN = 25  # rows of the disagreement table in the Markdown report (all are in the CSV)
PREDICTION_COLUMNS = ["index", "text", "gold", "teacher_prediction", "teacher_confidence", "student_prediction",
                      "student_confidence", "agree"]
EXPLORER_COLUMNS = ["index", "text", "gold", "teacher_prediction", "teacher_confidence", "student_prediction",
                    "student_confidence", "right"]


def report_scorecard(report: EvalReport, ctx: EvalContext) -> Scorecard:
    """The pair against DistilBERT's claims, with the speed and agreement measured on this file."""
    return Scorecard([ScoreRow(task=ctx.task, params_saved=params_saved(ctx.sizes), speedup=report.estimate("speedup"),
                               requests=report.n_examples, agreement=report.estimate("agreement"),
                               retention=report.estimate("retention"), retention_data=ctx.data_name)],
                     speedup_measured_on="this file", unit="batches")


def against_figures(report: EvalReport, other: EvalReport, name: str) -> dict:
    """A second student (--against) on the same rows: its figures, and the student against it (paired)."""
    hits = lambda r: [row["student_prediction"] == row["gold"] for row in r.rows]
    paired = stats.paired_comparison(hits(report), hits(other), "the student", name)
    return {"model": name, "accuracy": other.intervals["student_accuracy"],
            "macro_f1": other.intervals["student_macro_f1"], "retention": other.intervals["retention"],
            "paired": paired.to_dict(), "macro_f1_difference": macro_f1_difference(report, other).to_dict()}


def macro_f1_difference(report: EvalReport, other: EvalReport) -> Estimate:
    """The student's macro-F1 minus the other's on the same rows, with a paired bootstrap interval (an
    imbalanced set's lead, where accuracy hides the small classes)."""
    names = {name: i for i, name in enumerate(report.label_names)}
    code_of = lambda value: names.setdefault(str(value), len(names))
    gold = [code_of(row["gold"]) for row in report.rows]
    mine, theirs = ([code_of(row["student_prediction"]) for row in r.rows] for r in (report, other))
    return stats.bootstrap(lambda a, b, g, axis=-1: macro_f1_over(a, g, axis) - macro_f1_over(b, g, axis),
                           mine, theirs, gold, what="macro-F1 is undefined on these rows")


def report_json(report: EvalReport, ctx: EvalContext) -> dict:
    data = {**report.figures(), "task": ctx.task, "data": ctx.data_name, "created": ctx.created,
            "sizes": {variant: s.to_dict() if s else None for variant, s in ctx.sizes.items()},
            "n_disagreements": len(report.disagreements), "scorecard": report_scorecard(report, ctx).to_dict()}
    if ctx.unbatched:
        data["unbatched"] = ctx.unbatched
    if ctx.against:
        data["against"] = ctx.against
    if ctx.overlap:
        data["overlap"] = ctx.overlap
    return data


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs a cell that begins so as a formula


def spreadsheet_safe(value):
    """A text cell a spreadsheet will show, not run (OWASP's CSV injection advice: a leading quote)."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_START) else value


def predictions_csv(report: EvalReport) -> str:
    """Every row's answers; the texts (the uploader's, anyone's) neutralised against formula injection."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=PREDICTION_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in report.rows:
        writer.writerow({k: spreadsheet_safe(v) for k, v in row.items()}
                        | {"agree": row["teacher_prediction"] == row["student_prediction"]})
    return buffer.getvalue()


def disagreements_sorted(report: EvalReport) -> list[dict]:
    """Where teacher and student differ, the teacher's most confident answers first."""
    return sorted(report.disagreements, key=lambda r: -r["teacher_confidence"])


def who_was_right(row: dict) -> str:
    return ("teacher" if row["teacher_prediction"] == row["gold"] else
            "student" if row["student_prediction"] == row["gold"] else "neither")


def explorer_rows(report: EvalReport) -> list[list]:
    """The disagreements as table rows (EXPLORER_COLUMNS), teacher's most confident first."""
    return [[*(row[c] for c in EXPLORER_COLUMNS[:-1]), who_was_right(row)] for row in disagreements_sorted(report)]


def _figures_table(r: EvalReport) -> list[str]:
    return ["| | teacher | student |", "| --- | --- | --- |",
            f"| accuracy | {r.estimate('teacher_accuracy').text()} | {r.estimate('student_accuracy').text()} |",
            f"| macro-F1 | {r.estimate('teacher_macro_f1').text()} | {r.estimate('student_macro_f1').text()} |",
            f"| total latency | {r.teacher_total_ms:,.0f} ms | {r.student_total_ms:,.0f} ms |",
            f"| per example | {r.teacher_total_ms / r.n_examples:.2f} ms | "
            f"{r.student_total_ms / r.n_examples:.2f} ms |"]


def summary_markdown(report: EvalReport, ctx: EvalContext) -> str:
    """The Evaluate tab's headline: the report's figures, shorter."""
    r = report
    return "\n".join([f"**{r.n_examples:,} examples** of {code(ctx.data_name)}, device **{r.device}**", "",
                      *_figures_table(r), "",
                      f"**Retention** {r.estimate('retention').text()} · **agreement** "
                      f"{r.estimate('agreement').text()} · **speedup** {r.estimate('speedup').text(2, unit='×')} · "
                      f"**{len(r.disagreements):,} disagreements** (below, teacher's most confident first)", "",
                      f"Teacher against student on the same rows: {r.paired['sentence']}. Brackets: 95% intervals."])


def _confusion_md(matrix: list[list[int]], names: list[str]) -> str:
    head = "| gold \\ predicted | " + " | ".join(md_escape(n) for n in names) + " |"
    rule = "| --- " * (len(names) + 1) + "|"
    rows = [f"| **{md_escape(n)}** | " + " | ".join(str(v) for v in row) + " |" for n, row in zip(names, matrix)]
    return "\n".join([head, rule, *rows])


def disagreement_lines(r: EvalReport) -> list[str]:
    """The disagreement table of the report, the teacher's most confident first."""
    shown = disagreements_sorted(r)[:DISAGREEMENTS_SHOWN]
    if not shown:
        return ["None: the two models agree on every example."]
    lines = ["Sorted by the teacher's confidence; all rows are in `predictions.csv`.", "",
             "| # | text | gold | teacher | student | right |", "| --- | --- | --- | --- | --- | --- |"]
    for row in shown:
        text = row["text"] if len(row["text"]) <= 200 else row["text"][:199] + "…"
        lines.append(f"| {row['index']} | {md_escape(text)} | {md_escape(row['gold'])} | "
                     f"{md_escape(row['teacher_prediction'])} ({row['teacher_confidence']:.2f}) | "
                     f"{md_escape(row['student_prediction'])} ({row['student_confidence']:.2f}) | "
                     f"{who_was_right(row)} |")
    return lines


def report_markdown(report: EvalReport, ctx: EvalContext) -> str:
    r = report
    sizes = ctx.sizes
    size_row = lambda attr, fmt: " | ".join(fmt(getattr(sizes[k], attr)) if sizes.get(k) else "n/a"
                                            for k in ("teacher", "student"))
    lines = [
        f"# Teacher vs student on {code(ctx.data_name)}",
        "",
        f"Task **{ctx.task}**, {r.n_examples:,} labelled examples, device **{r.device}**, batches of "
        f"{r.batch_size}. Created {ctx.created}.",
        "",
        *_figures_table(r)[:2],
        f"| model | {code(r.teacher_model)} | {code(r.student_model)} |",
        *_figures_table(r)[2:],
        f"| parameters | {size_row('params', human_count)} |",
        f"| weights on disk | {size_row('disk_bytes', human_bytes)} |",
        "",
        f"**Retention** (student / teacher accuracy): **{r.estimate('retention').text()}** · **agreement**: "
        f"**{r.estimate('agreement').text()}** · **speedup** on this data: "
        f"**{r.estimate('speedup').text(2, unit='×')}** (teacher ms / student ms over {r.estimate('speedup').n:,} "
        "batches; tokenisation included; same batches, alternating which model goes first).",
        "",
        f"**Teacher against student, on the same rows**: {r.paired['sentence']} (exact McNemar test on the rows where "
        "exactly one of them is right).",
        "",
        "Brackets are 95% intervals: Wilson for accuracy and agreement, a seeded bootstrap over examples for "
        "macro-F1 and retention, over the timed batch pairs for the speedup.",
    ]
    if ctx.unbatched:
        u = ctx.unbatched
        lines += ["", f"Batching: one example at a time took {u['teacher_total_ms'] + u['student_total_ms']:,.0f} ms "
                  f"for both models, batches of {r.batch_size} took {r.teacher_total_ms + r.student_total_ms:,.0f} ms: "
                  f"**{u['ratio']:.1f}×** faster batched."]
    if ctx.against:
        a = ctx.against
        lines += ["", f"## The student against {code(a['model'])}", "",
                  f"{code(a['model'])} on the same rows: accuracy {Estimate(**a['accuracy']).text()}, macro-F1 "
                  f"{Estimate(**a['macro_f1']).text()}. {a['paired']['sentence'].capitalize()}. Macro-F1, the student "
                  f"minus {code(a['model'])} (paired bootstrap): {Estimate(**a['macro_f1_difference']).text()}."]
    if ctx.overlap:  # contamination: rows the models were trained on are recalled, not generalised to
        lines += ["", "## Rows the models trained on", "",
                  *(f"- {s}" for s in Overlap(**ctx.overlap).sentences())]
    lines += ["", "## Scorecard", "", report_scorecard(report, ctx).markdown()]
    lines += ["", "## Confusion matrices", "", "Teacher:", "", _confusion_md(r.teacher_confusion, r.label_names), "",
              "Student:", "", _confusion_md(r.student_confusion, r.label_names), "",
              f"## Disagreements ({len(r.disagreements):,})", ""]
    lines += disagreement_lines(r)
    return "\n".join(lines) + "\n"


def confusion_figure(report: EvalReport) -> go.Figure:
    """Teacher's and student's confusion matrices side by side."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"Teacher (accuracy {report.teacher_accuracy:.3f})",
                                                        f"Student (accuracy {report.student_accuracy:.3f})"))
    for col, matrix in enumerate((report.teacher_confusion, report.student_confusion), start=1):
        fig.add_trace(go.Heatmap(z=matrix, x=report.label_names, y=report.label_names, colorscale="Blues",
                                 showscale=False, text=matrix, texttemplate="%{text}",
                                 hovertemplate="gold %{y}, predicted %{x}: %{z}<extra></extra>"), row=1, col=col)
    fig.update_yaxes(autorange="reversed", title_text="gold")
    fig.update_xaxes(title_text="predicted")
    fig.update_layout(template="plotly_white", height=380, margin=dict(l=60, r=20, t=60, b=50))
    return fig


def report_html(report: EvalReport, ctx: EvalContext) -> str:
    """A self-contained page: the Markdown's figures plus the interactive confusion matrices."""
    body = html.escape(report_markdown(report, ctx))
    chart = confusion_figure(report).to_html(full_html=False, include_plotlyjs=True)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Teacher vs student: "
            f"{html.escape(ctx.data_name)}</title></head><body style='font-family:sans-serif;max-width:1100px;"
            f"margin:auto'>{chart}<pre style='white-space:pre-wrap'>{body}</pre></body></html>")


def write_reports(report: EvalReport, ctx: EvalContext, out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"report.md": out / "report.md", "report.json": out / "report.json",
             "predictions.csv": out / "predictions.csv", "report.html": out / "report.html"}
    paths["report.md"].write_text(report_markdown(report, ctx), encoding="utf-8")
    paths["report.json"].write_text(json_text(report_json(report, ctx)) + "\n", encoding="utf-8")
    paths["predictions.csv"].write_text(predictions_csv(report), encoding="utf-8")
    paths["report.html"].write_text(report_html(report, ctx), encoding="utf-8")
    return paths
