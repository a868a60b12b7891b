"""The API: one endpoint per task that returns only its summary, and the same as an MCP tool.

gradio makes every *documented* endpoint an MCP tool (`python app.py --mcp`), named after its function
and described by its docstring, and writes a tool's result as text with str(): a dict would reach an
agent as Python literal text. So each task has two endpoints over one code path: `/sentiment` (and
`/fill_mask`, `/classify`) returns the summary as an object for gradio_client, undocumented so that it is
no tool; `/sentiment_json` returns the same summary as JSON text, documented: the MCP tool `sentiment`.
Every other endpoint of the page (evaluate, benchmark, scorecard, the distill jobs) is undocumented
too: callable by scripts, never a tool; administrative events (reload, random weights) are private.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import gradio as gr

from demo.models.registry import PairRegistry
from demo.models.session_students import SessionStudents
from demo.serving.edge import Answers, session_of, user_errors

WHAT = {
    "sentiment": ("Sentiment (negative or positive) of an English text",
                  "An English sentence or short review, e.g. 'A gripping, beautifully acted film.'"),
    "fill_mask": ("The missing word of an English sentence with one [MASK]",
                  "An English sentence with exactly one [MASK] (or <mask>), e.g. 'Paris is the [MASK] of France.'"),
    "classify": ("The emotion (sadness, joy, love, anger, fear or surprise) of an English text",
                 "An English sentence that expresses a feeling, e.g. 'I can't stop smiling today.'"),
}
RETURNS = ("A JSON object: `task`, `text`; for `teacher` and `student` (and `student-int8` where the app runs "
           "it: the student as int8 on this machine's fastest backend) the `model` id, its `prediction` (`label`, "
           "`score` from 0 to 1), `latency_ms` on this server, `device` and `dtype`; `agree` (true when both models "
           "give the same label), `speedup` (teacher latency / student latency for this one request) and "
           "`notices` (e.g. that the text was cut to the models' length limit).")
FILL_MASK_RETURNS = (" For fill_mask also `top5_overlap` (share of the teacher's five best words the student "
                     "also ranks in its five) and each model's `completed` sentence.")


def _docstring(task: str, returns: str) -> str:
    what, argument = WHAT[task]
    return (f"{what}, answered by a BERT teacher and by its distilled student side by side, with each model's "
            f"latency: what distillation costs in answers and buys in speed.\n\nArgs:\n    text: {argument}\n\n"
            f"Returns:\n    {returns}{RETURNS}{FILL_MASK_RETURNS if task == 'fill_mask' else ''}")


def task_endpoint(registry: PairRegistry, task: str, students: SessionStudents | None = None) -> Callable[..., dict]:
    """The task's summary for gradio_client. A caller that adopted its own student (/distill_adopt) is
    answered by it; everyone else by the configured pair."""

    answers = Answers(registry, students)

    @user_errors
    def endpoint(text: str, request: gr.Request) -> dict:
        return answers.run(task, text, session_of(request)).summary()

    endpoint.__name__ = endpoint.__qualname__ = task
    endpoint.__doc__ = _docstring(task, "")
    return endpoint


def task_tool(registry: PairRegistry, task: str, students: SessionStudents | None = None) -> Callable[..., str]:
    """The same summary as JSON text: what an MCP client parses with json.loads."""
    summary = task_endpoint(registry, task, students)

    @gr.mcp.tool(name=task)  # the docstring describes it
    def tool(text: str, request: gr.Request) -> str:
        return json.dumps(summary(text, request), ensure_ascii=False)

    tool.__name__ = tool.__qualname__ = task
    tool.__doc__ = _docstring(task, "JSON text of an object. ")
    return tool


def register(registry: PairRegistry, students: SessionStudents | None = None) -> None:
    """Per configured task: /{task} (the summary, for gradio_client) and /{task}_json (the MCP tool)."""
    for task in registry.config.pairs:
        gr.api(task_endpoint(registry, task, students), api_name=task, api_visibility="undocumented")
        gr.api(task_tool(registry, task, students), api_name=f"{task}_json")


