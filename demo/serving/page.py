"""The Gradio page: handlers, layout and event wiring only (as gradio's own demos are laid out).

Handlers call the registry and the pure functions of views and charts; nothing here loads or
runs a model itself.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr

from demo.core.errors import UserError
from demo.core.formatting import md_escape
from demo.measuring.charts import latency_chart, size_chart
from demo.measuring.scorecard import scorecard
from demo.models.config import LABELLED_TASKS, PAIR, TASKS, ConfigError, model_spec
from demo.models.registry import PairRegistry
from demo.models.tasks import EXAMPLE_TEXT
from demo.serving import api, bench_tab, distill_tab, evaluate_tab, train_tab
from demo.serving.training.service import TrainingService
from demo.serving.views import label_value, status_markdown, verdict_markdown

HISTORY_LIMIT = 500  # requests kept per session and task for the latency chart; bounds memory
STATUS_POLL_SECONDS = 1.0  # how often the page refreshes loading progress until every model settles
EXAMPLES = {
    "sentiment": [EXAMPLE_TEXT["sentiment"], "The plot was dull and the acting even worse.",
                  "Not bad at all, though the ending dragged."],
    "fill_mask": [EXAMPLE_TEXT["fill_mask"], "The doctor asked the nurse to bring her [MASK].",
                  "I drink a cup of <mask> every morning."],
    "classify": [EXAMPLE_TEXT["classify"], "I feel so alone since she left.",
                 "Why does nobody ever listen to me? This is infuriating."],
}
PLACEHOLDERS = {
    "sentiment": "Type a sentence, e.g. a film review…",
    "fill_mask": "Type a sentence with one [MASK] (or <mask>) where a word is missing…",
    "classify": "Type a sentence that expresses a feeling…",
}


# ---- handlers ------------------------------------------------------------------------------------
def compare_text(registry: PairRegistry, task: str, text: str, rows: list, training: bool = False) -> list:
    """One request: both answers, the verdict, this session's latency chart and the size chart.

    training: a distillation job shared the CPU while this was measured (marked on the chart, and left
    out of the scorecard's live speedup)."""
    try:
        result = registry.run(task, text)
    except UserError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    row = {"request": (rows[-1]["request"] + 1) if rows else 1, "agree": result.agree,
           **{f"{variant}_ms": r.latency_ms for variant, r in result.results().items()},
           **({"training": True} if training else {})}
    rows = [*rows, row][-HISTORY_LIMIT:]
    variants = registry.config.pairs[task].variants
    # Each answer titled with the model that gave it: a job's student may have replaced the configured one.
    outputs = [result.summary(), *[gr.Label(label_value(result, variant), label=answer_title(variant, result))
                                   for variant in variants]]
    if task == "fill_mask":
        hide = result.random_weights
        outputs += [None if hide else result.teacher.prediction.completed,
                    None if hide else result.student.prediction.completed]
    # The size chart changes when models load, not per request: the status refresh redraws it.
    return [*outputs, verdict_markdown(result), latency_chart(rows, variants), gr.skip(), rows]


def answer_title(variant: str, result) -> str:
    answered = result.results().get(variant)
    if variant not in PAIR:
        return "Student · ONNX Runtime, dynamic int8 (CPU)"
    return f"{variant.capitalize()} · {answered.model if answered is not None else ''}"


def reload_task(registry: PairRegistry, task: str, device: str | None = None):
    registry.reload(task, device=device)
    return status_markdown(registry.status(task)), gr.Timer(active=True)


def use_random_weights(registry: PairRegistry, task: str):
    if not any(st.state == "failed" for st in registry.status(task) if st.variant in PAIR):
        raise gr.Error("Both models loaded: random weights are only a fallback for models that cannot be "
                       "loaded.", print_exception=False)
    registry.load_random(task)
    return status_markdown(registry.status(task)), gr.Timer(active=True)


def load_custom(registry: PairRegistry, task: str, teacher_id: str, student_id: str):
    try:
        specs = [model_spec({"model": m}, variant) for m, variant in ((teacher_id, "teacher"), (student_id, "student"))]
    except ConfigError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    registry.set_pair(task, *specs)
    return (status_markdown(registry.status(task)), gr.Timer(active=True),
            gr.update(label=f"Teacher · {specs[0].model}"), gr.update(label=f"Student · {specs[1].model}"))


def session_scorecard(registry: PairRegistry, histories: list[list], evaluated: dict) -> tuple[str, dict]:
    """The scorecard of this visitor's session: its requests per task and the files it evaluated."""
    tasks = registry.config.tasks
    card = scorecard({t: {s.variant: s.size for s in registry.status(t)} for t in tasks},
                     dict(zip(tasks, histories)), evaluated or {})
    return card.markdown(), card.to_dict()


def refresh_statuses(registry: PairRegistry) -> list:
    """The page's poll while models load: every task's status and size chart, and whether to keep polling."""
    tasks = registry.config.tasks
    return [*(status_markdown(registry.status(t)) for t in tasks),
            *(size_chart({s.variant: s.size for s in registry.status(t)}) for t in tasks),
            gr.Timer(active=not registry.all_settled())]


# ---- layout --------------------------------------------------------------------------------------
@dataclass
class TaskPanel:
    """The components of one task's tab, for wiring."""

    status: gr.Markdown
    reload: gr.Button
    cpu: gr.Button
    random: gr.Button
    text: gr.Textbox
    compare: gr.Button
    answers: dict
    completions: dict
    verdict: gr.Markdown
    latency: gr.Plot
    size: gr.Plot
    summary: gr.JSON
    history: gr.State
    custom: dict | None = None
    swap: gr.Button | None = None
    events: list | None = None  # Compare and Enter: the scorecard follows them

    def outputs(self, task: str) -> list:
        outputs = [self.summary, *self.answers.values()]
        if task == "fill_mask":
            outputs += [self.completions["teacher"], self.completions["student"]]
        return [*outputs, self.verdict, self.latency, self.size, self.history]


def task_panel(registry: PairRegistry, task: str, allow_custom_models: bool) -> TaskPanel:
    pair = registry.config.pairs[task]
    status = gr.Markdown(status_markdown(registry.status(task)), elem_id=f"{task}-status")
    with gr.Row():
        reload = gr.Button("Reload models", size="sm", elem_id=f"{task}-reload")
        cpu = gr.Button("Run this task on CPU", size="sm", visible=registry.device.type != "cpu", elem_id=f"{task}-cpu")
        random = gr.Button("Weights unavailable? Measure the architectures with random weights", size="sm",
                           elem_id=f"{task}-random")
    text = gr.Textbox(label="Text", lines=2, placeholder=PLACEHOLDERS[task], elem_id=f"{task}-text")
    compare = gr.Button("Compare", variant="primary", elem_id=f"{task}-run")
    gr.Examples(EXAMPLES[task], inputs=text)
    answers, completions = {}, {}
    with gr.Row():
        for variant in pair.variants:
            with gr.Column():
                title = (f"{variant.capitalize()} · {pair.spec(variant).model}" if variant in PAIR else
                    "Student · ONNX Runtime, dynamic int8 (CPU)")
                answers[variant] = gr.Label(num_top_classes=5, label=title, elem_id=f"{task}-{variant}-answer")
                if task == "fill_mask" and variant in PAIR:
                    completions[variant] = gr.Textbox(label=f"{variant.capitalize()}'s completed sentence",
                                                      interactive=False, elem_id=f"{task}-{variant}-completed")
    verdict = gr.Markdown(elem_id=f"{task}-verdict")
    with gr.Row():
        latency = gr.Plot(latency_chart([]), label="Latency, this session", elem_id=f"{task}-latency")
        size = gr.Plot(size_chart({}), label="Size", elem_id=f"{task}-size")
    panel = TaskPanel(status, reload, cpu, random, text, compare, answers, completions, verdict, latency, size,
                      summary=gr.JSON(label="Summary (the API's answer)", open=False), history=gr.State([]))
    if allow_custom_models:
        with gr.Accordion("Use other models (allowed by --allow-custom-models)", open=False):
            panel.custom = {variant: gr.Textbox(pair.spec(variant).model,
                                                label=f"{variant.capitalize()}: Hub id or directory")
                            for variant in PAIR}
            panel.swap = gr.Button("Load these models", size="sm")
    return panel


# ---- wiring --------------------------------------------------------------------------------------
def wire_task_panel(panel: TaskPanel, registry: PairRegistry, task: str, timer: gr.Timer,
                    training: TrainingService | None = None) -> None:
    outputs = panel.outputs(task)
    busy = training.runner.training if training is not None else (lambda: False)
    run = lambda text, rows: compare_text(registry, task, text, rows, training=busy())  # noqa: E731
    # The page's own event (answers, charts, this session's history) is undocumented: callable, e.g. by the
    # tests, but neither in the API page nor an MCP tool; the API's /{task} (serving/api.py) returns the summary.
    panel.events = [panel.compare.click(run, inputs=[panel.text, panel.history], outputs=outputs,
                                        api_name=f"page_{task}", api_visibility="undocumented"),
                    panel.text.submit(run, inputs=[panel.text, panel.history], outputs=outputs,
                                      api_visibility="private")]
    status_outputs = [panel.status, timer]
    # Administrative: a visitor's click, never an API call or an agent's tool.
    panel.reload.click(lambda: reload_task(registry, task), outputs=status_outputs, api_visibility="private")
    panel.random.click(lambda: use_random_weights(registry, task), outputs=status_outputs, api_visibility="private")
    panel.cpu.click(lambda: reload_task(registry, task, "cpu"), outputs=status_outputs, api_visibility="private")
    if panel.swap is not None:
        panel.swap.click(lambda teacher, student: load_custom(registry, task, teacher, student),
                         inputs=[panel.custom["teacher"], panel.custom["student"]],
                         outputs=[*status_outputs, panel.answers["teacher"], panel.answers["student"]],
                         api_visibility="private")


def wire_scorecard(registry: PairRegistry, panels: list[TaskPanel], evaluations: list, evaluated: gr.State,
                   outputs: list) -> None:
    """The scorecard follows every answer and every evaluation of this session."""
    inputs = [*(p.history for p in panels), evaluated]
    card = lambda *states: session_scorecard(registry, list(states[:-1]), states[-1])  # noqa: E731
    for event in [*(e for p in panels for e in p.events), *evaluations]:
        event.then(card, inputs=inputs, outputs=outputs, api_visibility="private", queue=False)
    gr.Button(visible=False).click(api.not_a_tool(card), inputs=inputs, outputs=outputs, api_name="scorecard")


def header_markdown(registry: PairRegistry) -> str:
    return ("# Teacher vs student: what distillation buys\n"
            "A BERT **teacher** and its distilled **student** answer the same text. Compare their answers, "
            "their latency on this machine and their size. Latency = tokenisation + forward pass + "
            f"post-processing, one model at a time. Device: **{registry.device}**, dtype "
            f"**{str(registry.dtype).replace('torch.', '')}**. Config: `{html.escape(registry.config.source)}`.")


def build(registry: PairRegistry, allow_custom_models: bool = False, space_id: str | None = None,
          training: TrainingService | None = None) -> gr.Blocks:
    """The whole page: one tab per configured task, then Evaluate, Benchmark, Distillation and Distil a student.

    space_id: the Hugging Face Space this page runs as ($SPACE_ID), for links to its own files.
    training: distillation jobs from the page (None: no such tab)."""
    config = registry.config
    with gr.Blocks(title="Teacher vs student: what distillation buys") as page:
        gr.Markdown(header_markdown(registry))
        scorecard_box = gr.Markdown(session_scorecard(registry, [[] for _ in config.tasks], {})[0],
                                    elem_id="scorecard")
        scorecard_json = gr.JSON(visible=False)
        evaluated = gr.State({})  # task -> the last labelled file evaluated in this session
        panels = []
        timer = gr.Timer(STATUS_POLL_SECONDS)
        with gr.Tabs():
            for task in TASKS:
                if task in config.task_errors:
                    with gr.Tab(TASKS[task], id=task):
                        gr.Markdown(f"❌ **This task's entry in the config was refused**: "
                                    f"{md_escape(config.task_errors[task])} Fix the file and restart the app.")
                elif task in config.pairs:
                    with gr.Tab(TASKS[task], id=task):
                        panel = task_panel(registry, task, allow_custom_models)
                    wire_task_panel(panel, registry, task, timer, training)
                    panels.append(panel)
            evaluation = None
            if any(t in config.pairs for t in LABELLED_TASKS):
                with gr.Tab("Evaluate", id="evaluate"):
                    evaluation = evaluate_tab.build_tab(registry, evaluated)
            with gr.Tab("Benchmark", id="benchmark"):
                bench_tab.build_tab(registry)
            with gr.Tab("Distillation", id="distillation"):
                distill_tab.build_tab(config.distillation, space_id)
            if training is not None:
                with gr.Tab("Distil a student", id="train"):
                    train_tab.build_tab(training, timer)

        wire_scorecard(registry, panels, evaluation or [], evaluated, [scorecard_box, scorecard_json])
        api.register(registry)
        targets = [*(p.status for p in panels), *(p.size for p in panels), timer]
        refresh = lambda: refresh_statuses(registry)  # noqa: E731
        timer.tick(refresh, outputs=targets, api_visibility="private", queue=False, show_progress="hidden")
        page.load(refresh, outputs=targets, api_visibility="private", queue=False)
    return page
