"""The Evaluate tab: upload a labelled file, run both models on it, explore disagreements, download a report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from demo.core import zerogpu
from demo.core.errors import whole_number
from demo.core.formatting import md_escape
from demo.core.scratch import enforce_budget, scratch_dir
from demo.data.files import (
    LABEL_COLUMNS,
    LABELLED_SUFFIXES,
    PAGE_LIMITS,
    TEXT_COLUMNS,
    DataError,
    ReadLimits,
    listed,
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
from demo.measuring.frontier import (
    DEFAULT_MARGIN,
    FrontierRequest,
    check_margin,
    frontier_figure,
    frontier_of,
    write_frontier,
)
from demo.models.config import LABELLED_TASKS
from demo.models.registry import PairRegistry
from demo.models.session_students import PairView, SessionStudents
from demo.serving.edge import handlers, keep_upload, pair_view, remove_upload, session_of


# ---- handlers ------------------------------------------------------------------------------------
def columns_of(path: str | None, limits: ReadLimits = PAGE_LIMITS):
    """After an upload: fill both column pickers, pre-selecting the obvious columns."""
    if not path:
        return gr.update(choices=[], value=None), gr.update(choices=[], value=None), ""
    try:
        columns, rows = read_rows(path, limits=limits)
    except DataError as exc:
        return gr.update(choices=[], value=None), gr.update(choices=[], value=None), f"⚠️ {md_escape(str(exc))}"
    note = f"{len(rows):,} rows, columns: {md_escape(listed(columns))}"
    if len(rows) > MAX_ROWS:
        note += f". Over the {MAX_ROWS:,}-row limit: set *max rows* to evaluate a sample."
    return (gr.update(choices=columns, value=obvious_column(columns, TEXT_COLUMNS)),
            gr.update(choices=columns, value=obvious_column(columns, LABEL_COLUMNS)), note)


def decision_markdown(frontier) -> str:
    """The recommendation, then one line per variant not picked saying why (the page's copy of frontier.html)."""
    why = "\n".join(f"- **{md_escape(name)}**: {md_escape(reason)}" for name, reason in frontier.reasons().items())
    cost = "" if frontier.price_per_hour else "\n\nNo price per hour given: no cost shown, ranked by speed alone."
    return f"### {md_escape(frontier.recommendation())}\n\n**Why not the others**\n\n{why}{cost}"


def remember(figures: dict | None, evaluated: dict, models: dict[str, str]) -> dict:
    """This session's latest evaluation per task, with the models it was measured on, for the scorecard."""
    if not figures:
        return evaluated
    return {**(evaluated or {}), figures["task"]: {"retention": figures["intervals"]["retention"],
                                                   "data": figures["data"],
                                                   "models": models}}


@dataclass(frozen=True)
class Upload:
    """The tab's file and how to read it: the same five fields before every question asked of it."""

    path: str | None
    task: str
    text_column: str | None
    label_column: str | None
    max_rows: int | float | None


def _read(upload: Upload, limits: ReadLimits = PAGE_LIMITS):
    """The form's file and settings, checked as the CLI checks them (the page's row cap and read limits)."""
    path, task, max_rows = upload.path, upload.task, upload.max_rows
    text_column, label_column = upload.text_column, upload.label_column
    if not path:
        raise DataError("upload a labelled file first.")
    if not Path(path).is_file():
        raise DataError("your file is no longer on the server (an upload is kept 10 minutes after its last use); "
                        "upload it again.")
    limit = whole_number(max_rows or 0, f"max rows (0: all, up to {MAX_ROWS:,})", 0, MAX_ROWS)
    settings = EvalSettings(task=task or "", max_rows=limit or None, read_limits=limits)
    return settings, read_eval_file(path, text_column or None, label_column or None, settings)


@handlers
class EvaluateHandlers:
    """The CLI's settings, reader and evaluation, on the pair this visitor sees (their own student too)."""

    def __init__(self, registry: PairRegistry, students: SessionStudents | None, limits: ReadLimits = PAGE_LIMITS):
        self.registry, self.students, self.limits = registry, students, limits
        # on ZeroGPU each runs inside a lent GPU call, its time asked by the rows (elsewhere: plain calls)
        self._evaluate = zerogpu.gpu(lambda session, data, *_: 20 + 0.02 * len(data))(self._evaluate_in_session)
        self._frontier = zerogpu.gpu(lambda session, data, *_: 60 + 0.1 * len(data))(self._frontier_in_session)
        self._throughput = zerogpu.gpu(60)(self._throughput_in_session)

    def _evaluate_in_session(self, session: str, data, settings, progress):
        view = PairView(self.registry, self.students, session)
        return evaluate_task(view, data, settings,
                             progress=lambda done, total: progress((done, total), unit="examples"))

    def columns(self, path: str | None):
        return columns_of(path, self.limits)

    def _throughput_in_session(self, session: str, task: str, texts: list[str], max_length: int):
        teacher, student = PairView(self.registry, self.students, session).pair(task)
        return measure_throughput(teacher, student, texts, max_length)

    def _frontier_in_session(self, session: str, data, asked: FrontierRequest, progress=None):
        """Every variant of the pair this visitor sees; the int8 ones are built and run on CPU in any case."""
        view = PairView(self.registry, self.students, session)
        stage = (lambda words, done, total: progress((done, total), desc=words)) if progress is not None else None
        return frontier_of(*view.pair(asked.task), data, asked, stage=stage)

    def evaluate(self, path: str | None, task: str, text_column: str | None, label_column: str | None, max_rows,
                 evaluated: dict, request: gr.Request, progress=gr.Progress()):
        return self._run(Upload(path, task, text_column, label_column, max_rows), evaluated, request, progress)

    def decide(self, path: str | None, task: str, text_column: str | None, label_column: str | None, max_rows,
               price_per_hour: float | None, evaluated: dict, request: gr.Request, progress=gr.Progress()):
        if price_per_hour is None or price_per_hour < 0:
            remove_upload(path)
            raise DataError("give the price of an hour of this machine (0 or more) for the decision report.")
        return self._run(Upload(path, task, text_column, label_column, max_rows), evaluated, request, progress,
                         float(price_per_hour))

    def frontier(self, path: str | None, task: str, text_column: str | None, label_column: str | None, max_rows,
                 margin, price_per_hour: float | None, request: gr.Request, progress=gr.Progress()):
        """Which variant to ship: every variant of the pair this visitor sees, fp32 and int8, on the file."""
        try:
            margin = check_margin(float(margin if margin not in (None, "") else DEFAULT_MARGIN))
            if price_per_hour is not None and price_per_hour < 0:
                raise DataError("the price of an hour must be 0 or more (or empty: ranked by throughput).")
            settings, data = _read(Upload(path, task, text_column, label_column, max_rows), self.limits)
            progress((0, 1), desc="building every variant, fp32 and int8")
            asked = FrontierRequest(settings.task, Path(path).name, margin, price_per_hour, settings.max_length)
            frontier = self._frontier(session_of(request), data, asked, progress)
        except BaseException:
            remove_upload(path)  # a file refused is not kept
            raise
        keep_upload(path)
        out = scratch_dir("evaluation-")
        paths = write_frontier(frontier, out)
        enforce_budget(keep=out)
        # the file stays in the page for the next question (gradio's cache keeps it 10 minutes, then it goes)
        return (decision_markdown(frontier), frontier_figure(frontier), [str(p) for p in paths.values()], gr.skip())

    def _run(self, upload: Upload, evaluated: dict, request: gr.Request, progress,
             price_per_hour: float | None = None):
        view, path = pair_view(self.registry, self.students, request), upload.path
        try:
            settings, data = _read(upload, self.limits)
            progress((0, len(data)), desc="evaluating", unit="examples")
            report, ctx = self._evaluate(session_of(request), data, settings, progress)
        except BaseException:
            remove_upload(path)  # a file refused is not kept
            raise
        keep_upload(path)
        ctx.data_name = Path(path).name
        out = scratch_dir("evaluation-")
        paths = write_reports(report, ctx, out)
        if price_per_hour is not None:
            progress((0, 2), desc="timing batch 1 and 32")
            throughput = self._throughput(session_of(request), settings.task, data.texts, settings.max_length)
            paths["decision.html"] = paths["report.md"].with_name("decision.html")
            paths["decision.html"].write_text(decision_html(report, ctx, throughput, price_per_hour,
                                                            "the Evaluate tab of the app (python app.py)"),
                                              encoding="utf-8")
        enforce_budget(keep=out)  # older reports go once the download folders pass the budget
        figures = report_json(report, ctx)
        return (figures, summary_markdown(report, ctx), confusion_figure(report), explorer_rows(report),
                [str(p) for p in paths.values()], gr.skip(), remember(figures, evaluated, view.models(settings.task)))


# ---- layout and wiring ---------------------------------------------------------------------------
@dataclass
class EvaluatePanel:
    upload: gr.File
    task: gr.Dropdown
    text_column: gr.Dropdown
    label_column: gr.Dropdown
    max_rows: gr.Number
    file_note: gr.Markdown
    run: gr.Button
    decide: gr.Button
    price: gr.Number
    stop: gr.Button
    ship: gr.Button
    margin: gr.Number
    recommendation: gr.Markdown
    frontier_chart: gr.Plot
    summary: gr.Markdown
    confusion: gr.Plot
    explorer: gr.Dataframe
    downloads: gr.File
    figures: gr.JSON


def layout(tasks: list[str]) -> EvaluatePanel:
    gr.Markdown("Measure both models on **your labelled data**: accuracy, macro-F1, agreement, confusion "
                "matrices, speed, and every example where they disagree, each figure with its 95% interval. CSV, "
                "TSV, JSON, JSON lines or parquet; labels are matched to the models' label names (or class "
                "numbers), case-insensitively. The decision report is one page for those who must decide. "
                "Where you adopted your own student, it is the one measured.")
    with gr.Row():
        upload = gr.File(label="Labelled file", file_types=list(LABELLED_SUFFIXES), type="filepath",
                         elem_id="evaluate-file")
        with gr.Column():
            task = gr.Dropdown(tasks, value=tasks[0] if tasks else None, label="Task (which pair)",
                               elem_id="evaluate-task")
            text_column = gr.Dropdown([], label="Text column", allow_custom_value=True, elem_id="evaluate-text-column")
            label_column = gr.Dropdown([], label="Label column", allow_custom_value=True,
                                       elem_id="evaluate-label-column")
            max_rows = gr.Number(value=0, label=f"Max rows (0: all, up to {MAX_ROWS:,})")  # bounds: checked by _run
    file_note = gr.Markdown(elem_id="evaluate-file-note")
    with gr.Row():
        run = gr.Button("Evaluate", variant="primary", elem_id="evaluate-run")
        decide = gr.Button("Evaluate and write the decision report", elem_id="evaluate-decision")
        price = gr.Number(value=None, label="Price of an hour of this machine (for the decision report)",
                          elem_id="evaluate-price")
        stop = gr.Button("Cancel", variant="stop")
    with gr.Row():
        ship = gr.Button("Which variant to ship? (teacher and student, fp32 and int8)", elem_id="evaluate-frontier")
        margin = gr.Number(value=DEFAULT_MARGIN, label="Accuracy points you accept to lose against the teacher",
                           elem_id="evaluate-margin")
    recommendation = gr.Markdown(elem_id="evaluate-recommendation")
    frontier_chart = gr.Plot(label="Accuracy against speed (predictions/s at batch 32): every variant",
                             elem_id="evaluate-frontier-chart")
    summary = gr.Markdown(elem_id="evaluate-summary")
    confusion = gr.Plot(label="Confusion matrices", elem_id="evaluate-confusion")
    explorer = gr.Dataframe(headers=EXPLORER_COLUMNS, label="Disagreements (click a header to sort)",
                            interactive=False, wrap=True, elem_id="evaluate-explorer")
    downloads = gr.File(label="Report (Markdown, HTML, JSON) and per-example predictions (CSV)", file_count="multiple",
                        interactive=False, elem_id="evaluate-downloads")
    figures = gr.JSON(label="Figures (report.json)", open=False)
    return EvaluatePanel(upload, task, text_column, label_column, max_rows, file_note, run, decide, price, stop,
                         ship, margin, recommendation, frontier_chart, summary, confusion, explorer, downloads, figures)


def wire(p: EvaluatePanel, h: EvaluateHandlers, evaluated: gr.State) -> list:
    """Returns the events that end an evaluation (the scorecard follows them)."""
    p.upload.change(h.columns, inputs=p.upload, outputs=[p.text_column, p.label_column, p.file_note],
                    api_visibility="private")
    outputs = [p.figures, p.summary, p.confusion, p.explorer, p.downloads, p.upload, evaluated]
    fields = [p.upload, p.task, p.text_column, p.label_column, p.max_rows]
    event = p.run.click(h.evaluate, inputs=[*fields, evaluated], outputs=outputs, api_name="evaluate",
                        api_visibility="undocumented")
    decided = p.decide.click(h.decide, inputs=[*fields, p.price, evaluated], outputs=outputs,
                             api_name="decision_report", api_visibility="undocumented")
    shipped = p.ship.click(h.frontier, inputs=[*fields, p.margin, p.price],
                           outputs=[p.recommendation, p.frontier_chart, p.downloads, p.upload], api_name="frontier",
                           api_visibility="undocumented")
    p.stop.click(None, cancels=[event, decided, shipped])
    return [event, decided]


def build_tab(registry: PairRegistry, students: SessionStudents | None, evaluated: gr.State,
              limits: ReadLimits = PAGE_LIMITS) -> list:
    """Adds the Evaluate tab to the enclosing Blocks; returns the events that end an evaluation."""
    panel = layout([t for t in LABELLED_TASKS if t in registry.config.pairs])
    return wire(panel, EvaluateHandlers(registry, students, limits), evaluated)
