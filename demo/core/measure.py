"""Timing and size, measured one way for the app, the benchmark and the evaluator, and the CPU they ran on.

Timing follows the benchmark habit: the clock starts before tokenisation and stops after
post-processing, with the GPU synchronised first so queued kernels are counted, and no two
timed passes ever overlap (INFERENCE_LOCK): on a shared CPU each would slow the other down.
"""

from __future__ import annotations

import math
import platform
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")

# Held by every timed pass in this process (the app's requests, the benchmark, the evaluator):
# two forward passes timed at once on a shared CPU would each slow the other down.
INFERENCE_LOCK = threading.Lock()


def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work so that a timing covers it."""
    kind = torch.device(device).type
    if kind == "cuda":
        torch.cuda.synchronize()
    elif kind == "mps":
        torch.mps.synchronize()


def timed(fn: Callable[[], T], device: torch.device | str = "cpu") -> tuple[T, float]:
    """Run fn once; return its result and wall time in milliseconds (device synchronised)."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, (time.perf_counter() - start) * 1000.0


def timed_exclusive(fn: Callable[[], T], device: torch.device | str = "cpu") -> tuple[T, float]:
    """timed(), holding the inference lock: nothing else in this process runs a model meanwhile."""
    with INFERENCE_LOCK:
        return timed(fn, device)


def percentile(values: Sequence[float], q: float) -> float:
    """numpy's linear-interpolated percentile, q in [0, 100]; NaN for no values (numpy would raise)."""
    return float(np.percentile(values, q)) if len(values) else math.nan


@dataclass(frozen=True)
class LatencyStats:
    """Summary of repeated timings, in milliseconds."""

    n: int
    p50_ms: float
    p95_ms: float
    min_ms: float
    mean_ms: float
    samples_ms: tuple = field(default=(), repr=False, compare=False)  # in timing order: paired with other calls'

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> LatencyStats:
        if not samples_ms:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        return cls(len(samples_ms), percentile(samples_ms, 50), percentile(samples_ms, 95),
                   min(samples_ms), sum(samples_ms) / len(samples_ms), tuple(samples_ms))

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "samples_ms"}


@dataclass(frozen=True)
class SizeReport:
    """How big a model is: parameters, weight bytes on disk, tensor bytes in memory."""

    params: int
    disk_bytes: int
    memory_bytes: int

    def to_dict(self) -> dict:
        return asdict(self)


def count_parameters(module: torch.nn.Module) -> int:
    """Unique parameters (tied embeddings counted once)."""
    seen, total = set(), 0
    for p in module.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            total += p.numel()
    return total


def memory_bytes(module: torch.nn.Module) -> int:
    """Bytes held by the module's parameter and buffer storages, each storage counted once."""
    seen, total = set(), 0
    for t in list(module.parameters()) + list(module.buffers()):
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
    return total


def size_of(module: torch.nn.Module, weight_files: Sequence) -> SizeReport:
    disk = sum(Path(f).stat().st_size for f in weight_files if Path(f).exists())
    return SizeReport(params=count_parameters(module), disk_bytes=disk, memory_bytes=memory_bytes(module))


def size_of_onnx(path) -> SizeReport:
    """Parameters and tensor bytes from an ONNX file's initializers (weights, int8 or float)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    params = mem = 0
    for init in model.graph.initializer:
        n = int(np.prod(init.dims)) if len(init.dims) else 1
        params += n
        mem += n * numpy_helper.helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
    return SizeReport(params=params, disk_bytes=Path(path).stat().st_size, memory_bytes=mem)


def size_of_openvino(xml_file) -> SizeReport:
    """Parameters and bytes of an OpenVINO model's constant tensors (an int8 weight counts one byte)."""
    import openvino as ov

    xml_file = Path(xml_file)
    params = memory = 0
    for op in ov.Core().read_model(str(xml_file)).get_ops():
        if op.get_type_name() == "Constant" and op.get_output_size() == 1:
            shape = [int(d) for d in op.get_output_shape(0)]
            count = int(np.prod(shape)) if shape else 1
            if count > 1:  # scalars are scales, zero points and shape constants, not weights
                params += count
                memory += count * op.get_output_element_type(0).size
    disk = sum(p.stat().st_size for p in (xml_file, xml_file.with_suffix(".bin")) if p.exists())
    return SizeReport(params=params, disk_bytes=disk, memory_bytes=memory)


def size_of_loaded(loaded) -> SizeReport:
    """Size of a LoadedModel, whichever runtime runs it."""
    runtime = getattr(loaded, "runtime", "pytorch")
    if runtime == "onnxruntime":
        return size_of_onnx(loaded.weight_files[0])
    if runtime == "openvino":
        return size_of_openvino(loaded.weight_files[0])
    return size_of(loaded.model, loaded.weight_files)


def interleaved_timing(calls: dict[object, Callable[[], object]], device, repeats: int, warmup: int,
                       stop: Callable[[], bool] | None = None) -> dict[object, LatencyStats]:
    """Time several calls round-robin, one repeat of each in turn (order reversed every other round).

    Timing each model in its own block lets the machine's speed drift between blocks (other tenants,
    clocks, a background job) and bends the ratios; interleaved, every call meets the same drift,
    so the speedups of one run hold even when the absolute figures wander. Warm-up first: the
    allocator, thread pools and kernel selection settle. stop() is checked before every timed call.
    """
    for _ in range(warmup):
        for fn in calls.values():
            with INFERENCE_LOCK:
                fn()
    samples: dict[object, list[float]] = {name: [] for name in calls}
    order = list(calls)
    for round_ in range(repeats):
        if stop is not None and stop():
            raise KeyboardInterrupt
        for name in order if round_ % 2 == 0 else order[::-1]:
            if stop is not None and stop():  # also between calls: a stop waits for one call at most
                raise KeyboardInterrupt
            _, ms = timed_exclusive(calls[name], device)
            samples[name].append(ms)
    return {name: LatencyStats.of(values) for name, values in samples.items()}


# ---- the machine a figure comes from: timings differ by CPU (AVX-512 VNNI or AVX2), so does int8's best backend
def cpu_name() -> str:
    """The processor's model name (timings differ by CPU: say which one they came from)."""
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()
