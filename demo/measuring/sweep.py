"""The benchmark's work: its settings, the models of each task, one timed record per point, the machine it
was measured on, and what acceleration costs in answers.

Same loading, task and timing code as the app. Each record has model-only time (pre-tokenised
tensors) and end-to-end time (tokeniser + model + post-processing), since published comparisons
differ on this. The CLI and the Benchmark tab both build a BenchSettings, so their rules are one.
"""

from __future__ import annotations

import platform
import resource
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from demo.core import scratch
from demo.core.measure import count_parameters, cpu_name, interleaved_timing, size_of_loaded
from demo.data.files import LabelledData, read_labelled
from demo.measuring import stats as speed_stats
from demo.measuring.bench_report import BenchRecord, BenchResult
from demo.measuring.evaluation import LabelMismatch, label_index, predict_batch
from demo.models import onnx_variants
from demo.models import variants as variant_table
from demo.models.architecture import build_random
from demo.models.config import PAIR, AppConfig, ConfigError
from demo.models.inputs import GENERIC_SENTENCES, model_inputs
from demo.models.loading import LoadedModel, LoadError, resolve_device
from demo.models.registry import PairRegistry, TaskUnavailable

BATCH_SIZES = (1, 8, 32)  # sequences per timed call: one request, a small batch, a throughput batch
SEQ_LENS = (16, 64, 128, 512)  # tokens per sequence: a short sentence up to BERT's limit
QUICK_BATCH_SIZES, QUICK_SEQ_LENS = (1, 8), (16, 128)  # the Benchmark tab's first sweep: seconds, not minutes
EVAL_MAX_ROWS = 1000  # labelled rows for the int8 variants' agreement check
MIN_REPEATS = 20  # timed repeats per measurement: fewer is a sample, not a percentile
DEFAULT_WARMUP = 3  # untimed repeats first: allocator, thread pool and kernel selection settle
MAX_BATCH_SIZE = 256  # sequences per timed call; larger batches only measure memory pressure
MAX_SEQ_LEN = 512  # BERT's position limit; a model with a lower one skips the longer lengths
QUALITY_FLAG = 0.01  # a variant that changes more than 1% of the fp32 student's answers is flagged
def parse_int_list(text: str, what: str) -> list[int]:
    """ "1, 8,32" -> [1, 8, 32]; the one parser for the CLI's flags and the tab's text fields."""
    try:
        return [int(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError:
        raise ConfigError(f"{what} {text!r}: give comma-separated whole numbers, e.g. 1,8.") from None


@dataclass(frozen=True)
class BenchSettings:
    """What to measure, checked on creation (the CLI's flags and the tab's fields both become one)."""

    tasks: list[str]
    variants: list[str] = field(default_factory=lambda: list(variant_table.BENCH_VARIANTS))
    batch_sizes: list[int] = field(default_factory=lambda: list(BATCH_SIZES))
    seq_lens: list[int] = field(default_factory=lambda: list(SEQ_LENS))
    repeats: int = MIN_REPEATS
    warmup: int = DEFAULT_WARMUP
    threads: int = 0  # 0: physical cores
    architecture_only: bool = False  # random weights of the real shapes: timings real, answers not
    eval_file: str | None = None  # labelled file: agreement with the fp32 student, and accuracy
    eval_text_column: str | None = None
    eval_label_column: str | None = None
    eval_max_rows: int | None = EVAL_MAX_ROWS
    eval_quoting: str = "auto"  # CSV/TSV quoting of the eval file: auto, none or csv

    def __post_init__(self):
        if not self.tasks:
            raise ConfigError("pick at least one task.")
        names = variant_table.VARIANTS
        unknown = [v for v in self.variants if v not in names]
        if not self.variants or unknown:
            raise ConfigError(f"variants: pick one or more of {', '.join(names)}"
                              + (f" ({', '.join(unknown)} is not one)." if unknown else "."))
        sources = {variant_table.variant(v).source for v in self.variants if variant_table.derived(v)}
        missing = sorted(sources - set(self.variants))
        if missing:
            raise ConfigError(f"the int8 and exported variants are compared with the fp32 model they are made from: "
                              f"add the {' and '.join(missing)} variant.")
        for name, values, upper in (("batch sizes", self.batch_sizes, MAX_BATCH_SIZE),
                                    ("sequence lengths", self.seq_lens, MAX_SEQ_LEN)):
            if not values or min(values) < 1 or max(values) > upper:
                raise ConfigError(f"{name}: give values between 1 and {upper}, e.g. 1,8.")
        if self.repeats < MIN_REPEATS:
            raise ConfigError(f"repeats: at least {MIN_REPEATS} timed repeats (fewer is a sample, not a percentile).")
        if self.warmup < 0 or self.threads < 0 or (self.eval_max_rows is not None and self.eval_max_rows < 1):
            raise ConfigError("warm-up and threads must be 0 or more, eval max rows at least 1.")
        # Variants in their fixed order, whatever order they were given in.
        object.__setattr__(self, "variants", [v for v in names if v in self.variants])

    def check_tasks(self, config: AppConfig) -> None:
        unknown = [t for t in self.tasks if t not in config.pairs]
        if unknown:
            raise ConfigError(f"task(s) {', '.join(unknown)} not in the config; configured: {', '.join(config.tasks)}.")


def bench_texts(seq_len: int, batch_size: int, mask_token: str | None) -> list[str]:
    """batch_size different texts, each long enough to fill seq_len tokens once cut."""
    texts = []
    for i in range(batch_size):
        words = []
        k = i
        while len(words) < seq_len + 8:
            words += GENERIC_SENTENCES[k % len(GENERIC_SENTENCES)].split()
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
    logits = loaded.model(**model_inputs(loaded.model, enc, loaded.device)).logits
    if loaded.task == "fill_mask":
        rows, cols = (enc["input_ids"] == tok.mask_token_id).nonzero(as_tuple=True)
        logits = logits[rows.to(logits.device), cols.to(logits.device)]
    return logits.float().softmax(-1).topk(min(5, logits.shape[-1]), dim=-1)


def model_only_inputs(loaded: LoadedModel, texts: list[str], seq_len: int) -> dict[str, torch.Tensor]:
    """Pre-tokenised tensors; random token ids where the model has no tokenizer (architecture-only)."""
    if loaded.tokenizer is None:
        vocab = loaded.model.config.vocab_size
        g = torch.Generator().manual_seed(seq_len)
        inputs = {"input_ids": torch.randint(1000, vocab, (len(texts), seq_len), generator=g),
                  "attention_mask": torch.ones(len(texts), seq_len, dtype=torch.long)}
    else:
        inputs = loaded.tokenizer(texts, padding="max_length", truncation=True, max_length=seq_len,
                                  return_tensors="pt")
    return model_inputs(loaded.model, inputs, loaded.device)


def load_variants(config: AppConfig, task: str, settings: BenchSettings, device: torch.device,
                  workdir: Path, notes: list[str], cache=None) -> dict[str, LoadedModel]:
    """The task's models, each variant that could be had; the others get a note saying why not."""
    models: dict[str, LoadedModel] = {}
    pair = config.pairs[task]
    if settings.architecture_only:
        for variant in PAIR:
            loaded, source = build_random(pair.spec(variant), task, variant, device, workdir=workdir)
            models[variant] = loaded
            notes.append(f"{task} {variant}: RANDOM WEIGHTS from the {source}; timings and sizes are real, "
                         "answers are meaningless.")
            if loaded.tokenizer is None:
                notes.append(f"{task} {variant}: no tokenizer available offline, inputs are random token ids; "
                             "end-to-end time equals model-only time.")
    else:
        registry = PairRegistry(replace(config, pairs={task: pair}, device=str(device.type)), cache=cache)
        registry.load_task(task)
        try:
            models["teacher"], models["student"] = registry.pair(task)
        except TaskUnavailable as exc:
            notes.append(f"{task}: skipped: {exc} (or run with --architecture-only to measure the shapes)")
            return {}
    for name in settings.variants:
        if not variant_table.derived(name):
            continue
        if device.type != "cpu" and variant_table.variant(name).cpu_only:
            notes.append(f"{task} {name}: skipped on {device.type}: int8 and this tool's ONNX and OpenVINO "
                         "variants are CPU techniques.")
            continue
        try:
            models[name] = variant_table.build(name, models, settings.threads)
        except LoadError as exc:
            notes.append(f"{task} {name}: not measured: {exc.reason} {exc.fix}")
            continue
        if models[name].note:
            notes.append(f"{task} {name}: {models[name].note}")
    return {v: m for v, m in models.items() if v in settings.variants}


def sweep(config: AppConfig, settings: BenchSettings, progress: Callable[[int, int, str], None] | None = None,
          stop: Callable[[], bool] | None = None, cache=None) -> BenchResult:
    """Every (task, variant, batch size, sequence length); Ctrl-C (or stop()) keeps what was measured."""
    settings.check_tasks(config)
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
                                  max_rows=settings.eval_max_rows, quoting=settings.eval_quoting)
    workdir = Path(tempfile.mkdtemp(prefix="bench-work-", dir=scratch.process_root()))  # with the app's files
    total = len(settings.tasks) * len(settings.variants) * len(settings.batch_sizes) * len(settings.seq_lens)
    done = 0
    try:
        for task in settings.tasks:
            models = load_variants(config, task, settings, device, workdir, result.notes, cache)
            source_params = {v: count_parameters(models[v].model) for v in PAIR if v in models}
            if eval_data is not None and models:
                result.quality += variant_agreement(task, models, eval_data, result.notes, QUALITY_FLAG)
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
                                                        source_params, stop)
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
                  source_params: dict[str, int], stop) -> list[BenchRecord]:
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
    timing = lambda variant: stats.get((variant, "e2e"), stats[(variant, "model")])
    for variant, loaded in models.items():
        model_stats = stats[(variant, "model")]
        size = size_of_loaded(loaded)
        source = variant_table.variant(variant).source
        # an exported or int8 graph has its fp32 model's architecture: the same parameters, stored otherwise
        params = source_params.get(source, size.params) if variant_table.derived(variant) else size.params
        records.append(BenchRecord.of(
            point=(task, batch_size, seq_len), variant=variant, loaded=loaded,
            end_to_end=stats.get((variant, "e2e"), model_stats), model_only=model_stats,
            size=replace(size, params=params),
            peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))
        if "teacher" in models and variant != "teacher":  # the same rounds timed both: paired
            ci = speed_stats.median_speedup(timing("teacher").samples_ms, timing(variant).samples_ms)
            records[-1] = replace(records[-1], speedup_low=ci.low, speedup_high=ci.high)
    return records


# ---- where it was measured: the CPU (its instruction set decides int8's speed), threads, library versions
def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or torch.get_num_threads()


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def environment(threads: int, device: torch.device) -> dict:
    import onnxruntime
    import transformers

    return {"threads": threads, "cpu": cpu_name(), "physical_cores": physical_cores(), "device": str(device),
            "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "onnxruntime": onnxruntime.__version__,
            "openvino": _version("openvino"), "nncf": _version("nncf"),
            "int8_scheme": onnx_variants.quantization_scheme(),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


# ---- what acceleration costs in answers: each variant against the fp32 model it was made from ------------
def variant_agreement(task: str, models: dict[str, LoadedModel], data: LabelledData, notes: list[str],
                      flag_share: float) -> list[dict]:
    """Agreement of each variant with the fp32 student (and accuracy) on a labelled file; the benchmark's
    cost-of-acceleration table. A variant that changes more than flag_share of the answers is flagged."""
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
        source = variant_table.variant(variant).source if variant_table.derived(variant) else "student"
        reference = preds.get(source, preds["student"])
        agree = sum(a.lower() == b.lower() for a, b in zip(labels, reference)) / len(labels)
        row = {"task": task, "variant": variant, "n_examples": len(labels), "agreement_with_student": agree,
               "changed_share": 1 - agree, "flagged": variant_table.derived(variant) and (1 - agree) > flag_share}
        try:
            gold_map = label_index(models[variant], data.labels)
            names = models[variant].id2label
            row["accuracy"] = sum(lab == names[gold_map[g]] for lab, g in zip(labels, data.labels)) / len(labels)
        except LabelMismatch as exc:
            notes.append(f"{task} {variant}: no accuracy ({exc})")
        out.append(row)
    return out
