"""`python -m demo.bench`: the headless speed and size sweep -> bench.json, bench.md, bench.html.

Same loading, task and timing code as the app. Each record has model-only time (pre-tokenised
tensors) and end-to-end time (tokeniser + model + post-processing), since published comparisons
differ on this.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from . import onnx_variants
from .architecture import build_random
from .compare import INFERENCE_LOCK
from .config import ROLES, TASKS, AppConfig, ConfigError, load_config
from .datafiles import DataError, read_labelled
from .evaluation import LabelMismatch, label_index, predict_batch
from .loading import LoadedModel, LoadError, resolve_device
from .measure import LatencyStats, count_parameters, size_of_loaded, timed
from .registry import PairRegistry, TaskUnavailable
from .tasks import accepted_inputs

VARIANTS = ("teacher", "student", "student-onnx-fp32", "student-onnx-int8")
DEFAULT_REPEATS = 20  # timed repeats per measurement (the minimum); p50/p95/min over them
DEFAULT_WARMUP = 3  # untimed repeats first: allocator, thread pool and kernel selection settle
QUALITY_FLAG = 0.01  # a variant that changes more than 1% of the fp32 student's answers is flagged
# Real sentences, repeated and cut to the requested length (uncased English, varied vocabulary).
SENTENCES = [
    "the film is a gripping portrait of a family coming apart under pressure",
    "i was bored from the opening scene and the ending made it even worse",
    "a warm and funny story that never stoops to easy sentiment",
    "the acting is wooden and the plot makes no sense at all",
    "she felt a sudden surge of joy when the letter finally arrived",
    "he could not hide how angry the long delay had made him",
    "the quiet streets of the old city were covered in fresh snow",
    "our team shipped the new release two weeks ahead of schedule",
]


def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or torch.get_num_threads()


def bench_texts(seq_len: int, batch_size: int, mask_token: str | None) -> list[str]:
    """batch_size different texts, each long enough to fill seq_len tokens once cut."""
    texts = []
    for i in range(batch_size):
        words = []
        k = i
        while len(words) < seq_len + 8:
            words += SENTENCES[k % len(SENTENCES)].split()
            k += 1
        if mask_token:
            words[min(3, max(0, seq_len // 2 - 2))] = mask_token  # inside the first seq_len tokens
        texts.append(" ".join(words))
    return texts


@torch.inference_mode()
def end_to_end(loaded: LoadedModel, texts: list[str], seq_len: int):
    """Tokenise to exactly seq_len, run, post-process (top-5 labels, or top-5 tokens at the mask)."""
    tok = loaded.tokenizer
    enc = tok(texts, padding="max_length", truncation=True, max_length=seq_len, return_tensors="pt")
    accepted = accepted_inputs(loaded.model)
    inputs = {k: v.to(loaded.device) for k, v in enc.items() if k in accepted}
    logits = loaded.model(**inputs).logits
    if loaded.task == "fill_mask":
        rows, cols = (enc["input_ids"] == tok.mask_token_id).nonzero(as_tuple=True)
        logits = logits[rows.to(logits.device), cols.to(logits.device)]
    return logits.float().softmax(-1).topk(min(5, logits.shape[-1]), dim=-1)


def model_only_inputs(loaded: LoadedModel, texts: list[str], seq_len: int) -> dict[str, torch.Tensor]:
    """Pre-tokenised tensors; random token ids where the model has no tokenizer (architecture-only)."""
    accepted = accepted_inputs(loaded.model)
    if loaded.tokenizer is None:
        vocab = loaded.model.config.vocab_size
        g = torch.Generator().manual_seed(seq_len)
        inputs = {"input_ids": torch.randint(1000, vocab, (len(texts), seq_len), generator=g),
                  "attention_mask": torch.ones(len(texts), seq_len, dtype=torch.long)}
    else:
        inputs = dict(loaded.tokenizer(texts, padding="max_length", truncation=True, max_length=seq_len,
                                       return_tensors="pt"))
    return {k: v.to(loaded.device) for k, v in inputs.items() if k in accepted}


def interleaved_timing(calls: dict[str, Callable[[], object]], device, repeats: int, warmup: int,
                       stop: Callable[[], bool] | None = None) -> dict[str, LatencyStats]:
    """Time several calls round-robin, one repeat of each in turn (order reversed every other round).

    Timing each model in its own block lets the machine's speed drift between blocks (other tenants,
    clocks, a background job) and bends the ratios; interleaved, every variant meets the same drift,
    so the speedups of one run hold even when the absolute figures wander.
    """
    for _ in range(warmup):
        for fn in calls.values():
            with INFERENCE_LOCK:
                fn()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    order = list(calls)
    for round_ in range(repeats):
        if stop is not None and stop():
            raise KeyboardInterrupt
        for name in order if round_ % 2 == 0 else order[::-1]:
            with INFERENCE_LOCK:  # nothing else in this process runs a model during a timed repeat
                _, ms = timed(calls[name], device)
            samples[name].append(ms)
    return {name: LatencyStats.of(values) for name, values in samples.items()}


@dataclass
class BenchSettings:
    tasks: list[str]
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32])
    seq_lens: list[int] = field(default_factory=lambda: [16, 64, 128, 512])
    repeats: int = DEFAULT_REPEATS
    warmup: int = DEFAULT_WARMUP
    threads: int = 0  # 0: physical cores
    architecture_only: bool = False
    eval_file: str | None = None
    eval_text_column: str | None = None
    eval_label_column: str | None = None
    eval_max_rows: int | None = 1000


@dataclass
class BenchResult:
    records: list[dict] = field(default_factory=list)
    environment: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    quality: list[dict] = field(default_factory=list)
    interrupted: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def environment(threads: int, device: torch.device) -> dict:
    import onnxruntime
    import optimum.version
    import transformers

    cpu = platform.processor() or ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"threads": threads, "cpu": cpu, "physical_cores": physical_cores(), "device": str(device),
            "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "onnxruntime": onnxruntime.__version__,
            "optimum": optimum.version.__version__, "int8_scheme": onnx_variants.quantization_scheme(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def load_variants(config: AppConfig, task: str, settings: BenchSettings, device: torch.device,
                  workdir: Path, notes: list[str], cache=None) -> dict[str, LoadedModel]:
    """The task's models, each variant that could be had; the others get a note saying why not."""
    models: dict[str, LoadedModel] = {}
    pair = config.pairs[task]
    if settings.architecture_only:
        for role in ROLES:
            loaded, source = build_random(pair.spec(role), task, role, device, workdir=workdir)
            models[role] = loaded
            notes.append(f"{task} {role}: RANDOM WEIGHTS from the {source}; timings and sizes are real, "
                         "answers are meaningless.")
            if loaded.tokenizer is None:
                notes.append(f"{task} {role}: no tokenizer available offline, inputs are random token ids; "
                             "end-to-end time equals model-only time.")
    else:
        registry = PairRegistry(replace(config, pairs={task: pair}, device=str(device.type)), cache=cache)
        registry.load_task(task)
        try:
            models["teacher"], models["student"] = registry.pair(task)
        except TaskUnavailable as exc:
            notes.append(f"{task}: skipped: {exc} (or run with --architecture-only to measure the shapes)")
            return {}
    for variant in settings.variants:
        if not variant.startswith("student-onnx"):
            continue
        if device.type != "cpu":
            notes.append(f"{task} {variant}: skipped on {device.type}: dynamic int8 and this tool's ONNX "
                         "variants are CPU techniques.")
            continue
        try:
            models[variant] = onnx_variants.export(models["student"], int8=variant.endswith("int8"),
                                                   threads=settings.threads)
        except LoadError as exc:
            notes.append(f"{task} {variant}: {exc.reason} {exc.fix}")
    return {v: m for v, m in models.items() if v in settings.variants}


def measure_quality(task: str, models: dict[str, LoadedModel], data, notes: list[str]) -> list[dict]:
    """Agreement of each variant with the fp32 student (and accuracy, with labels) on an eval file."""
    if task == "fill_mask" or "student" not in models:
        return []
    try:
        label_index(models["student"], data.labels)
    except LabelMismatch:
        notes.append(f"{task}: the eval file's labels are not this task's; no agreement measured for it.")
        return []
    preds = {}
    for variant, loaded in models.items():
        ids = []
        for start in range(0, len(data.texts), 32):
            ids += predict_batch(loaded, data.texts[start:start + 32])[0]
        preds[variant] = [loaded.id2label[i] for i in ids]
    out = []
    for variant, labels in preds.items():
        agree = sum(a.lower() == b.lower() for a, b in zip(labels, preds["student"])) / len(labels)
        row = {"task": task, "variant": variant, "n_examples": len(labels), "agreement_with_student": agree,
               "changed_share": 1 - agree, "flagged": variant.startswith("student-onnx") and (1 - agree) > QUALITY_FLAG}
        try:
            gold_map = label_index(models[variant], data.labels)
            names = models[variant].id2label
            row["accuracy"] = sum(lab == names[gold_map[g]] for lab, g in zip(labels, data.labels)) / len(labels)
        except LabelMismatch as exc:
            notes.append(f"{task} {variant}: no accuracy ({exc})")
        out.append(row)
    return out


def sweep(config: AppConfig, settings: BenchSettings, progress: Callable[[int, int, str], None] | None = None,
          stop: Callable[[], bool] | None = None, cache=None) -> BenchResult:
    """Every (task, variant, batch size, sequence length); Ctrl-C (or stop()) keeps what was measured."""
    threads = settings.threads or physical_cores()
    torch.set_num_threads(threads)
    settings = replace(settings, threads=threads)
    device = resolve_device(config.device)
    result = BenchResult(environment=environment(threads, device))
    if settings.architecture_only:
        result.notes.append("ARCHITECTURE-ONLY: every model was built from its configuration with random "
                            "weights. Speed and size are those of the real architectures; no answer means anything.")
    eval_data = None
    if settings.eval_file:
        eval_data = read_labelled(settings.eval_file, settings.eval_text_column, settings.eval_label_column,
                                  max_rows=settings.eval_max_rows)
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    total = len(settings.tasks) * len(settings.variants) * len(settings.batch_sizes) * len(settings.seq_lens)
    done = 0
    try:
        for task in settings.tasks:
            models = load_variants(config, task, settings, device, workdir, result.notes, cache)
            student_params = count_parameters(models["student"].model) if "student" in models else None
            if eval_data is not None and models:
                result.quality += measure_quality(task, models, eval_data, result.notes)
            for batch_size in settings.batch_sizes:
                for seq_len in settings.seq_lens:
                    point = {}
                    for variant in settings.variants:
                        loaded = models.get(variant)
                        if loaded is not None and seq_len > loaded.max_length:
                            result.notes.append(f"{task} {variant}: seq_len {seq_len} skipped (model max "
                                                f"{loaded.max_length}).")
                        elif loaded is not None:
                            point[variant] = loaded
                    if progress:  # done so far, and what is being measured now
                        progress(done, total, f"{task} batch {batch_size} × {seq_len} tokens")
                    if point:
                        result.records += measure_point(task, point, batch_size, seq_len, settings,
                                                        student_params, stop)
                    done += len(settings.variants)
        if progress:
            progress(done, total, "done")
    except KeyboardInterrupt:
        result.interrupted = True
        result.notes.append(f"Interrupted after {len(result.records)} of {total} measurements; the records "
                            "above are complete measurements.")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # random weights and their exports: hundreds of MB
    return result


def measure_point(task, models: dict[str, LoadedModel], batch_size, seq_len, settings: BenchSettings,
                  student_params, stop) -> list[dict]:
    """One record per variant at one (batch size, sequence length), all variants timed interleaved."""
    calls = {}
    for variant, loaded in models.items():
        mask = loaded.tokenizer.mask_token if task == "fill_mask" and loaded.tokenizer is not None else None
        texts = bench_texts(seq_len, batch_size, mask)
        inputs = model_only_inputs(loaded, texts, seq_len)

        def model_only(loaded=loaded, inputs=inputs):
            with torch.inference_mode():
                return loaded.model(**inputs).logits

        calls[(variant, "model")] = model_only
        if loaded.tokenizer is not None:  # without one, end-to-end is model-only
            calls[(variant, "e2e")] = lambda loaded=loaded, texts=texts: end_to_end(loaded, texts, seq_len)
    device = next(iter(models.values())).device
    stats = interleaved_timing(calls, device, settings.repeats, settings.warmup, stop)
    records = []
    for variant, loaded in models.items():
        model_stats = stats[(variant, "model")]
        e2e = stats.get((variant, "e2e"), model_stats)
        size = size_of_loaded(loaded)
        params = student_params if variant.startswith("student-onnx") and student_params else size.params
        records.append({
            "task": task, "variant": variant, "model": loaded.name, "batch_size": batch_size, "seq_len": seq_len,
            "p50_ms": e2e.p50_ms, "p95_ms": e2e.p95_ms, "min_ms": e2e.min_ms,
            "model_p50_ms": model_stats.p50_ms, "model_p95_ms": model_stats.p95_ms,
            "model_min_ms": model_stats.min_ms, "repeats": settings.repeats,
            "throughput": batch_size / (e2e.p50_ms / 1000.0),
            "params": params, "disk_bytes": size.disk_bytes, "memory_bytes": size.memory_bytes,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "device": str(loaded.device), "dtype": loaded.dtype, "runtime": loaded.runtime,
            "random_weights": loaded.random_weights, "tokenizer": loaded.tokenizer is not None})
    return records


# ---- rendering -----------------------------------------------------------------------------------
def speedups(records: list[dict]) -> dict[tuple, float]:
    """(task, variant, batch, seq) -> teacher p50 / variant p50 (end-to-end), from the same run."""
    teacher = {(r["task"], r["batch_size"], r["seq_len"]): r["p50_ms"] for r in records if r["variant"] == "teacher"}
    return {(r["task"], r["variant"], r["batch_size"], r["seq_len"]):
            teacher[(r["task"], r["batch_size"], r["seq_len"])] / r["p50_ms"]
            for r in records if (r["task"], r["batch_size"], r["seq_len"]) in teacher}


def bench_markdown(result: BenchResult) -> str:
    from .measure import human_bytes, human_count
    from .reports import md_escape

    env = result.environment
    ups = speedups(result.records)
    lines = ["# Teacher vs student: speed and size", "",
             f"{env.get('cpu', '')} · {env.get('threads')} threads (PyTorch and ONNX Runtime alike) · device "
             f"{env.get('device')} · torch {env.get('torch')}, transformers {env.get('transformers')}, onnxruntime "
             f"{env.get('onnxruntime')}, optimum {env.get('optimum')} · int8 scheme {env.get('int8_scheme')} · "
             f"{env.get('date')}", ""]
    lines += [f"> **Note:** {md_escape(n)}" for n in result.notes if "RANDOM" in n or "ARCHITECTURE" in n][:1]
    lines += ["", "Latency is end-to-end (tokeniser + model + post-processing) unless marked *model*; "
              "speedup = teacher p50 / variant p50, end-to-end, same run.", "",
              "| task | variant | batch | seq | p50 ms | p95 ms | min ms | model p50 ms | seq/s | speedup | params | "
              "disk | memory |", "| --- " * 13 + "|"]
    for r in result.records:
        up = ups.get((r["task"], r["variant"], r["batch_size"], r["seq_len"]))
        lines.append(f"| {r['task']} | {r['variant']} | {r['batch_size']} | {r['seq_len']} | {r['p50_ms']:.1f} | "
                     f"{r['p95_ms']:.1f} | {r['min_ms']:.1f} | {r['model_p50_ms']:.1f} | {r['throughput']:.1f} | "
                     f"{up:.2f}× | {human_count(r['params'])} | {human_bytes(r['disk_bytes'])} | "
                     f"{human_bytes(r['memory_bytes'])} |" if up else
                     f"| {r['task']} | {r['variant']} | {r['batch_size']} | {r['seq_len']} | {r['p50_ms']:.1f} | "
                     f"{r['p95_ms']:.1f} | {r['min_ms']:.1f} | {r['model_p50_ms']:.1f} | {r['throughput']:.1f} | – | "
                     f"{human_count(r['params'])} | {human_bytes(r['disk_bytes'])} | {human_bytes(r['memory_bytes'])} |")
    if result.quality:
        lines += ["", "## Cost of acceleration in answers", "",
                  "| task | variant | examples | agreement with fp32 student | accuracy |", "| --- " * 5 + "|"]
        for q in result.quality:
            agree = f"{q['agreement_with_student']:.4f}"
            if q["flagged"]:
                agree = f"<span style=\"color:red\">**{agree} (changes {q['changed_share']:.1%} of answers)**</span>"
            acc = f"{q['accuracy']:.4f}" if "accuracy" in q else "–"
            lines.append(f"| {q['task']} | {q['variant']} | {q['n_examples']} | {agree} | {acc} |")
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {md_escape(n)}" for n in result.notes]
    if result.interrupted:
        lines += ["", "**This sweep was interrupted: the table holds what was measured before.**"]
    return "\n".join(lines) + "\n"


def bench_figures(result: BenchResult):
    """Latency against batch size and against sequence length, and the size bars."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from .charts import COLORS

    recs = result.records
    figs = []
    for task in dict.fromkeys(r["task"] for r in recs):
        rows = [r for r in recs if r["task"] == task]
        seq_ref = max({r["seq_len"] for r in rows}, key=lambda s: (s == 128, -abs(s - 128)))
        batch_ref = max({r["batch_size"] for r in rows}, key=lambda b: (b == 8, -abs(b - 8)))
        fig = make_subplots(rows=1, cols=3, subplot_titles=(f"p50 vs batch size (seq {seq_ref})",
                                                            f"p50 vs sequence length (batch {batch_ref})",
                                                            "weights on disk (MB)"))
        for variant in dict.fromkeys(r["variant"] for r in rows):
            color = COLORS.get(variant, "#444")
            a = sorted((r["batch_size"], r["p50_ms"]) for r in rows if r["variant"] == variant and r["seq_len"] == seq_ref)
            b = sorted((r["seq_len"], r["p50_ms"]) for r in rows if r["variant"] == variant and r["batch_size"] == batch_ref)
            fig.add_trace(go.Scatter(x=[x for x, _ in a], y=[y for _, y in a], name=variant, legendgroup=variant,
                                     line=dict(color=color)), row=1, col=1)
            fig.add_trace(go.Scatter(x=[x for x, _ in b], y=[y for _, y in b], name=variant, legendgroup=variant,
                                     showlegend=False, line=dict(color=color)), row=1, col=2)
            disk = next(r["disk_bytes"] for r in rows if r["variant"] == variant)
            fig.add_trace(go.Bar(x=[variant], y=[disk / 1e6], marker_color=color, showlegend=False), row=1, col=3)
        fig.update_xaxes(type="log", row=1, col=1, title_text="batch size")
        fig.update_xaxes(type="log", row=1, col=2, title_text="tokens")
        fig.update_yaxes(title_text="ms", row=1, col=1)
        fig.update_layout(title=f"{TASKS.get(task, task)}" + (" (random weights)" if rows[0]["random_weights"] else ""),
                          template="plotly_white", height=420)
        figs.append(fig)
    return figs


def write_outputs(result: BenchResult, out: str | Path) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"bench.json": out / "bench.json", "bench.md": out / "bench.md", "bench.html": out / "bench.html"}
    paths["bench.json"].write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    md = bench_markdown(result)
    paths["bench.md"].write_text(md, encoding="utf-8")
    import html as html_lib

    charts = "".join(f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(bench_figures(result)))
    paths["bench.html"].write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>Benchmark</title></head>"
                                   f"<body style='font-family:sans-serif'>{charts}<pre style='white-space:pre-wrap'>"
                                   f"{html_lib.escape(md)}</pre></body></html>", encoding="utf-8")
    return paths


# ---- CLI ------------------------------------------------------------------------------------------
def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated whole numbers, e.g. 1,8,32") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every value must be at least 1")
    return values


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m demo.bench", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=None, help="pairs YAML (default: pairs.yaml)")
    p.add_argument("--tasks", default=None, help="comma-separated tasks (default: all configured)")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated variants")
    p.add_argument("--batch-sizes", type=_int_list, default=[1, 8, 32])
    p.add_argument("--seq-lens", type=_int_list, default=[16, 64, 128, 512])
    p.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="timed repeats per measurement (>= 20)")
    p.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="untimed repeats first")
    p.add_argument("--threads", type=int, default=0, help="threads for PyTorch and ONNX Runtime (0: physical cores)")
    p.add_argument("--device", default=None, help="overrides the config's device")
    p.add_argument("--architecture-only", action="store_true",
                   help="random weights from each model's config (or built-in BERT/DistilBERT-base shapes)")
    p.add_argument("--eval-file", default=None, help="labelled file: agreement with the fp32 student, and accuracy")
    p.add_argument("--eval-text-column", default=None)
    p.add_argument("--eval-label-column", default=None)
    p.add_argument("--eval-max-rows", type=int, default=1000)
    p.add_argument("--out", required=True, help="directory for bench.json, bench.md and bench.html")
    args = p.parse_args(argv)
    if args.repeats < 20:
        p.error("--repeats must be at least 20: fewer is a sample, not a percentile.")
    return args


def settings_from(args, config: AppConfig) -> BenchSettings:
    tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else config.tasks
    unknown = [t for t in tasks if t not in config.pairs]
    if unknown:
        raise ConfigError(f"task(s) {', '.join(unknown)} not in the config; configured: {', '.join(config.tasks)}.")
    variants = [v.strip() for v in args.variants.split(",")]
    bad = [v for v in variants if v not in VARIANTS]
    if bad or "student" not in variants and any(v.startswith("student-onnx") for v in variants):
        raise ConfigError(f"--variants: pick from {', '.join(VARIANTS)} (ONNX variants need the student too).")
    return BenchSettings(tasks=tasks, variants=variants, batch_sizes=args.batch_sizes, seq_lens=args.seq_lens,
                         repeats=args.repeats, warmup=args.warmup, threads=args.threads,
                         architecture_only=args.architecture_only, eval_file=args.eval_file,
                         eval_text_column=args.eval_text_column, eval_label_column=args.eval_label_column,
                         eval_max_rows=args.eval_max_rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config)
        if args.device:
            config = replace(config, device=args.device)
        settings = settings_from(args, config)
        from tqdm.auto import tqdm

        bar = None

        def progress(done, total, what):
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, desc="bench", unit="measurement")
            bar.set_postfix_str(what)
            bar.update(done - bar.n)  # done counts measurements; a point finishes several at once

        result = sweep(config, settings, progress)
        if bar is not None:
            bar.close()
    except (ConfigError, DataError, LoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    paths = write_outputs(result, args.out)
    print(bench_markdown(result))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 130 if result.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
