"""Where a timing was measured: the CPU (its instruction set decides int8's speed), threads and library versions.

Every benchmark report carries it: the same student is 3x or 9x faster in int8 depending on whether
the CPU has AVX-512 VNNI, so a figure without its machine means little.
"""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from pathlib import Path

import torch

from demo.models import onnx_variants


def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or torch.get_num_threads()


def cpu_name() -> str:
    """The processor's model name (timings differ by CPU: say which one they came from)."""
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

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
