"""The run's Accelerator: one per process, its precision checked against the device, its trackers
known and installed, and CPU processes of `accelerate launch` joined over gloo."""

from __future__ import annotations

import os

import torch

from demo.core.errors import UsageError


def check_mixed_precision(mode: str, device_type: str) -> None:
    """Refuse a precision the device cannot run, before anything is loaded."""
    if mode == "fp16" and device_type not in ("cuda", "mps"):
        raise UsageError(f"--mixed-precision fp16 needs a GPU; this run is on {device_type}. Use bf16 or no.")
    if mode == "bf16" and not bf16_supported(device_type):
        raise UsageError(f"--mixed-precision bf16: this {device_type} device cannot compute in bfloat16. "
                         "Use fp16 (GPU) or no.")


def bf16_supported(device_type: str) -> bool:
    if device_type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device_type == "mps":
        return torch.backends.mps.is_macos_or_newer(14, 0)
    return device_type == "cpu"  # PyTorch's CPU autocast computes in bfloat16 on any x86/ARM CPU


def make_accelerator(device: str, mixed_precision: str, gradient_accumulation_steps: int,
                     report_to: str = "none", project_dir: str | None = None):
    """One Accelerator per run. Outside `accelerate launch` a new run in the same process (tests,
    notebooks) may change the precision, so the single-process state is reset first."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DataLoaderConfiguration

    if mixed_precision == "no":  # the flag's default: `accelerate launch --mixed_precision X` may have set it
        mixed_precision = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        AcceleratorState._reset_state(reset_partial_state=True)
    # Without a GPU, processes started by `accelerate launch --multi_gpu` join over gloo on the CPU
    # (MULTI_CPU) only when told cpu=True; otherwise each would run alone.
    gpu = torch.cuda.is_available() or bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    cpu = device == "cpu" or (device == "auto" and not gpu)
    trackers = None if report_to == "none" else [t.strip() for t in report_to.split(",") if t.strip()]
    if trackers:
        from accelerate.tracking import get_available_trackers
        from accelerate.utils import LoggerType

        known = [t for t in LoggerType.list() if t != "all"]
        unknown = [t for t in trackers if t not in known]
        if unknown:
            raise UsageError(f"--report-to {','.join(unknown)}: not a tracker accelerate knows; pick from none, "
                             f"{', '.join(known)}.")
        missing = [t for t in trackers if t not in [str(a) for a in get_available_trackers()]]
        if missing:
            raise UsageError(f"--report-to {','.join(missing)}: not installed here; pip install {' '.join(missing)} "
                             "(or --report-to none; history.jsonl is always written).")
    accelerator = Accelerator(cpu=cpu, mixed_precision=mixed_precision,
                              gradient_accumulation_steps=gradient_accumulation_steps, log_with=trackers,
                              project_dir=project_dir,
                              dataloader_config=DataLoaderConfiguration(split_batches=True))
    check_mixed_precision(mixed_precision, accelerator.device.type)
    return accelerator
