"""The Benchmark tab: a small sweep for one task, with the CLI's settings, code, tables and charts."""

from __future__ import annotations

import threading

import gradio as gr

from demo.core.errors import UserError
from demo.core.scratch import scratch_dir
from demo.measuring.bench_report import write_outputs
from demo.measuring.charts import bench_figures
from demo.measuring.sweep import (
    MIN_REPEATS,
    QUICK_BATCH_SIZES,
    QUICK_SEQ_LENS,
    BenchSettings,
    parse_int_list,
    sweep,
)
from demo.models.config import VARIANTS
from demo.models.registry import PairRegistry
from demo.serving.api import not_a_tool

SWEEP_LOCK = threading.Lock()  # one sweep at a time: two would time each other's CPU contention
RUNNING: dict[str, threading.Event] = {}  # the running sweep's stop flag, by the session that started it


def session_of(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"


def cancel_sweep(request: gr.Request | None = None) -> None:
    """Stop the sweep this browser tab (gradio session) started; another visitor's is left alone."""
    flag = RUNNING.get(session_of(request))
    if flag is not None:
        flag.set()


# ---- handlers ------------------------------------------------------------------------------------
def run_sweep(registry: PairRegistry, task: str, variants: list[str] | None, batch_sizes: str, seq_lens: str,
              repeats, architecture_only: bool, progress=gr.Progress(), session: str = "local"):
    try:
        settings = BenchSettings(tasks=[task] if task else [], variants=list(variants or []),
                                 batch_sizes=parse_int_list(batch_sizes, "batch sizes"),
                                 seq_lens=parse_int_list(seq_lens, "sequence lengths"),
                                 repeats=int(repeats or MIN_REPEATS), architecture_only=bool(architecture_only))
        settings.check_tasks(registry.config)
    except UserError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    if not SWEEP_LOCK.acquire(blocking=False):
        raise gr.Error("another benchmark is running; try again when it has finished.", print_exception=False)
    stop = RUNNING[session] = threading.Event()
    try:
        result = sweep(registry.config, settings, cache=registry.cache,
                       progress=lambda done, total, what: progress((done, total), desc=what), stop=stop.is_set)
    except UserError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    finally:
        RUNNING.pop(session, None)
        SWEEP_LOCK.release()
    paths = write_outputs(result, scratch_dir("bench-"))
    figures = bench_figures(result.records)
    return result.to_dict(), result.markdown(), figures[0] if figures else None, [str(p) for p in paths.values()]


# ---- layout and wiring ---------------------------------------------------------------------------
def build_tab(registry: PairRegistry) -> None:
    tasks = registry.config.tasks
    gr.Markdown("Time every variant of a task at the batch sizes and sequence lengths you pick, with the same "
                f"code as `python -m demo.bench` (warm-up, then {MIN_REPEATS}+ timed repeats, p50/p95). While a "
                "repeat is timed, nothing else in the app runs a model. *Architecture only* uses random weights "
                "of the real shapes: timings are real, answers are not. The ONNX and OpenVINO variants need the student too.")
    with gr.Row():
        task = gr.Dropdown(tasks, value=tasks[0] if tasks else None, label="Task", elem_id="bench-task")
        variants = gr.CheckboxGroup(list(VARIANTS), value=["teacher", "student"], label="Variants",
                                    elem_id="bench-variants")
    with gr.Row():
        batch_sizes = gr.Textbox(",".join(map(str, QUICK_BATCH_SIZES)), label="Batch sizes",
                                 elem_id="bench-batch-sizes")
        seq_lens = gr.Textbox(",".join(map(str, QUICK_SEQ_LENS)), label="Sequence lengths (tokens)",
                              elem_id="bench-seq-lens")
        repeats = gr.Number(MIN_REPEATS, precision=0, label=f"Timed repeats (at least {MIN_REPEATS})")
        architecture_only = gr.Checkbox(False, label="Architecture only (random weights)")
    with gr.Row():
        run = gr.Button("Run benchmark", variant="primary", elem_id="bench-run")
        cancel = gr.Button("Cancel", variant="stop", elem_id="bench-cancel")
    table = gr.Markdown(elem_id="bench-table")
    chart = gr.Plot(label="Latency and size", elem_id="bench-chart")
    files = gr.File(label="bench.json, bench.md, bench.html", file_count="multiple", interactive=False)
    summary = gr.JSON(label="Records (bench.json)", open=False)

    def on_run(task_name, chosen, batches_text, seqs_text, n_repeats, arch_only, request: gr.Request,
               progress=gr.Progress()):
        return run_sweep(registry, task_name, chosen, batches_text, seqs_text, n_repeats, arch_only, progress,
                         session=session_of(request))

    run.click(not_a_tool(on_run), inputs=[task, variants, batch_sizes, seq_lens, repeats, architecture_only],
              outputs=[summary, table, chart, files], api_name="benchmark", concurrency_id="benchmark",
              concurrency_limit=1)
    cancel.click(not_a_tool(cancel_sweep), api_name="cancel_benchmark", queue=False)
