"""Timing and size, measured one way for the app, the benchmark and the evaluator.

Timing follows the benchmark habit: the clock starts before tokenisation and stops after
post-processing, with the GPU synchronised first so queued kernels are counted.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence, TypeVar

import torch

T = TypeVar("T")


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


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of repeated timings, in milliseconds."""

    n: int
    p50_ms: float
    p95_ms: float
    min_ms: float
    mean_ms: float

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> "LatencyStats":
        if not samples_ms:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        return cls(len(samples_ms), percentile(samples_ms, 50), percentile(samples_ms, 95),
                   min(samples_ms), sum(samples_ms) / len(samples_ms))

    def to_dict(self) -> dict:
        return asdict(self)


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
    from pathlib import Path

    disk = sum(Path(f).stat().st_size for f in weight_files if Path(f).exists())
    return SizeReport(params=count_parameters(module), disk_bytes=disk, memory_bytes=memory_bytes(module))


def size_of_onnx(path) -> SizeReport:
    """Parameters and tensor bytes from an ONNX file's initializers (weights, int8 or float)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    params = mem = 0
    for init in model.graph.initializer:
        n = int(np.prod(init.dims)) if len(init.dims) else 1
        params += n
        mem += n * numpy_helper.helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
    from pathlib import Path

    return SizeReport(params=params, disk_bytes=Path(path).stat().st_size, memory_bytes=mem)


def size_of_loaded(loaded) -> SizeReport:
    """Size of a LoadedModel, whichever runtime runs it."""
    if getattr(loaded, "runtime", "pytorch") == "onnxruntime":
        return size_of_onnx(loaded.weight_files[0])
    return size_of(loaded.model, loaded.weight_files)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} GB"


def human_count(n: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:.0f}"
