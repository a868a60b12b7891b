"""Checkpoints of a training run: saved with accelerate (model, optimiser, scheduler, every
process's RNG), plus where the loop stood and what made the run, so that a resumed run ends as an
uninterrupted one would, and a checkpoint of another run is refused."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from demo.core.errors import UsageError

CHECKPOINTS = "checkpoints"  # under the output directory: checkpoint-<step>/
STATE_FILE = "loop_state.json"  # in each checkpoint: where the loop stood, and what made the run
BEST_FILE = "best_state.pt"  # in each checkpoint: the best epoch's weights so far


@dataclass
class RunFiles:
    """Where the main training run keeps its checkpoints and history (baselines keep none)."""

    out: Path
    fingerprint: dict  # the settings and inputs that make a run; a checkpoint must match them
    checkpoint_steps: int = 0
    keep_checkpoints: int = 2
    logging_steps: int = 50
    resume_from: str | None = None  # a checkpoint directory, or "latest"

    def checkpoint_dirs(self) -> list[Path]:
        root = self.out / CHECKPOINTS
        found = [p for p in root.glob("checkpoint-*") if (p / STATE_FILE).is_file()] if root.is_dir() else []
        return sorted(found, key=lambda p: int(p.name.split("-")[-1]))

    def resume_dir(self) -> Path | None:
        if not self.resume_from:
            return None
        if self.resume_from == "latest":
            found = self.checkpoint_dirs()
            if not found:
                raise UsageError(f"--resume-from-checkpoint latest: {self.out / CHECKPOINTS} holds no checkpoint; "
                                 "start without it (or with --checkpoint-steps N to make some).")
            return found[-1]
        path = Path(self.resume_from)
        if not (path / STATE_FILE).is_file():
            raise UsageError(f"--resume-from-checkpoint {path}: not a checkpoint of this tool (no {STATE_FILE}).")
        return path

    def check_fingerprint(self, checkpoint: Path) -> dict:
        """The checkpoint's saved loop state, if it was made by the same model, data and settings."""
        state = json.loads((checkpoint / STATE_FILE).read_text())
        saved = state.get("fingerprint", {})
        differ = sorted(k for k in set(saved) | set(self.fingerprint) if saved.get(k) != self.fingerprint.get(k))
        if differ:
            shown = ", ".join(f"{k} ({saved.get(k)!r} there, {self.fingerprint.get(k)!r} now)" for k in differ[:4])
            raise UsageError(f"checkpoint {checkpoint} was made by another model or other settings: {shown}. "
                             "Resume with the run's own settings, or start a new run.")
        return state


def save_checkpoint(accelerator, run: RunFiles, state: dict, best_state: dict | None) -> Path:
    """Model, optimiser, scheduler and every process's RNG (accelerate), plus where the loop stood
    and the best epoch's weights so far; older checkpoints beyond --keep-checkpoints are removed."""
    path = run.out / CHECKPOINTS / f"checkpoint-{state['step']}"
    accelerator.save_state(str(path))
    if accelerator.is_main_process:
        if best_state is not None:
            torch.save(best_state, path / BEST_FILE)
        (path / STATE_FILE).write_text(json.dumps({"fingerprint": run.fingerprint, "loop": state}, indent=1))
        for old in run.checkpoint_dirs()[:-run.keep_checkpoints] if run.keep_checkpoints else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return path
