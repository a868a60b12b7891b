"""Where a timing was measured: the CPU (its instruction set decides int8's speed), threads and library versions.

Every benchmark report carries it: the same student is 3x or 9x faster in int8 depending on whether
the CPU has AVX-512 VNNI, so a figure without its machine means little.
"""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

import torch

from demo.core.machine import cpu_name
from demo.models import onnx_variants


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
