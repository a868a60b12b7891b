"""The Evaluate tab: upload a labelled file, run both models on it, explore disagreements, download a report."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from .datafiles import LABEL_COLUMNS, TEXT_COLUMNS, DataError, read_labelled, read_rows
from .evaluate import LABELLED_TASKS, MAX_ROWS, evaluate_task
from .evaluation import LabelMismatch
from .registry import PairRegistry, TaskUnavailable
from .reports import code, confusion_figure, disagreements_sorted, md_escape, report_json, write_reports
from .scratch import scratch_dir

EXPLORER_COLUMNS = ["index", "text", "gold", "teacher_prediction", "teacher_confidence", "student_prediction",
                    "student_confidence", "right"]


def _guess(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    lowered = {c.lower(): c for c in columns}
    return next((lowered[c] for c in candidates if c in lowered), None)


def columns_of(path: str | None):
    """After an upload: fill both column pickers, pre-selecting the obvious columns."""
    if not path:
        return gr.update(choices=[], value=None), gr.update(choices=[], value=None), ""
    try:
        columns, rows = read_rows(path)
    except DataError as exc:
        return gr.update(choices=[], value=None), gr.update(choices=[], value=None), f"⚠️ {md_escape(str(exc))}"
    note = f"{len(rows):,} rows, columns: {', '.join(md_escape(c) for c in columns)}"
    if len(rows) > MAX_ROWS:
        note += f". Over the {MAX_ROWS:,}-row limit: set *max rows* to evaluate a sample."
    return (gr.update(choices=columns, value=_guess(columns, TEXT_COLUMNS)),
            gr.update(choices=columns, value=_guess(columns, LABEL_COLUMNS)), note)


def remove_upload(path: str | None) -> None:
    """Uploads are read once, in place, then deleted: nothing of the user's data stays on the server."""
    if path and Path(path).is_file() and Path(path).resolve().is_relative_to(Path(tempfile.gettempdir()).resolve()):
        Path(path).unlink(missing_ok=True)


def summary_markdown(report, ctx) -> str:
    r = report
    lines = [f"**{r.n_examples:,} examples** of {code(ctx.data_name)}, device **{r.device}**",
             "",
             "| | teacher | student |", "| --- | --- | --- |",
             f"| accuracy | {r.teacher_accuracy:.4f} | {r.student_accuracy:.4f} |",
             f"| macro-F1 | {r.teacher_macro_f1:.4f} | {r.student_macro_f1:.4f} |",
             f"| total latency | {r.teacher_total_ms:,.0f} ms | {r.student_total_ms:,.0f} ms |",
             f"| per example | {r.teacher_total_ms / r.n_examples:.2f} ms | {r.student_total_ms / r.n_examples:.2f} ms |",
             "",
             f"**Retention** {r.retention:.4f} · **agreement** {r.agreement:.4f} · **speedup** {r.speedup:.2f}× · "
             f"**{len(r.disagreements):,} disagreements** (below, teacher's most confident first)"]
    return "\n".join(lines)


def explorer_rows(report) -> list[list]:
    rows = []
    for r in disagreements_sorted(report):
        right = ("teacher" if r["teacher_prediction"] == r["gold"] else
                 "student" if r["student_prediction"] == r["gold"] else "neither")
        rows.append([r["index"], r["text"], r["gold"], r["teacher_prediction"], r["teacher_confidence"],
                     r["student_prediction"], r["student_confidence"], right])
    return rows


def build_tab(registry: PairRegistry) -> None:
    """Adds the Evaluate tab's components and events to the enclosing Blocks."""
    tasks = [t for t in LABELLED_TASKS if t in registry.config.pairs]
    gr.Markdown("Measure both models on **your labelled data**: accuracy, macro-F1, agreement, confusion "
                "matrices, speed, and every example where they disagree. CSV, TSV, JSON or JSON lines; labels "
                "are matched to the models' label names (or class numbers), case-insensitively.")
    with gr.Row():
        upload = gr.File(label="Labelled file", file_types=[".csv", ".tsv", ".json", ".jsonl"], type="filepath",
                         elem_id="evaluate-file")
        with gr.Column():
            task = gr.Dropdown(tasks, value=tasks[0] if tasks else None, label="Task (which pair)",
                               elem_id="evaluate-task")
            text_column = gr.Dropdown([], label="Text column", allow_custom_value=True, elem_id="evaluate-text-column")
            label_column = gr.Dropdown([], label="Label column", allow_custom_value=True,
                                       elem_id="evaluate-label-column")
            max_rows = gr.Number(value=0, precision=0, minimum=0, label=f"Max rows (0: all, up to {MAX_ROWS:,})")
    file_note = gr.Markdown(elem_id="evaluate-file-note")
    with gr.Row():
        run = gr.Button("Evaluate", variant="primary", elem_id="evaluate-run")
        stop = gr.Button("Cancel", variant="stop")
    summary = gr.Markdown(elem_id="evaluate-summary")
    confusion = gr.Plot(label="Confusion matrices", elem_id="evaluate-confusion")
    explorer = gr.Dataframe(headers=EXPLORER_COLUMNS, label="Disagreements (click a header to sort)",
                            interactive=False, wrap=True, elem_id="evaluate-explorer")
    downloads = gr.File(label="Report (Markdown, HTML, JSON) and per-example predictions (CSV)", file_count="multiple",
                        interactive=False, elem_id="evaluate-downloads")
    figures = gr.JSON(label="Figures (report.json)", open=False)

    def evaluate(path, task_name, text_col, label_col, rows_limit, progress=gr.Progress()):
        try:
            if not path:
                raise DataError("upload a labelled file first.")
            if task_name not in tasks:
                raise DataError(f"pick a task: one of {', '.join(tasks)}.")
            limit = int(rows_limit) if rows_limit else None
            data = read_labelled(path, text_col or None, label_col or None, max_rows=limit)
            if limit is None and len(data) > MAX_ROWS:
                raise DataError(f"the file has {len(data):,} rows, over the {MAX_ROWS:,} limit; set max rows to "
                                "evaluate a sample.")
            progress((0, len(data)), desc="evaluating", unit="examples")
            report, ctx = evaluate_task(registry, task_name, data,
                                        progress=lambda done, total: progress((done, total), unit="examples"))
        except (DataError, LabelMismatch, TaskUnavailable) as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        finally:
            remove_upload(path)
        ctx.data_name = Path(path).name
        out = Path(scratch_dir("evaluation-"))
        paths = write_reports(report, ctx, out)
        return (report_json(report, ctx), summary_markdown(report, ctx), confusion_figure(report),
                explorer_rows(report), [str(p) for p in paths.values()], None)

    upload.change(columns_of, inputs=upload, outputs=[text_column, label_column, file_note], api_visibility="private")
    event = run.click(evaluate, inputs=[upload, task, text_column, label_column, max_rows],
                      outputs=[figures, summary, confusion, explorer, downloads, upload], api_name="evaluate")
    stop.click(None, cancels=[event])
