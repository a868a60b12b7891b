"""The Benchmark tab: a small sweep for one task, with the CLI's settings, code, tables and charts."""

from __future__ import annotations

import contextvars
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
MAX_SHAPE_VALUES = 8  # distinct batch sizes (and sequence lengths) per sweep
MAX_CALL_TOKENS = 16_384  # batch x tokens of one timed call: a stop is never further away than one such call
MAX_SWEEP_TOKENS = 4_000_000  # tokens one sweep may run through the models (app.py's --bench-max-tokens)
HEARTBEAT_SECONDS = 0.5  # how often the handler checks that its caller is still there
RUNNING: dict[str, threading.Event] = {}  # the running sweep's stop flag, by the session that started it


def cancel_sweep(request: gr.Request | None = None) -> None:
    """Stop the sweep this browser tab (gradio session) started; another visitor's is left alone."""
    flag = RUNNING.get(session_of(request))
    if flag is not None:
        flag.set()


# ---- handlers ------------------------------------------------------------------------------------
def distinct(values: list[int], what: str) -> list[int]:
    """Each value once, in order; at most MAX_SHAPE_VALUES of them."""
    values = sorted(set(values))
    if len(values) > MAX_SHAPE_VALUES:
        raise UserError(f"{what}: {len(values):,} distinct values; give at most {MAX_SHAPE_VALUES}.")
    return values


def sweep_tokens(settings: BenchSettings) -> int:
    """Tokens a sweep runs through the models: every shape, repeat and warm-up pass, end to end and model only."""
    per_round = sum(b * s for b in settings.batch_sizes for s in settings.seq_lens)
    return per_round * (settings.repeats + settings.warmup) * max(1, len(settings.variants)) * 2


@handlers
class BenchHandlers:
    def __init__(self, registry: PairRegistry, max_tokens: int = MAX_SWEEP_TOKENS):
        self.registry, self.max_tokens = registry, max_tokens
        # on ZeroGPU the sweep runs inside a lent GPU call, its time asked by the shapes it times
        self._sweep = zerogpu.gpu(lambda settings, *_: 30 + 3 * len(settings.batch_sizes) * len(settings.seq_lens)
                                  * settings.repeats * max(1, len(settings.variants)))(self._sweep_now)

    def _sweep_now(self, settings: BenchSettings, session: str, progress):
        stop = RUNNING.get(session)
        return sweep(self.registry.config, settings, cache=self.registry.cache,
                     progress=lambda done, total, what: progress((done, total), desc=what),
                     stop=stop.is_set if stop is not None else None)

    def settings(self, task: str, variants: list[str] | None, batch_sizes: str, seq_lens: str, repeats,
                 architecture_only: bool) -> BenchSettings:
        """The form as the CLI's settings, within this app's bounds: each list's distinct values (at most
        MAX_SHAPE_VALUES), at most MAX_CALL_TOKENS per timed call and self.max_tokens for the whole sweep."""
        settings = BenchSettings(tasks=[task] if task else [], variants=list(variants or []),
                                 batch_sizes=distinct(parse_int_list(batch_sizes, "batch sizes"), "batch sizes"),
                                 seq_lens=distinct(parse_int_list(seq_lens, "sequence lengths"), "sequence lengths"),
                                 repeats=whole_number(repeats or MIN_REPEATS, "timed repeats", 1, MAX_REPEATS),
                                 architecture_only=bool(architecture_only))
        settings.check_tasks(self.registry.config)
        widest = max(settings.batch_sizes) * max(settings.seq_lens)
        if widest > MAX_CALL_TOKENS:
            raise UserError(f"a batch of {max(settings.batch_sizes)} × {max(settings.seq_lens)} tokens is {widest:,} "
                            f"tokens in one call; this app times calls of up to {MAX_CALL_TOKENS:,} tokens.")
        work = sweep_tokens(settings)
        if work > self.max_tokens:
            raise UserError(f"this benchmark would run {work:,} tokens through the models (shapes × repeats × "
                            f"variants); this app runs up to {self.max_tokens:,} per benchmark: fewer shapes, variants "
                            "or repeats.")
        return settings

    def run(self, task: str, variants: list[str] | None, batch_sizes: str, seq_lens: str, repeats,
            architecture_only: bool, request: gr.Request, progress=gr.Progress()):
        """The CLI's sweep on the configured pair (app-wide, one at a time), in a worker thread. This handler
        is a generator that checks in every HEARTBEAT_SECONDS: when its caller cancels or leaves, gradio stops
        pulling it (GeneratorExit) and the sweep is stopped between two timed calls; Cancel stops it too."""
        settings = self.settings(task, variants, batch_sizes, seq_lens, repeats, architecture_only)
        if not SWEEP_LOCK.acquire(blocking=False):
            raise UserError("another benchmark is running; try again when it has finished.")
        session, box = session_of(request), {}
        stop = RUNNING[session] = threading.Event()  # cancel_sweep sets it; the sweep reads it between calls

        def work():
            try:
                box["result"] = self._sweep(settings, session, progress)
            except BaseException as exc:  # noqa: BLE001 - raised again in the handler's thread
                box["error"] = exc

        worker = threading.Thread(target=contextvars.copy_context().run, args=(work,), name="benchmark", daemon=True)
        try:
            worker.start()
            while worker.is_alive():
                worker.join(HEARTBEAT_SECONDS)
                if worker.is_alive():
                    yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
        finally:
            if worker.is_alive():  # the caller cancelled or went away: stop it, and free the lock once it has
                stop.set()
                worker.join()
            RUNNING.pop(session, None)
            SWEEP_LOCK.release()
        if "error" in box:
            raise box["error"]
        result = box["result"]
        out = scratch_dir("bench-")
        paths = write_outputs(result, out)
        enforce_budget(keep=out)
        figures = bench_figures(result.records)
        yield result.to_dict(), result.markdown(), figures[0] if figures else None, [str(p) for p in paths.values()]

    def cancel(self, request: gr.Request) -> None:
        cancel_sweep(request)


# ---- layout and wiring ---------------------------------------------------------------------------
def build_tab(registry: PairRegistry, max_tokens: int = MAX_SWEEP_TOKENS) -> None:
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

    h = BenchHandlers(registry, max_tokens)
    run.click(h.run, inputs=[task, variants, batch_sizes, seq_lens, repeats, architecture_only],
              outputs=[summary, table, chart, files], api_name="benchmark", concurrency_id="benchmark",
              concurrency_limit=1, api_visibility="undocumented")
    cancel.click(h.cancel, api_name="cancel_benchmark", queue=False, api_visibility="undocumented")
