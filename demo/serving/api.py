"""The API an agent calls: one endpoint per task that returns only the JSON summary.

These are also the MCP tools (`python app.py --mcp`): gradio makes every documented endpoint a tool,
named after its function and described by its docstring, so the names, type hints and docstrings here
are what an agent reads. The page's own events (charts, history, scorecard) stay private; the page's
other documented endpoints (evaluate, benchmark, scorecard) are callable with gradio_client but kept
out of the tool list, and administrative events (reload, random weights, custom models) are private.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import gradio as gr

from demo.models.registry import PairRegistry
from demo.models.session_students import PairView, SessionStudents
from demo.serving.edge import session_of, user_errors

WHAT = {
    "sentiment": ("Sentiment (negative or positive) of an English text",
                  "An English sentence or short review, e.g. 'A gripping, beautifully acted film.'"),
    "fill_mask": ("The missing word of an English sentence with one [MASK]",
                  "An English sentence with exactly one [MASK] (or <mask>), e.g. 'Paris is the [MASK] of France.'"),
    "classify": ("The emotion (sadness, joy, love, anger, fear or surprise) of an English text",
                 "An English sentence that expresses a feeling, e.g. 'I can't stop smiling today.'"),
}
RETURNS = ("A JSON object: `task`, `text`; for `teacher` and `student` (and `student-onnx-int8` where the app "
           "runs it) the `model` id, its `prediction` (`label`, `score` from 0 to 1), `latency_ms` on this "
           "server, `device` and `dtype`; `agree` (true when both models give the same label), `speedup` "
           "(teacher latency / student latency for this one request) and `notices` (e.g. that the text was "
           "cut to the models' length limit).")
FILL_MASK_RETURNS = (" For fill_mask also `top5_overlap` (share of the teacher's five best words the student "
                     "also ranks in its five) and each model's `completed` sentence.")


def task_endpoint(registry: PairRegistry, task: str, students: SessionStudents | None = None) -> Callable[..., dict]:
    """The task's API function, named after the task (its tool name) and documented for an agent. A caller
    that adopted its own student (/distill_adopt) is answered by it; everyone else by the configured pair."""

    @user_errors
    def endpoint(text: str, request: gr.Request) -> dict:
        return PairView(registry, students, session_of(request)).run(task, text).summary()

    what, argument = WHAT[task]
    endpoint.__name__ = endpoint.__qualname__ = task
    endpoint.__doc__ = (f"{what}, answered by a BERT teacher and by its distilled student side by side, with each "
                        f"model's latency: what distillation costs in answers and buys in speed.\n\n"
                        f"Args:\n    text: {argument}\n\n"
                        f"Returns:\n    {RETURNS}{FILL_MASK_RETURNS if task == 'fill_mask' else ''}")
    return endpoint


def register(registry: PairRegistry, students: SessionStudents | None = None) -> None:
    """One API endpoint per configured task, /sentiment, /fill_mask, /classify; call inside the Blocks."""
    for task in registry.config.pairs:
        gr.api(task_endpoint(registry, task, students), api_name=task)


def not_a_tool(fn: Callable) -> Callable:
    """Keep a documented endpoint out of the MCP tool list (gradio lists only functions whose `_mcp_type`,
    when set, is "tool"): long CPU jobs and file uploads are for people and scripts, not agents. A wrapper
    carries the mark, so a bound method (a tab's handler) can be given too."""

    @functools.wraps(fn)
    def endpoint(*args, **kwargs):
        return fn(*args, **kwargs)

    endpoint._mcp_type = "endpoint"
    return endpoint
