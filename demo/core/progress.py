"""Progress of slow work, readable wherever it goes: a tqdm bar on a terminal, plain lines in a log.

A bar redraws itself with carriage returns, which a log file (no TTY) keeps as one endless line;
there, a line is printed each time another tenth of the work is done (at most one per
MIN_SECONDS, and none for work that finishes sooner than that).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

STEPS_LOGGED = 10  # without a terminal: a line for each further tenth of the work ...
MIN_SECONDS = 5.0  # ... but not more often than this; quick work stays silent


class ProgressLine:
    """Call with (done, total[, what]); use as a context manager so the bar is closed."""

    def __init__(self, desc: str, unit: str = "items", stream: TextIO | None = None, tty: bool | None = None,
                 min_seconds: float = MIN_SECONDS, enabled: bool = True):
        self.desc, self.unit, self.enabled = desc, unit, enabled  # enabled=False: e.g. not the main process
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.min_seconds = min_seconds
        self._bar = None
        self._last_step = 0
        self._last_time = time.monotonic()
        self._printed = False

    def __call__(self, done: int, total: int, what: str = "") -> None:
        if not self.enabled:
            return
        if self.tty:
            if self._bar is None:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=total, desc=self.desc, unit=self.unit, file=self.stream, leave=False)
            if what:
                self._bar.set_postfix_str(what, refresh=False)
            self._bar.update(done - self._bar.n)
            return
        share = min(1.0, done / total) if total else 1.0
        step = int(share * STEPS_LOGGED + 1e-9)
        now = time.monotonic()
        finished_after_lines = step == STEPS_LOGGED and self._printed
        if step > self._last_step and (now - self._last_time >= self.min_seconds or finished_after_lines):
            print(f"{self.desc}: {done:,}/{total:,} {self.unit} ({share:.0%})" + (f", {what}" if what else ""),
                  file=self.stream, flush=True)
            self._last_step, self._last_time, self._printed = step, now, True

    def __enter__(self) -> ProgressLine:
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()


def quiet_library_bars() -> None:
    """Silence transformers' own bars: version 5 draws one for every load and save ("Loading weights",
    "Writing model shards"), even of a local folder in a fraction of a second; in a command's output they
    bury its own progress lines and turn its one-line errors into three. Downloads from the Hub keep
    their bars (huggingface_hub's, switched back on): those are slow and worth watching."""
    from huggingface_hub.utils import enable_progress_bars
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # also switches huggingface_hub's off ...
    enable_progress_bars()  # ... so turn those back on
