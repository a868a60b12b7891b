"""int8 on the fastest backend of this machine: ONNX Runtime's dynamic int8 or OpenVINO's static int8,
chosen by measuring both on first use. Which one wins depends on the CPU (OpenVINO on the AVX-512 VNNI
machines measured, ONNX Runtime on an AVX2-only EPYC: docs/results.md, "Which variant to ship"), so the
choice is measured, cached per CPU and model, and said with both timings.

A backend whose probabilities move away from the fp32 model's (a mean total-variation distance over
MAX_SHIFT: a broken quantisation) is not chosen however fast it is. Checked on the model's own kind of
text where its run recorded its training file (never the evaluation file), else on generic sentences:
mixed generic text sits outside the ranges a statically calibrated int8 model was measured on and near a
classifier's boundary (a shift of 0.21 and 0.875 argmax agreement there, for an OpenVINO student that keeps
0.994 of its answers on SST-2). The benchmark measures agreement on a labelled file.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path

import torch

from demo.core.measure import cpu_name, interleaved_timing
from demo.models import onnx_variants, openvino_variants
from demo.models.inputs import GENERIC_SENTENCES, model_inputs
from demo.models.loading import LoadedModel, LoadError

log = logging.getLogger(__name__)

CHOICES_FILE = "int8-choice.json"  # beside the ONNX cache: one entry per (CPU, model)
TIMING_SHAPE = (8, 128)  # sequences x tokens per timed call: the benchmark's headline shape
REPEATS, WARMUP = 10, 2  # interleaved rounds: enough to rank two backends, a few seconds on 2 cores
MAX_SHIFT = 0.05  # mean total-variation distance from the fp32 probabilities; above: never chosen


def _choices_path() -> Path:
    return Path(onnx_variants.CACHE_ROOT) / CHOICES_FILE  # read when called: tests move the cache


def _key(source: LoadedModel) -> str:
    return f"{cpu_name()} | {os.cpu_count()} cpus | {onnx_variants.onnx_file(source, int8=False).parent.name}"


def _build(backend: str, source: LoadedModel, threads: int) -> LoadedModel:
    if backend == "onnxruntime":
        return onnx_variants.export(source, int8=True, threads=threads)
    return openvino_variants.export(source, GENERIC_SENTENCES, threads)


def _candidates(source: LoadedModel, threads: int) -> dict[str, LoadedModel]:
    found, why = {}, {}
    for backend in ("onnxruntime", "openvino"):
        try:
            found[backend] = _build(backend, source, threads)
        except LoadError as exc:
            why[backend] = exc.reason
    if not found:
        raise LoadError(source.name, "no int8 backend could be built here (" + "; ".join(why.values()) + ").",
                        "The fp32 model still runs.")
    return found


def _texts(source: LoadedModel, n: int, words: int) -> list[str]:
    mask = source.tokenizer.mask_token if source.task == "fill_mask" and source.tokenizer is not None else None
    texts = []
    for i in range(n):
        text = " ".join(GENERIC_SENTENCES[(i + k) % len(GENERIC_SENTENCES)] for k in range(words // 10 + 1)).split()
        if mask:
            text[3] = mask
        texts.append(" ".join(text[:words]))
    return texts


def _inputs(model: LoadedModel, texts: list[str], length: int) -> dict[str, torch.Tensor]:
    if model.tokenizer is None:  # architecture only: random ids, as the benchmark times it
        g = torch.Generator().manual_seed(length)
        ids = torch.randint(1000, model.model.config.vocab_size, (len(texts), length), generator=g)
        return model_inputs(model.model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, model.device)
    enc = model.tokenizer(texts, padding="max_length", truncation=True, max_length=length, return_tensors="pt")
    return model_inputs(model.model, enc, model.device)


def _probabilities(model: LoadedModel, inputs: dict) -> torch.Tensor:
    with torch.inference_mode():
        return model.model(**inputs).logits.float().softmax(-1)


def measure(source: LoadedModel, candidates: dict[str, LoadedModel]) -> dict:
    """Each backend's p50 ms at TIMING_SHAPE (interleaved rounds) and how far its probabilities move from the
    fp32 model's (mean total-variation distance)."""
    batch, length = TIMING_SHAPE
    timed = {name: _inputs(m, _texts(source, batch, length), length) for name, m in candidates.items()}
    calls = {name: (lambda m=m, x=timed[name]: m.model(**x).logits) for name, m in candidates.items()}
    with torch.inference_mode():
        stats = interleaved_timing(calls, torch.device("cpu"), REPEATS, WARMUP)
    # the model's own kind of text where its run recorded it (another sample than calibration's), else generic
    checked = openvino_variants.own_training_texts(source, n=64, seed=1) or _texts(source, 32, 24)
    reference = _probabilities(source, _inputs(source, checked, 64))
    shift = {name: round(float((_probabilities(m, _inputs(m, checked, 64)) - reference).abs().sum(-1).mean() / 2), 4)
             for name, m in candidates.items()}
    return {"p50_ms": {name: round(s.p50_ms, 2) for name, s in stats.items()}, "shift": shift,
            "shape": f"batch {batch} x {length} tokens", "cpu": cpu_name()}


def pick(measured: dict) -> str:
    """The fastest backend among those within MAX_SHIFT of the fp32 probabilities (else the most faithful)."""
    faithful = [b for b, s in measured["shift"].items() if s <= MAX_SHIFT]
    if not faithful:
        return min(measured["shift"], key=measured["shift"].get)
    return min(faithful, key=lambda b: measured["p50_ms"][b])


def sentence(measured: dict, chosen: str) -> str:
    """The choice and both timings, for a status line, a report or a chart note."""
    times = ", ".join(f"{b} {ms:.1f} ms" for b, ms in sorted(measured["p50_ms"].items(), key=lambda x: x[1]))
    return f"int8 on {chosen}, the fastest here ({times} at {measured['shape']}; {measured['cpu']})"


def fastest(source: LoadedModel, threads: int) -> LoadedModel:
    """source as int8 on the backend that measured fastest on this machine; the choice is cached (per CPU
    and model) and written on the result as its `note`. With a cached choice only that backend is built;
    without one (or when it no longer builds here) both are built and measured."""
    path, key = _choices_path(), _key(source)
    known = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    measured = known.get(key)
    if measured is not None and "shift" in measured:
        chosen = pick(measured)
        try:
            built = _build(chosen, source, threads)
            log.info("%s: %s (cached choice)", source.name, sentence(measured, chosen))
            return replace(built, note=sentence(measured, chosen))
        except LoadError:
            pass  # the cached backend does not build here any more: measure both again
    candidates = _candidates(source, threads)
    if measured is None or "shift" not in measured or set(measured["p50_ms"]) != set(candidates):
        measured = measure(source, candidates)
        if not source.random_weights:  # architecture-only weights are new every run: nothing to reuse
            known[key] = measured
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(known, indent=1), encoding="utf-8")
    chosen = pick(measured)
    log.info("%s: %s", source.name, sentence(measured, chosen))
    return replace(candidates[chosen], note=sentence(measured, chosen))
