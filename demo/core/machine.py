"""Which machine a figure comes from: timings differ by CPU (AVX-512 VNNI or AVX2 only), and so does the
fastest int8 backend."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_name() -> str:
    """The processor's model name (timings differ by CPU: say which one they came from)."""
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()
