"""The Gradio page: layout and event wiring only. The work is done by the registry, charts and tasks."""

from __future__ import annotations

import html

import gradio as gr

from .charts import latency_chart, size_chart
from .compare import Comparison
from .config import ROLES, TASKS
from .measure import human_count
from .registry import ModelStatus, PairRegistry, TaskUnavailable
from .reports import md_escape
from . import ui_bench, ui_evaluate
from .evaluate import LABELLED_TASKS
from .tasks import EXAMPLE_TEXT, InputError

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
STATE_ICONS = {"queued": "⏳", "loading": "⏳", "warming up": "🔥", "ready": "✅", "failed": "❌"}
def status_markdown(statuses: list[ModelStatus]) -> str:
    lines = []
    for s in statuses:
        head = f"{STATE_ICONS.get(s.state, '')} **{s.role.capitalize()}** `{html.escape(s.model)}`: "
        if s.state == "ready":
            size = f" · {human_count(s.size.params)} parameters" if s.size else ""
            head += f"ready on **{s.device}** ({s.dtype}){size} · loaded in {s.seconds:.1f} s"
            if s.reason:  # e.g. the random-weights fallback
                head += f" · ⚠️ **{md_escape(s.reason)}**"
        elif s.state == "failed":
            head += f"**failed to load**: {md_escape(s.reason)} {md_escape(s.fix)}"
        else:
            head += f"{s.state}…"
        lines.append(head)
    return "  \n".join(lines)


def verdict_markdown(c: Comparison) -> str:
    t, s = c.teacher, c.student
    if c.task == "fill_mask":
        agree = (f"{'✅ Same top word' if c.agree else '⚠️ Different top words'} · top-5 overlap "
                 f"**{c.top_overlap:.0%}**")
    else:
        agree = (f"✅ **Agree**: both say *{md_escape(t.prediction.label)}*" if c.agree else
                 f"⚠️ **Disagree**: teacher *{md_escape(t.prediction.label)}*, "
                 f"student *{md_escape(s.prediction.label)}*")
    if c.random_weights:
        agree = "⚠️ **Random weights: no answer is shown.** Latency and size below are those of the real architectures."
    first = "teacher" if c.teacher_first else "student"
    lines = [agree,
             f"⏱️ Teacher **{t.latency_ms:.1f} ms** · student **{s.latency_ms:.1f} ms** · speedup "
             f"**{c.speedup:.2f}×** (teacher ms / student ms; {first} ran first)"]
    for role, r in c.extra.items():
        same = r.prediction.label.lower() == s.prediction.label.lower()
        lines.append(f"⚡ {role}: **{r.latency_ms:.1f} ms** ({t.latency_ms / r.latency_ms:.2f}× the teacher) · "
                     f"{'same answer as' if same else '**different answer from**'} the fp32 student")
    lines += [f"ℹ️ {md_escape(n)}" for n in c.notices if not (c.random_weights and n.startswith("RANDOM"))]
    return "  \n".join(lines)


def student_markdown(link) -> str:
    """Where the distilled student is published, and its model card when a local copy is at hand."""
    url = f"https://huggingface.co/{link.hub_repo}"
    text = (f"The student distilled with this project's CLI (`python -m demo.distill`) is published at "
            f"[{html.escape(link.hub_repo)}]({url}): weights, model card and the training code.")
    card = link.card_text()
    return text + ("\n\n---\n\n" + card if card else "\n\n(No local copy of its model card: set "
                   "`distillation.output_dir` in the config to show it here.)")


def label_value(c: Comparison, role: str) -> dict[str, float] | None:
    if c.random_weights:
        return None
    result = c.extra[role] if role in c.extra else getattr(c, role)
    return {lab: float(score) for lab, score in result.prediction.top}


def build(registry: PairRegistry, allow_custom_models: bool = False) -> gr.Blocks:
    """The whole page: one tab per configured task, wired to the registry."""
    config = registry.config
    with gr.Blocks(title="Teacher vs student: what distillation buys") as page:
        gr.Markdown(
            "# Teacher vs student: what distillation buys\n"
            "A BERT **teacher** and its distilled **student** answer the same text. Compare their answers, "
            "their latency on this machine and their size. Latency = tokenisation + forward pass + "
            f"post-processing, one model at a time. Device: **{registry.device}**, dtype "
            f"**{str(registry.dtype).replace('torch.', '')}**. Config: `{html.escape(config.source)}`."
        )
        status_boxes, size_plots = [], []
        timer = gr.Timer(STATUS_POLL_SECONDS)
        with gr.Tabs():
            for task in TASKS:
                if task in config.task_errors:
                    with gr.Tab(TASKS[task], id=task):
                        gr.Markdown(f"❌ **This task's entry in the config was refused**: "
                                    f"{md_escape(config.task_errors[task])} Fix the file and restart the app.")
                    continue
                if task not in config.pairs:
                    continue
                with gr.Tab(TASKS[task], id=task):
                    status_box, size_plot = _task_panel(registry, task, timer, allow_custom_models)
                    status_boxes.append(status_box)
                    size_plots.append(size_plot)
            if any(t in config.pairs for t in LABELLED_TASKS):
                with gr.Tab("Evaluate", id="evaluate"):
                    ui_evaluate.build_tab(registry)
            with gr.Tab("Benchmark", id="benchmark"):
                ui_bench.build_tab(registry)
            if config.distillation is not None:
                with gr.Tab("The distilled student", id="student"):
                    gr.Markdown(student_markdown(config.distillation))

        def refresh():
            outputs = [status_markdown(registry.status(t)) for t in config.tasks]
            outputs += [size_chart({s.role: s.size for s in registry.status(t)}) for t in config.tasks]
            return [*outputs, gr.Timer(active=not registry.all_settled())]

        targets = [*status_boxes, *size_plots, timer]
        timer.tick(refresh, outputs=targets, api_visibility="private", queue=False, show_progress="hidden")
        page.load(refresh, outputs=targets, api_visibility="private", queue=False)
    return page


def _task_panel(registry: PairRegistry, task: str, timer: gr.Timer, allow_custom_models: bool):
    pair = registry.config.pairs[task]
    status_box = gr.Markdown(status_markdown(registry.status(task)), elem_id=f"{task}-status")
    with gr.Row():
        reload_button = gr.Button("Reload models", size="sm", elem_id=f"{task}-reload")
        cpu_button = gr.Button("Run this task on CPU", size="sm", visible=registry.device.type != "cpu",
                               elem_id=f"{task}-cpu")
        random_button = gr.Button("Weights unavailable? Measure the architectures with random weights", size="sm",
                                  elem_id=f"{task}-random")
    text = gr.Textbox(label="Text", lines=2, placeholder=PLACEHOLDERS[task], elem_id=f"{task}-text")
    button = gr.Button("Compare", variant="primary", elem_id=f"{task}-run")
    gr.Examples(EXAMPLES[task], inputs=text)
    answers, completions = {}, {}
    roles = pair.roles
    with gr.Row():
        for role in roles:
            with gr.Column():
                title = f"{role.capitalize()} · {pair.spec(role).model}" if role in ROLES else \
                    "Student · ONNX Runtime, dynamic int8 (CPU)"
                answers[role] = gr.Label(num_top_classes=5, label=title, elem_id=f"{task}-{role}-answer")
                if task == "fill_mask" and role in ROLES:
                    completions[role] = gr.Textbox(label=f"{role.capitalize()}'s completed sentence",
                                                   interactive=False, elem_id=f"{task}-{role}-completed")
    verdict = gr.Markdown(elem_id=f"{task}-verdict")
    with gr.Row():
        latency_plot = gr.Plot(latency_chart([]), label="Latency, this session", elem_id=f"{task}-latency")
        size_plot = gr.Plot(size_chart({}), label="Size", elem_id=f"{task}-size")
    summary = gr.JSON(label="Summary (the API's answer)", open=False)
    history = gr.State([])

    def run(text_in: str, rows: list):
        try:
            result = registry.run(task, text_in)
        except (InputError, TaskUnavailable) as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        row = {"request": (rows[-1]["request"] + 1) if rows else 1,
               "teacher_ms": result.teacher.latency_ms, "student_ms": result.student.latency_ms}
        row.update({f"{role}_ms": r.latency_ms for role, r in result.extra.items()})
        rows = [*rows, row][-HISTORY_LIMIT:]
        outputs = [result.summary(), *[label_value(result, role) if role in ROLES or role in result.extra else None
                                       for role in roles]]
        if task == "fill_mask":
            hide = result.random_weights
            outputs += [None if hide else result.teacher.prediction.completed,
                        None if hide else result.student.prediction.completed]
        outputs += [verdict_markdown(result), latency_chart(rows, roles),
                    size_chart({s.role: s.size for s in registry.status(task)}), rows]
        return outputs

    outputs = [summary, *[answers[role] for role in roles]]
    if task == "fill_mask":
        outputs += [completions["teacher"], completions["student"]]
    outputs += [verdict, latency_plot, size_plot, history]
    button.click(run, inputs=[text, history], outputs=outputs, api_name=task)
    text.submit(run, inputs=[text, history], outputs=outputs, api_visibility="private")

    def reload(device: str | None = None):
        import torch

        registry.reload(task, device=torch.device(device) if device else None)
        return status_markdown(registry.status(task)), gr.Timer(active=True)

    reload_button.click(reload, outputs=[status_box, timer], api_name=f"reload_{task}")

    def use_random_weights():
        if not any(st.state == "failed" for st in registry.status(task) if st.role in ROLES):
            raise gr.Error("Both models loaded: random weights are only a fallback for models that cannot be "
                           "loaded.", print_exception=False)
        registry.load_random(task)
        return status_markdown(registry.status(task)), gr.Timer(active=True)

    random_button.click(use_random_weights, outputs=[status_box, timer], api_name=f"random_weights_{task}")
    cpu_button.click(lambda: reload("cpu"), outputs=[status_box, timer], api_visibility="private")
    if allow_custom_models:
        with gr.Accordion("Use other models (allowed by --allow-custom-models)", open=False):
            custom = {role: gr.Textbox(pair.spec(role).model, label=f"{role.capitalize()}: Hub id or directory")
                      for role in ROLES}
            swap = gr.Button("Load these models", size="sm")

        def load_custom(teacher_id: str, student_id: str):
            from .config import ConfigError, model_spec

            try:
                specs = [model_spec({"model": m}, role) for m, role in ((teacher_id, "teacher"), (student_id, "student"))]
            except ConfigError as exc:
                raise gr.Error(str(exc), print_exception=False) from None
            registry.set_pair(task, *specs)
            return (status_markdown(registry.status(task)), gr.Timer(active=True),
                    gr.update(label=f"Teacher · {specs[0].model}"), gr.update(label=f"Student · {specs[1].model}"))

        swap.click(load_custom, inputs=[custom["teacher"], custom["student"]],
                   outputs=[status_box, timer, answers["teacher"], answers["student"]], api_name=f"custom_{task}")
    return status_box, size_plot
