"""What the page shows, as plain text and data: status lines, verdicts, label scores. No Gradio.

Pure functions of the registry's statuses and compare()'s Comparison, so they are tested alone
and the UI module only lays out and wires.
"""

from __future__ import annotations

import html

from demo.core.formatting import human_count, md_escape
from demo.models.compare import Comparison
from demo.models.registry import ModelStatus

STATE_ICONS = {"queued": "⏳", "loading": "⏳", "warming up": "🔥", "ready": "✅", "failed": "❌"}


def status_markdown(statuses: list[ModelStatus]) -> str:
    lines = []
    for s in statuses:
        head = f"{STATE_ICONS.get(s.state, '')} **{s.variant.capitalize()}** `{html.escape(s.model)}`: "
        if s.state == "ready":
            size = f" · {human_count(s.size.params)} parameters" if s.size else ""
            head += f"ready on **{s.device}** ({s.dtype}){size} · loaded in {s.seconds:.1f} s"
            if s.reason:  # the random-weights fallback (a warning), or how the model was made
                head += (f" · ⚠️ **{md_escape(s.reason)}**" if "RANDOM" in s.reason else f" · {md_escape(s.reason)}")
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
    for variant, r in c.extra.items():
        same = r.prediction.label.lower() == s.prediction.label.lower()
        lines.append(f"⚡ {variant}: **{r.latency_ms:.1f} ms** ({t.latency_ms / r.latency_ms:.2f}× the teacher) · "
                     f"{'same answer as' if same else '**different answer from**'} the fp32 student")
    lines += [f"ℹ️ {md_escape(n)}" for n in c.notices if not (c.random_weights and n.startswith("RANDOM"))]
    return "  \n".join(lines)


def label_value(c: Comparison, variant: str) -> dict[str, float] | None:
    """A variant's top answers for a gr.Label; None where it did not answer or answers mean nothing."""
    result = c.results().get(variant)
    if c.random_weights or result is None:
        return None
    return {lab: float(score) for lab, score in result.prediction.top}


# ---- this session's evidence, keyed by the models it was measured on ----------------------------
def series_rows(history: dict | None, models: dict[str, str]) -> list[dict]:
    """The requests of history measured on exactly these models; [] once either model changed (a new
    student starts a new series: its timings and agreements are not the previous one's)."""
    history = history or {}
    return list(history.get("rows") or []) if history.get("models") == models else []


def add_request(history: dict | None, models: dict[str, str], c: Comparison, training: bool, limit: int) -> dict:
    """history with one more request; a new series when the models changed. Rows look like
    {"request": 3, "agree": True, "teacher_ms": 12.1, "student_ms": 5.2[, "training": True]}."""
    rows = series_rows(history, models)
    row = {"request": (rows[-1]["request"] + 1) if rows else 1, "agree": c.agree,
           **{f"{variant}_ms": r.latency_ms for variant, r in c.results().items()},
           **({"training": True} if training else {})}
    return {"models": dict(models), "rows": [*rows, row][-limit:]}


def evaluated_for(evaluated: dict | None, models_by_task: dict[str, dict[str, str]]) -> dict:
    """The evaluations of this session that belong to the models each task shows now."""
    return {task: result for task, result in (evaluated or {}).items()
            if result.get("models") == models_by_task.get(task)}
