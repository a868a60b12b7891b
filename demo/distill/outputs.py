"""What every step writes: the output directory, metrics.json, the training code, the command line."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

from demo.core.errors import UsageError
from demo.core.formatting import json_text
from demo.distill.args import settings_dict
from demo.models.onnx_variants import export_fp32, quantize_int8

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def check_output_dir(path: str, overwrite: bool, resuming: bool = False) -> Path:
    """Refuse a non-empty directory before any work (nothing is created yet); resuming writes into
    the run's own directory."""
    out = Path(path)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not (overwrite or resuming):
        raise UsageError(f"{out} is not empty; choose another --output-dir, pass --overwrite-output-dir, or "
                         "--resume-from-checkpoint latest to continue the run it holds.")
    return out


def prepare_output_dir(path: str, overwrite: bool, resuming: bool = False) -> Path:
    out = check_output_dir(path, overwrite, resuming)
    out.mkdir(parents=True, exist_ok=True)
    if not resuming:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # an older run's: never resumed by mistake
    return out


def run_fingerprint(*settings, **inputs) -> dict:
    """What makes a run (every training-relevant flag, plus e.g. the teacher's weights digest):
    a checkpoint resumes only into a run with the same fingerprint."""
    out = settings_dict(*settings, training_only=True)  # flags marked reporting() are left out
    return json.loads(json.dumps({**out, **inputs}, default=str))


def copy_training_code(out: Path) -> None:
    """Ship the code that made the model beside it (the card links to it)."""
    target = out / "training"
    shutil.copytree(PACKAGE_ROOT, target / "demo", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                    dirs_exist_ok=True)
    shutil.copy2(PACKAGE_ROOT.parent / "model_card" / "template.md", target / "model_card_template.md")


def command_line(step: str, argv: list[str]) -> str:
    return "python -m demo.distill " + " ".join(shlex.quote(a) for a in [step, *argv])


def write_json(path: Path, data: dict) -> None:
    path.write_text(json_text(data) + "\n", encoding="utf-8")


ONNX_DIR = "onnx"  # the layout Transformers.js and optimum repos use: onnx/model.onnx, onnx/model_quantized.onnx


def write_onnx(out: Path, task: str) -> list[Path]:
    """The saved student as ONNX, fp32 and dynamic int8 (the app's int8 path), under out/onnx/ so that it
    is published with the model. task: "classify" or "fill_mask"."""
    fp32, int8 = out / ONNX_DIR / "model.onnx", out / ONNX_DIR / "model_quantized.onnx"
    export_fp32(out, task, fp32)
    quantize_int8(fp32, int8)
    return [fp32, int8]
