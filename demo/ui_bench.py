"""The Benchmark tab: a small sweep for one task, with the CLI's code, tables and charts."""

from __future__ import annotations

import threading

import gradio as gr

from .bench import DEFAULT_REPEATS, VARIANTS, BenchSettings, bench_figures, bench_markdown, sweep, write_outputs
from .config import ConfigError
from .loading import LoadError
from .registry import PairRegistry
from .scratch import scratch_dir

SWEEP_LOCK = threading.Lock()  # one sweep at a time: two would time each other's CPU contention
STOP = threading.Event()


def _ints(text: str, what: str, upper: int) -> list[int]:
    try:
        values = [int(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError:
        raise gr.Error(f"{what}: give comma-separated whole numbers, e.g. 1,8.", print_exception=False) from None
    if not values or min(values) < 1 or max(values) > upper:
        raise gr.Error(f"{what}: values between 1 and {upper}, e.g. 1,8.", print_exception=False)
    return values


def build_tab(registry: PairRegistry) -> None:
    tasks = registry.config.tasks
    gr.Markdown("Time every variant of a task at the batch sizes and sequence lengths you pick, with the same "
                f"code as `python -m demo.bench` (warm-up, then {DEFAULT_REPEATS}+ timed repeats, p50/p95). While a "
                "repeat is timed, nothing else in the app runs a model. *Architecture only* uses random weights "
                "of the real shapes: timings are real, answers are not.")
    with gr.Row():
        task = gr.Dropdown(tasks, value=tasks[0] if tasks else None, label="Task", elem_id="bench-task")
        variants = gr.CheckboxGroup(list(VARIANTS), value=["teacher", "student"], label="Variants",
                                    elem_id="bench-variants")
    with gr.Row():
        batch_sizes = gr.Textbox("1,8", label="Batch sizes", elem_id="bench-batch-sizes")
        seq_lens = gr.Textbox("16,128", label="Sequence lengths (tokens)", elem_id="bench-seq-lens")
        repeats = gr.Number(DEFAULT_REPEATS, precision=0, minimum=20, label="Timed repeats")
        architecture_only = gr.Checkbox(False, label="Architecture only (random weights)")
    with gr.Row():
        run = gr.Button("Run benchmark", variant="primary", elem_id="bench-run")
        cancel = gr.Button("Cancel", variant="stop", elem_id="bench-cancel")
    table = gr.Markdown(elem_id="bench-table")
    chart = gr.Plot(label="Latency and size", elem_id="bench-chart")
    files = gr.File(label="bench.json, bench.md, bench.html", file_count="multiple", interactive=False)
    summary = gr.JSON(label="Records (bench.json)", open=False)

    def run_sweep(task_name, chosen, batches_text, seqs_text, n_repeats, arch_only, progress=gr.Progress()):
        if task_name not in tasks:
            raise gr.Error(f"pick a task: one of {', '.join(tasks)}.", print_exception=False)
        chosen = [v for v in VARIANTS if v in (chosen or [])]
        if not chosen:
            raise gr.Error("pick at least one variant.", print_exception=False)
        if any(v.startswith("student-onnx") for v in chosen) and "student" not in chosen:
            chosen.insert(1 if "teacher" in chosen else 0, "student")
        n_repeats = int(n_repeats or DEFAULT_REPEATS)
        if n_repeats < 20:
            raise gr.Error("timed repeats: at least 20 (fewer is a sample, not a percentile).", print_exception=False)
        settings = BenchSettings(tasks=[task_name], variants=chosen, batch_sizes=_ints(batches_text, "batch sizes", 256),
                                 seq_lens=_ints(seqs_text, "sequence lengths", 512), repeats=n_repeats,
                                 architecture_only=bool(arch_only))
        if not SWEEP_LOCK.acquire(blocking=False):
            raise gr.Error("another benchmark is running; try again when it has finished.", print_exception=False)
        STOP.clear()
        try:
            result = sweep(registry.config, settings, cache=registry.cache,
                           progress=lambda done, total, what: progress((done, total), desc=what),
                           stop=STOP.is_set)
        except (ConfigError, LoadError) as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        finally:
            SWEEP_LOCK.release()
        paths = write_outputs(result, scratch_dir("bench-"))
        figures = bench_figures(result)
        return (result.to_dict(), bench_markdown(result), figures[0] if figures else None,
                [str(p) for p in paths.values()])

    run.click(run_sweep, inputs=[task, variants, batch_sizes, seq_lens, repeats, architecture_only],
              outputs=[summary, table, chart, files], api_name="benchmark", concurrency_id="benchmark",
              concurrency_limit=1)
    cancel.click(STOP.set, api_name="cancel_benchmark", queue=False)
