"""The Benchmark tab: a small sweep for one task, with the CLI's settings, code, tables and charts."""

from __future__ import annotations

import threading

import gradio as gr

from demo.core import zerogpu
from demo.core.errors import UserError, whole_number
from demo.core.scratch import enforce_budget, scratch_dir
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
from demo.models.registry import PairRegistry
from demo.models.variants import VARIANTS
from demo.serving.edge import handlers, session_of

SWEEP_LOCK = threading.Lock()  # one sweep at a time: two would time each other's CPU contention
MAX_REPEATS = 1000  # timed repeats per shape: bounds how long one visitor holds the models
RUNNING: dict[str, threading.Event] = {}  # the running sweep's stop flag, by the session that started it


def cancel_sweep(request: gr.Request | None = None) -> None:
    """Stop the sweep this browser tab (gradio session) started; another visitor's is left alone."""
    flag = RUNNING.get(session_of(request))
    if flag is not None:
        flag.set()


# ---- handlers ------------------------------------------------------------------------------------
@handlers
class BenchHandlers:
    def __init__(self, registry: PairRegistry):
        self.registry = registry
        # on ZeroGPU the sweep runs inside a lent GPU call, its time asked by the shapes it times
        self._sweep = zerogpu.gpu(lambda settings, *_: 30 + 3 * len(settings.batch_sizes) * len(settings.seq_lens)
                                  * settings.repeats * max(1, len(settings.variants)))(self._sweep_now)

    def _sweep_now(self, settings: BenchSettings, session: str, progress):
        stop = RUNNING.get(session)
        return sweep(self.registry.config, settings, cache=self.registry.cache,
                     progress=lambda done, total, what: progress((done, total), desc=what),
                     stop=stop.is_set if stop is not None else None)

    def run(self, task: str, variants: list[str] | None, batch_sizes: str, seq_lens: str, repeats,
            architecture_only: bool, request: gr.Request, progress=gr.Progress()):
        """The CLI's sweep on the configured pair (app-wide, one at a time); cancel stops only this session's."""
        settings = BenchSettings(tasks=[task] if task else [], variants=list(variants or []),
                                 batch_sizes=parse_int_list(batch_sizes, "batch sizes"),
                                 seq_lens=parse_int_list(seq_lens, "sequence lengths"),
                                 repeats=whole_number(repeats or MIN_REPEATS, "timed repeats", 1, MAX_REPEATS),
                                 architecture_only=bool(architecture_only))
        settings.check_tasks(self.registry.config)
        if not SWEEP_LOCK.acquire(blocking=False):
            raise UserError("another benchmark is running; try again when it has finished.")
        session = session_of(request)
        RUNNING[session] = threading.Event()  # cancel_sweep sets it; the sweep reads it between shapes
        try:
            result = self._sweep(settings, session, progress)
        finally:
            RUNNING.pop(session, None)
            SWEEP_LOCK.release()
        out = scratch_dir("bench-")
        paths = write_outputs(result, out)
        enforce_budget(keep=out)
        figures = bench_figures(result.records)
        return result.to_dict(), result.markdown(), figures[0] if figures else None, [str(p) for p in paths.values()]

    def cancel(self, request: gr.Request) -> None:
        cancel_sweep(request)


# ---- layout and wiring ---------------------------------------------------------------------------
def build_tab(registry: PairRegistry) -> None:
    tasks = registry.config.tasks
    gr.Markdown("Time every variant of a task at the batch sizes and sequence lengths you pick, with the same "
                f"code as `python -m demo.bench` (warm-up, then {MIN_REPEATS}+ timed repeats, p50/p95). While a "
                "repeat is timed, nothing else in the app runs a model. *Architecture only* uses random weights "
                "of the real shapes: timings are real, answers are not. The ONNX and OpenVINO variants need the "
                "student too.")
    with gr.Row():
        task = gr.Dropdown(tasks, value=tasks[0] if tasks else None, label="Task", elem_id="bench-task")
        variants = gr.CheckboxGroup(list(VARIANTS), value=["teacher", "student"], label="Variants",
                                    elem_id="bench-variants")
    with gr.Row():
        batch_sizes = gr.Textbox(",".join(map(str, QUICK_BATCH_SIZES)), label="Batch sizes",
                                 elem_id="bench-batch-sizes")
        seq_lens = gr.Textbox(",".join(map(str, QUICK_SEQ_LENS)), label="Sequence lengths (tokens)",
                              elem_id="bench-seq-lens")
        repeats = gr.Number(MIN_REPEATS, label=f"Timed repeats (at least {MIN_REPEATS})")  # checked by the handler
        architecture_only = gr.Checkbox(False, label="Architecture only (random weights)")
    with gr.Row():
        run = gr.Button("Run benchmark", variant="primary", elem_id="bench-run")
        cancel = gr.Button("Cancel", variant="stop", elem_id="bench-cancel")
    table = gr.Markdown(elem_id="bench-table")
    chart = gr.Plot(label="Latency and size", elem_id="bench-chart")
    files = gr.File(label="bench.json, bench.md, bench.html", file_count="multiple", interactive=False)
    summary = gr.JSON(label="Records (bench.json)", open=False)

    h = BenchHandlers(registry)
    run.click(h.run, inputs=[task, variants, batch_sizes, seq_lens, repeats, architecture_only],
              outputs=[summary, table, chart, files], api_name="benchmark", concurrency_id="benchmark",
              concurrency_limit=1, api_visibility="undocumented")
    cancel.click(h.cancel, api_name="cancel_benchmark", queue=False, api_visibility="undocumented")
