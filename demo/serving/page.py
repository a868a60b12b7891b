"""The Gradio page: the header, the scorecard, one tab per task, then Evaluate, Benchmark, Distillation
and Distil a student. Each tab is its own module of one shape (handlers, layout, wiring); this module
lays them out and wires what spans them: the scorecard and the status poll, both per visitor.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr
import torch

from demo.core import zerogpu
from demo.core.formatting import md_escape
from demo.data.files import PAGE_LIMITS, ReadLimits
from demo.measuring.charts import size_chart
from demo.measuring.scorecard import scorecard
from demo.models.config import LABELLED_TASKS, TASKS
from demo.models.registry import PairRegistry
from demo.models.session_students import PairView, SessionStudents
from demo.serving import api, bench_tab, distill_tab, evaluate_tab, task_tab, train_tab
from demo.serving.edge import handlers, pair_view
from demo.serving.training.service import TrainingService
from demo.serving.views import evaluated_for, series_rows, status_markdown

STATUS_POLL_SECONDS = 1.0  # how often the page refreshes loading progress until every model settles
CACHE_SWEEP = (600, 3600)  # gradio's copies of files sent to visitors: checked every 10 min, deleted after 1 h


def session_scorecard(view: PairView, histories: dict, evaluated: dict) -> tuple[str, dict]:
    """The scorecard of one visitor: the requests and evaluations measured on the models they see now
    (a student they adopted starts from nothing: the previous one's evidence is not its own)."""
    tasks = view.config.tasks
    models = {t: view.models(t) for t in tasks}
    card = scorecard({t: {s.variant: s.size for s in view.status(t)} for t in tasks},
                     {t: series_rows(histories.get(t), models[t]) for t in tasks},
                     evaluated_for(evaluated, models))
    card.device = device_name(view.registry)
    return card.markdown(), card.to_dict()


def device_name(registry: PairRegistry) -> str:
    """The device the page's timings run on, a GPU by its name; on ZeroGPU the one lent per call."""
    device = str(registry.device)
    if zerogpu.state().active:
        return f"{device} (ZeroGPU, lent per call)"
    if torch.device(registry.device).type == "cuda":
        device += f" ({torch.cuda.get_device_name(registry.device)})"
    return device


@handlers
class PageHandlers:
    """What spans the tabs: the status poll and the scorecard, each through the visitor's PairView."""

    def __init__(self, registry: PairRegistry, students: SessionStudents | None):
        self.registry, self.students = registry, students

    def refresh(self, request: gr.Request) -> list:
        """Every task's status and size chart as this visitor sees them, and whether to keep polling."""
        view, tasks = pair_view(self.registry, self.students, request), self.registry.config.tasks
        return [*(status_markdown(view.status(t)) for t in tasks),
                *(size_chart({s.variant: s.size for s in view.status(t)}) for t in tasks),
                gr.Timer(active=not self.registry.all_settled())]

    def scorecard(self, sentiment: dict, fill_mask: dict, classify: dict, evaluated: dict, request: gr.Request):
        histories = {"sentiment": sentiment, "fill_mask": fill_mask, "classify": classify}
        return session_scorecard(pair_view(self.registry, self.students, request), histories, evaluated)


def wire_scorecard(h: PageHandlers, histories: dict[str, gr.State], events: list, evaluated: gr.State,
                   outputs: list) -> None:
    """The scorecard follows every answer and every evaluation of this session."""
    inputs = [*(histories[t] for t in TASKS), evaluated]
    # first, so that it keeps the name /scorecard (gradio names the private events after the function too)
    gr.Button(visible=False).click(h.scorecard, inputs=inputs, outputs=outputs, api_name="scorecard",
                                   api_visibility="undocumented")
    for event in events:
        event.then(h.scorecard, inputs=inputs, outputs=outputs, api_visibility="private", queue=False)


def header_markdown(registry: PairRegistry) -> str:
    device = md_escape(device_name(registry))
    note = zerogpu.state().device_note()
    return ("# Teacher vs student: what distillation buys\n"
            "A BERT **teacher** and its distilled **student** answer the same text. Compare their answers, "
            "their latency on this machine and their size. Latency = tokenisation + forward pass + "
            f"post-processing, one model at a time. Device: **{device}**, dtype "
            f"**{str(registry.dtype).replace('torch.', '')}**. Config: `{html.escape(registry.config.source)}`."
            + (f"\n\n{note}" if note else ""))


def task_tabs(registry: PairRegistry, students, options: PageOptions, timer, training) -> dict:
    """One tab per task: task -> its panel (tasks whose config entry was refused get a tab saying why)."""
    config, panels = registry.config, {}
    busy = training.runner.training if training is not None else (lambda: False)
    for task in TASKS:
        if task in config.task_errors:
            with gr.Tab(TASKS[task], id=task):
                gr.Markdown(f"❌ **This task's entry in the config was refused**: "
                            f"{md_escape(config.task_errors[task])} Fix the file and restart the app.")
        elif task in config.pairs:
            with gr.Tab(TASKS[task], id=task):
                panels[task] = task_tab.layout(registry, task, options.allow_custom_models, options.allow_admin)
            task_tab.wire(panels[task], task_tab.TaskHandlers(registry, students, task, busy), timer)
    return panels


@dataclass(frozen=True)
class PageOptions:
    """What the operator allows and bounds on the page (app.py's flags), as one value."""

    allow_custom_models: bool = False  # visitors may load any Hub id or directory as teacher/student
    allow_admin: bool = True  # the reload, move-to-CPU and random-weights buttons (app.py: loopback only by default)
    space_id: str | None = None  # the Hugging Face Space this page runs as ($SPACE_ID), for links to its files
    read_limits: ReadLimits = PAGE_LIMITS  # what a visitor's file may cost to read
    bench_max_tokens: int = bench_tab.MAX_SWEEP_TOKENS  # tokens one Benchmark-tab sweep may run


def build(registry: PairRegistry, options: PageOptions = PageOptions(), training: TrainingService | None = None,
          students: SessionStudents | None = None) -> gr.Blocks:
    """The whole page. training: distillation jobs from the page (None: no such tab); students: each
    visitor's own students (the training service's, when it has one)."""
    config = registry.config
    students = training.students if training is not None else students
    h = PageHandlers(registry, students)
    with gr.Blocks(title="Teacher vs student: what distillation buys", delete_cache=CACHE_SWEEP) as page:
        gr.Markdown(header_markdown(registry))
        scorecard_box = gr.Markdown(session_scorecard(PairView(registry, None, ""), {}, {})[0], elem_id="scorecard")
        scorecard_json = gr.JSON(visible=False)
        evaluated = gr.State({})  # task -> the last labelled file evaluated in this session, and on which models
        timer = gr.Timer(STATUS_POLL_SECONDS)
        # outside the tabs: gradio mounts a tab's components when it is first shown, and a BrowserState
        # reads the browser's storage only once mounted (inside the tab, the page's load would see None)
        job_key = train_tab.job_key_state() if training is not None else None
        with gr.Tabs():
            panels = task_tabs(registry, students, options, timer, training)
            evaluations = []
            if any(t in config.pairs for t in LABELLED_TASKS):
                with gr.Tab("Evaluate", id="evaluate"):
                    evaluations = evaluate_tab.build_tab(registry, students, evaluated, options.read_limits)
            with gr.Tab("Benchmark", id="benchmark"):
                bench_tab.build_tab(registry, options.bench_max_tokens)
            with gr.Tab("Distillation", id="distillation"):
                distill_tab.build_tab(config.distillation, options.space_id)
            find_job_again = None
            if training is not None:
                with gr.Tab("Distil a student", id="train"):
                    find_job_again = train_tab.build_tab(training, timer, job_key)
        histories = {t: panels[t].history if t in panels else gr.State({}) for t in TASKS}
        wire_scorecard(h, histories, [*(e for p in panels.values() for e in p.events), *evaluations], evaluated,
                       [scorecard_box, scorecard_json])
        api.register(registry, students)
        targets = [*(p.status for p in panels.values()), *(p.size for p in panels.values()), timer]
        timer.tick(h.refresh, outputs=targets, api_visibility="private", queue=False, show_progress="hidden")
        page.load(h.refresh, outputs=targets, api_visibility="private", queue=False)
        if find_job_again is not None:  # a reload finds this browser's distillation job again
            find_job_again(page)
    return page
