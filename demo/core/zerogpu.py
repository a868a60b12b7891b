"""ZeroGPU: the GPU a free Hugging Face account's Gradio Space runs on (hub-docs spaces-zerogpu).

A ZeroGPU Space has no GPU of its own. The `spaces` package lends one to a function only while it runs under
`@spaces.GPU` (for at most its `duration` seconds, counted against each visitor's daily quota), emulates
CUDA everywhere else, and wants the models placed on `cuda` at start rather than inside decorated calls.
Off ZeroGPU (SPACES_ZERO_GPU unset: a laptop, a CPU Space, a dedicated GPU) nothing here imports `spaces`
and `gpu()` returns the function unchanged, so every path runs exactly as it does without it.

`spaces` is imported lazily, and only here: it must come before CUDA is initialised, and on a machine
that claims ZeroGPU but has a CPU build of torch (or no `spaces`) its import fails; the app then runs on
CPU and says why (`state().reason`) instead of crashing.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass

ZERO_GPU_ENV = "SPACES_ZERO_GPU"  # set by Hugging Face on a Space whose hardware is ZeroGPU
DEFAULT_SECONDS = 60  # spaces' own default duration for one decorated call
MAX_SECONDS = 300  # the longest call a visitor's quota could ever pay for in one go (free accounts: 5 min/day)


@dataclass(frozen=True)
class ZeroGPUState:
    requested: bool  # SPACES_ZERO_GPU is set: this is meant to be a ZeroGPU Space
    active: bool  # `spaces` imported and CUDA (emulated outside decorated calls) is visible
    reason: str = ""  # why a requested ZeroGPU is not active, in one sentence

    def device_note(self) -> str:
        """What the page's header says about where the models run."""
        if self.active:
            return ("ZeroGPU Space: a GPU is lent to each answer, evaluation, benchmark and distillation job while "
                    "it runs (the first answer of a fresh GPU worker also warms the models up, untimed); the int8 "
                    "variants stay on CPU.")
        return f"⚠️ {self.reason}" if self.requested else ""


@functools.cache
def state() -> ZeroGPUState:
    """Whether this process runs on ZeroGPU, decided once (importing `spaces` patches torch)."""
    if os.environ.get(ZERO_GPU_ENV, "").strip().lower() not in ("1", "t", "true"):
        return ZeroGPUState(requested=False, active=False)
    try:
        import spaces  # noqa: F401 - imported for its effect: it patches torch's CUDA for ZeroGPU
        import torch

        if not torch.cuda.is_available():
            return ZeroGPUState(True, False, "ZeroGPU is set (SPACES_ZERO_GPU) but torch sees no CUDA device, so the "
                                             "models run on CPU.")
    except Exception as exc:  # noqa: BLE001 - any failure of the import means: no GPU, said, the app runs on CPU
        why = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        return ZeroGPUState(True, False, f"ZeroGPU is set (SPACES_ZERO_GPU) but its `spaces` package could not "
                                         f"start here ({type(exc).__name__}: {why}), so the models run on CPU.")
    return ZeroGPUState(True, True)


def gpu(duration: int | Callable[..., int] = DEFAULT_SECONDS) -> Callable[[Callable], Callable]:
    """`@spaces.GPU(duration=...)` on ZeroGPU, else nothing. duration: seconds, or a function of the call's
    arguments that returns them (clipped to 1..MAX_SECONDS: a visitor's quota pays for what is asked)."""

    def decorate(fn: Callable) -> Callable:
        if not state().active:
            return fn
        import spaces

        seconds = (lambda *a, **k: clip(duration(*a, **k))) if callable(duration) else clip(duration)
        return spaces.GPU(fn, duration=seconds)

    return decorate


def clip(seconds: float) -> int:
    return int(max(1, min(MAX_SECONDS, round(seconds))))


_warmed: set = set()  # per process: a ZeroGPU worker is forked with this copied, and keeps its own


def warm_once(key, warm: Callable[[], None]) -> None:
    """On ZeroGPU the load-time warm-up cannot run (CUDA is emulated outside decorated calls), so the first
    decorated call of each GPU worker runs it, untimed, before timing anything; elsewhere the load did it."""
    if key not in _warmed:
        warm()
        _warmed.add(key)
