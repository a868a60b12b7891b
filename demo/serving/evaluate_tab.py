"""The Evaluate tab: upload a labelled file, run both models on it, explore disagreements, download a report."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from demo.core.errors import UserError
from demo.core.formatting import md_escape
from demo.core.scratch import scratch_dir
from demo.data.files import (
    LABEL_COLUMNS,
    LABELLED_SUFFIXES,
    TEXT_COLUMNS,
    DataError,
    obvious_column,
    read_rows,
)
from demo.measuring.decision import decision_html, measure_throughput
from demo.measuring.eval_report import (
    EXPLORER_COLUMNS,
    confusion_figure,
    explorer_rows,
    report_json,
    summary_markdown,
    write_reports,
)
from demo.measuring.evaluation import (
    MAX_ROWS,
    EvalSettings,
    evaluate_task,
    read_eval_file,
)
from demo.models.config import LABELLED_TASKS
from demo.models.registry import PairRegistry
from demo.serving.api import not_a_tool


# ---- handlers ------------------------------------------------------------------------------------
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
    return (gr.update(choices=columns, value=obvious_column(columns, TEXT_COLUMNS)),
            gr.update(choices=columns, value=obvious_column(columns, LABEL_COLUMNS)), note)


def remove_upload(path: str | None) -> None:
    """Uploads are read once, in place, then deleted: nothing of the user's data stays on the server."""
    if path and Path(path).is_file() and Path(path).resolve().is_relative_to(Path(tempfile.gettempdir()).resolve()):
        Path(path).unlink(missing_ok=True)


def evaluate(registry: PairRegistry, path: str | None, task: str, text_column: str | None,
             label_column: str | None, max_rows, progress=gr.Progress(), price_per_hour: float | None = None,
             decision: bool = False):
    """The CLI's settings, reader and evaluation; the report (and with decision, the decision page) written
    where the page can offer it."""
    try:
        if not path:
            raise DataError("upload a labelled file first.")
        if decision and (price_per_hour is None or price_per_hour < 0):
            raise DataError("give the price of an hour of this machine (0 or more) for the decision report.")
        settings = EvalSettings(task=task or "", max_rows=int(max_rows) if max_rows else None)
        data = read_eval_file(path, text_column or None, label_column or None, settings)
        progress((0, len(data)), desc="evaluating", unit="examples")
        report, ctx = evaluate_task(registry, data, settings,
                                    progress=lambda done, total: progress((done, total), unit="examples"))
    except UserError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    finally:
        remove_upload(path)
    ctx.data_name = Path(path).name
    paths = write_reports(report, ctx, scratch_dir("evaluation-"))
    if decision:
        teacher, student = registry.pair(settings.task)
        progress((0, 2), desc="timing batch 1 and 32")
        throughput = measure_throughput(teacher, student, data.texts, settings.max_length)
        paths["decision.html"] = paths["report.md"].with_name("decision.html")
        paths["decision.html"].write_text(decision_html(report, ctx, throughput, float(price_per_hour),
                                                        "the Evaluate tab of the app (python app.py)"),
                                          encoding="utf-8")
    return (report_json(report, ctx), summary_markdown(report, ctx), confusion_figure(report),
            explorer_rows(report), [str(p) for p in paths.values()], None)


# ---- layout and wiring ---------------------------------------------------------------------------
def remember(figures: dict | None, evaluated: dict) -> dict:
    """This session's latest evaluation per task, for the scorecard."""
    if not figures:
        return evaluated
    return {**(evaluated or {}), figures["task"]: {"retention": figures["intervals"]["retention"],
                                                   "data": figures["data"]}}


def file_inputs(tasks: list[str]):
    """The file, which pair, its columns and how many rows: the same for both buttons."""
    with gr.Row():
        upload = gr.File(label="Labelled file", file_types=list(LABELLED_SUFFIXES),
                         type="filepath",
                         elem_id="evaluate-file")
        with gr.Column():
            task = gr.Dropdown(tasks, value=tasks[0] if tasks else None, label="Task (which pair)",
                               elem_id="evaluate-task")
            text_column = gr.Dropdown([], label="Text column", allow_custom_value=True, elem_id="evaluate-text-column")
            label_column = gr.Dropdown([], label="Label column", allow_custom_value=True,
                                       elem_id="evaluate-label-column")
            max_rows = gr.Number(value=0, precision=0, minimum=0, label=f"Max rows (0: all, up to {MAX_ROWS:,})")
    return upload, task, text_column, label_column, max_rows


def build_tab(registry: PairRegistry, evaluated: gr.State | None = None):
    """Adds the Evaluate tab's components and events to the enclosing Blocks; returns the events that end
    an evaluation (the scorecard follows them)."""
    tasks = [t for t in LABELLED_TASKS if t in registry.config.pairs]
    gr.Markdown("Measure both models on **your labelled data**: accuracy, macro-F1, agreement, confusion "
                "matrices, speed, and every example where they disagree, each figure with its 95% interval. CSV, "
                "TSV, JSON, JSON lines or parquet; labels are matched to the models' label names (or class "
                "numbers), case-insensitively. The decision report is one page for those who must decide.")
    upload, task, text_column, label_column, max_rows = file_inputs(tasks)
    file_note = gr.Markdown(elem_id="evaluate-file-note")
    with gr.Row():
        run = gr.Button("Evaluate", variant="primary", elem_id="evaluate-run")
        decide = gr.Button("Evaluate and write the decision report", elem_id="evaluate-decision")
        price = gr.Number(value=None, minimum=0, label="Price of an hour of this machine (for the decision report)",
                          elem_id="evaluate-price")
        stop = gr.Button("Cancel", variant="stop")
    summary = gr.Markdown(elem_id="evaluate-summary")
    confusion = gr.Plot(label="Confusion matrices", elem_id="evaluate-confusion")
    explorer = gr.Dataframe(headers=EXPLORER_COLUMNS, label="Disagreements (click a header to sort)",
                            interactive=False, wrap=True, elem_id="evaluate-explorer")
    downloads = gr.File(label="Report (Markdown, HTML, JSON) and per-example predictions (CSV)", file_count="multiple",
                        interactive=False, elem_id="evaluate-downloads")
    figures = gr.JSON(label="Figures (report.json)", open=False)

    def on_evaluate(path, task_name, text_col, label_col, rows_limit, seen=None, progress=gr.Progress()):
        outputs = evaluate(registry, path, task_name, text_col, label_col, rows_limit, progress)
        return (*outputs, remember(outputs[0], seen or {})) if evaluated is not None else outputs

    def on_decide(path, task_name, text_col, label_col, rows_limit, price_per_hour, seen=None,
                  progress=gr.Progress()):
        outputs = evaluate(registry, path, task_name, text_col, label_col, rows_limit, progress, price_per_hour,
                           decision=True)
        return (*outputs, remember(outputs[0], seen or {})) if evaluated is not None else outputs

    upload.change(columns_of, inputs=upload, outputs=[text_column, label_column, file_note], api_visibility="private")
    state = [evaluated] if evaluated is not None else []  # this session's evaluations, for the scorecard
    event = run.click(not_a_tool(on_evaluate), inputs=[upload, task, text_column, label_column, max_rows, *state],
                      outputs=[figures, summary, confusion, explorer, downloads, upload, *state], api_name="evaluate")
    decided = decide.click(not_a_tool(on_decide), inputs=[upload, task, text_column, label_column, max_rows, price, *state],
                           outputs=[figures, summary, confusion, explorer, downloads, upload, *state],
                           api_name="decision_report")
    stop.click(None, cancels=[event, decided])
    return [event, decided]
