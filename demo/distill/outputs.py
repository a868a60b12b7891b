"""What every step writes: the output directory, metrics.json, the training code, the command line."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

from ..errors import UsageError

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def check_output_dir(path: str, overwrite: bool) -> Path:
    """Refuse a non-empty directory before any work (nothing is created yet)."""
    out = Path(path)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise UsageError(f"{out} is not empty; choose another --output-dir or pass --overwrite-output-dir.")
    return out


def prepare_output_dir(path: str, overwrite: bool) -> Path:
    out = check_output_dir(path, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    return out


def copy_training_code(out: Path) -> None:
    """Ship the code that made the model beside it (the card links to it)."""
    target = out / "training"
    shutil.copytree(PACKAGE_ROOT, target / "demo", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                    dirs_exist_ok=True)
    shutil.copy2(PACKAGE_ROOT.parent / "model_card" / "template.md", target / "model_card_template.md")


def command_line(step: str, argv: list[str]) -> str:
    return "python -m demo.distill " + " ".join(shlex.quote(a) for a in [step, *argv])


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
