"""A task's tab (sentiment, fill-mask, classification): both answers, this session's latency series and
the size chart. Each visitor sees the configured pair, or their own student where they adopted one
(a PairView); administrative buttons are app-wide, so they are bounded (see Guard).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import gradio as gr

from demo.core.errors import UserError
from demo.measuring.charts import latency_chart, size_chart
from demo.models.config import PAIR, ConfigError, model_spec
from demo.models.registry import PairRegistry, TaskUnavailable
from demo.models.session_students import SessionStudents
from demo.models.tasks import EXAMPLE_TEXT
from demo.models.variants import title as variant_title
from demo.serving.edge import Answers, handlers, pair_view, session_of
from demo.serving.views import add_request, label_value, status_markdown, verdict_markdown

HISTORY_LIMIT = 500  # requests kept per session and task for the latency chart; bounds memory
RELOAD_COOLDOWN_S = 30.0  # a task's models are read again at most this often, whoever asks
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


class Guard:
    """App-wide actions a visitor's button triggers (reload, move to CPU, random weights): refused while
    the task's models load and at most once per RELOAD_COOLDOWN_S, so that nobody, a script posting to
    the queue included, can keep a task loading for everyone."""

    def __init__(self, cooldown_s: float = RELOAD_COOLDOWN_S):
        self.cooldown_s, self._last, self._lock = cooldown_s, {}, threading.Lock()

    def admit(self, registry: PairRegistry, task: str) -> None:
        busy = [s for s in registry.status(task) if s.state not in ("ready", "failed")]
        with self._lock:
            if busy:
                raise TaskUnavailable(f"the {task} models are loading now ({busy[0].variant} {busy[0].state}); "
                                      "wait until they are ready.")
            waited = time.monotonic() - self._last.get(task, -self.cooldown_s)
            if waited < self.cooldown_s:
                raise TaskUnavailable(f"the {task} models were reloaded {waited:.0f} s ago; this app reloads a task "
                                      f"at most every {self.cooldown_s:.0f} s.")
            self._last[task] = time.monotonic()


@handlers
class TaskHandlers:
    """One task's handlers; each visitor's request goes through that visitor's PairView."""

    def __init__(self, registry: PairRegistry, students: SessionStudents | None, task: str, busy=lambda: False,
                 guard: Guard | None = None):
        self.registry, self.students, self.task, self.busy = registry, students, task, busy
        self.guard = guard or Guard()
        self.answers = Answers(registry, students)

    def compare(self, text: str, history: dict, request: gr.Request) -> list:
        """One request: both answers, the verdict, this session's latency series (a new one when its student
        changed) and the size chart. A request measured while a job trains is marked on the chart."""
        view, task = pair_view(self.registry, self.students, request), self.task
        result = self.answers.run(task, text, session_of(request))
        models = view.models(task)
        history = add_request(history, models, result, self.busy(), HISTORY_LIMIT)
        outputs = [result.summary()]
        for variant in self.registry.config.pairs[task].variants:
            answered = result.results().get(variant)
            if variant in PAIR:
                title = f"{variant.capitalize()} · {answered.model if answered else models.get(variant, '')}"
            else:
                title = variant_title(variant) + ("" if answered else " · not run for your own student")
            outputs.append(gr.Label(label_value(result, variant), label=title))
        if task == "fill_mask":
            hide = result.random_weights
            outputs += [None if hide else result.teacher.prediction.completed,
                        None if hide else result.student.prediction.completed]
        verdict = verdict_markdown(result)
        if (notice := view.notice()) is not None:
            verdict += f"  \nℹ️ {notice}"
        # The size chart changes when models load, not per request: the status refresh redraws it.
        return [*outputs, verdict, latency_chart(history["rows"], view.variants(task)), gr.skip(), history]

    def reload(self, device: str | None = None):
        self.guard.admit(self.registry, self.task)
        self.registry.reload(self.task, device=device)
        return status_markdown(self.registry.status(self.task)), gr.Timer(active=True)

    def to_cpu(self):
        if self.registry.device_of(self.task).type == "cpu":
            raise UserError(f"the {self.task} models already run on the CPU.")
        return self.reload("cpu")

    def random_weights(self):
        if not any(st.state == "failed" for st in self.registry.status(self.task) if st.variant in PAIR):
            raise UserError("Both models loaded: random weights are only a fallback for models that cannot be "
                            "loaded.")
        self.guard.admit(self.registry, self.task)
        self.registry.load_random(self.task)
        return status_markdown(self.registry.status(self.task)), gr.Timer(active=True)

    def custom(self, teacher_id: str, student_id: str):
        try:
            specs = [model_spec({"model": m}, v) for m, v in ((teacher_id, "teacher"), (student_id, "student"))]
        except ConfigError as exc:
            raise UserError(str(exc)) from None
        self.guard.admit(self.registry, self.task)
        self.registry.set_pair(self.task, *specs)
        return (status_markdown(self.registry.status(self.task)), gr.Timer(active=True),
                gr.update(label=f"Teacher · {specs[0].model}"), gr.update(label=f"Student · {specs[1].model}"))


@dataclass
class TaskPanel:
    """The components of one task's tab, by name."""

    status: gr.Markdown
    reload: gr.Button | None  # the operator's buttons: None where the app does not allow them (a public address)
    cpu: gr.Button | None
    random: gr.Button | None
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


def layout(registry: PairRegistry, task: str, allow_custom_models: bool, allow_admin: bool = True) -> TaskPanel:
    """allow_admin: the operator's buttons (reload, CPU, random weights); without it they, and their events,
    do not exist, so no HTTP client can post them."""
    pair = registry.config.pairs[task]
    status = gr.Markdown(status_markdown(registry.status(task)), elem_id=f"{task}-status")
    reload = cpu = random = None
    if allow_admin:
        with gr.Row():
            reload = gr.Button("Reload models", size="sm", elem_id=f"{task}-reload")
            cpu = gr.Button("Run this task on CPU", size="sm", visible=registry.device.type != "cpu",
                            elem_id=f"{task}-cpu")
            random = gr.Button("Weights unavailable? Measure the architectures with random weights", size="sm",
                               elem_id=f"{task}-random")
    text = gr.Textbox(label="Text", lines=2, placeholder=PLACEHOLDERS[task], elem_id=f"{task}-text")
    compare = gr.Button("Compare", variant="primary", elem_id=f"{task}-run")
    gr.Examples(EXAMPLES[task], inputs=text)
    answers, completions = {}, {}
    with gr.Row():
        for variant in pair.variants:
            with gr.Column():
                title = (f"{variant.capitalize()} · {pair.spec(variant).model}" if variant in PAIR
                         else variant_title(variant))
                answers[variant] = gr.Label(num_top_classes=5, label=title, elem_id=f"{task}-{variant}-answer")
                if task == "fill_mask" and variant in PAIR:
                    completions[variant] = gr.Textbox(label=f"{variant.capitalize()}'s completed sentence",
                                                      interactive=False, elem_id=f"{task}-{variant}-completed")
    verdict = gr.Markdown(elem_id=f"{task}-verdict")
    with gr.Row():
        latency = gr.Plot(latency_chart([]), label="Latency, this session", elem_id=f"{task}-latency")
        size = gr.Plot(size_chart({}), label="Size", elem_id=f"{task}-size")
    panel = TaskPanel(status, reload, cpu, random, text, compare, answers, completions, verdict, latency, size,
                      summary=gr.JSON(label="Summary (the API's answer)", open=False), history=gr.State({}))
    if allow_custom_models:
        with gr.Accordion("Use other models (allowed by --allow-custom-models; for every visitor)", open=False):
            panel.custom = {variant: gr.Textbox(pair.spec(variant).model,
                                                label=f"{variant.capitalize()}: Hub id or directory")
                            for variant in PAIR}
            panel.swap = gr.Button("Load these models", size="sm")
    return panel


def wire(panel: TaskPanel, h: TaskHandlers, timer: gr.Timer) -> None:
    outputs = panel.outputs(h.task)
    # The page's own event (answers, charts, this session's series) is undocumented: callable, e.g. by the
    # tests, but neither in the API page nor an MCP tool; the API's /{task} (serving/api.py) returns the summary.
    panel.events = [panel.compare.click(h.compare, inputs=[panel.text, panel.history], outputs=outputs,
                                        api_name=f"page_{h.task}", api_visibility="undocumented"),
                    panel.text.submit(h.compare, inputs=[panel.text, panel.history], outputs=outputs,
                                      api_visibility="private")]
    status_outputs = [panel.status, timer]
    # Administrative: the operator's click (only where the app allows it), never an API call or an agent's tool;
    # bounded by the Guard.
    if panel.reload is not None:
        panel.reload.click(h.reload, outputs=status_outputs, api_visibility="private")
        panel.random.click(h.random_weights, outputs=status_outputs, api_visibility="private")
        panel.cpu.click(h.to_cpu, outputs=status_outputs, api_visibility="private")
    if panel.swap is not None:
        panel.swap.click(h.custom, inputs=[panel.custom["teacher"], panel.custom["student"]],
                         outputs=[*status_outputs, panel.answers["teacher"], panel.answers["student"]],
                         api_visibility="private")
