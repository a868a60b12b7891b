"""What a distillation run shows the visitor: where its script is published, the recipe, the figures.

Plain data read from an output directory of `python -m demo.distill distill` (metrics.json,
history.jsonl, the model card), local or downloaded from the Hub repo the config names. No Gradio:
the Distillation tab renders what this returns, charts.py draws it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from demo.core.formatting import code, human_count, md_escape, without_paths
from demo.models.config import DistillationLink
from demo.models.loading import hub_reachable

# The training script's files, in the order a reader would open them.
SCRIPT_FILES = ("cli.py", "steps.py", "kd.py", "general.py", "objectives.py", "losses.py", "student.py", "loop.py")
SCRIPT_DIR = Path(__file__).resolve().parents[1] / "distill"
REFERENCE_RUN = Path(__file__).resolve().parents[2] / "docs" / "reference-run"  # shown when none is configured
EXAMPLE_COMMAND = ("python -m demo.distill distill --teacher TEACHER --student-layers 3 --train-file TRAIN "
                   "--validation-file VAL --baselines --eval-file other=OTHER_DOMAIN --output-dir STUDENT")


def script_markdown(link: DistillationLink | None, space_id: str | None) -> str:
    """Where the training script is, as links only where they lead somewhere real.

    A Space serves its own files (`SPACE_ID`); a published student carries its training code
    under training/ (the CLI uploads it); locally, the path and the command.
    """
    lines = ["### The training script"]
    if space_id:
        base = f"https://huggingface.co/spaces/{space_id}/blob/main/demo/distill"
        lines.append("This Space's own copy: " + " · ".join(f"[{name}]({base}/{name})" for name in SCRIPT_FILES))
    if link is not None and link.hub_repo:
        repo_url = f"https://huggingface.co/{link.hub_repo}"
        lines.append(f"Published with the student: [{md_escape(link.hub_repo)}]({repo_url}) "
                     f"(weights, model card, and the code that made them under "
                     f"[training/](https://huggingface.co/{link.hub_repo}/tree/main/training)).")
    lines.append(f"On this machine: {code(str(SCRIPT_DIR))} ({', '.join(SCRIPT_FILES)}); run it with "
                 f"{code('python -m demo.distill distill --help')}.")
    return "\n\n".join(lines)


class EvidenceError(RuntimeError):
    """An output directory that cannot be shown, with what to do about it."""


@dataclass
class Evidence:
    """One distillation run: its metrics.json, its history.jsonl lines, where they came from."""

    source: str
    metrics: dict
    history: list[dict] = field(default_factory=list)

    @classmethod
    def from_dir(cls, path: str | Path) -> Evidence:
        path = Path(path)
        metrics_file = path / "metrics.json"
        if not metrics_file.is_file():
            raise EvidenceError(f"{path} holds no metrics.json: point distillation.output_dir at the output "
                                "directory of `python -m demo.distill distill`.")
        try:
            metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
            history_file = path / "history.jsonl"
            history = [json.loads(line) for line in history_file.read_text(encoding="utf-8").splitlines()
                       if line.strip()] if history_file.is_file() else []
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise EvidenceError(f"{path}: its metrics or history are not valid JSON ({exc}).") from None
        mlm_student = metrics.get("objective") == "mlm" and "student" in metrics.get("masked_lm", {})
        if "student_accuracy" not in metrics and not mlm_student:
            raise EvidenceError(f"{path}/metrics.json is not a distillation run's (no student figures); a "
                                "finetune output shows no student.")
        if not history:  # runs made before history.jsonl: the per-epoch rows of metrics.json
            history = [{**row, "evaluated": True} for row in metrics.get("history", [])]
        return cls(source=str(path), metrics=metrics, history=history)

    @property
    def figures(self) -> dict:
        return chart_figures(self.metrics)

    def recipe_markdown(self) -> str:
        m = self.metrics
        args = m.get("args", {})
        data = (", ".join(f"{n:,} {kind}" for kind, n in (m.get("data") or {}).items() if n) or
            f"{m.get('n_train', 0):,} {'raw text' if m.get('objective') == 'mlm' else 'labelled'}")
        train = args.get("train_file")  # a list since --objective mlm takes several; a string in older runs
        files = (train if isinstance(train, list) else [train]) + [f.get("file") for f in m.get("transfer_files") or []]
        weights = ", ".join(f"{k} {v}" for k, v in (m.get("loss_weights") or {}).items() if v)
        minutes = m.get("train_seconds", 0) / 60
        lines = ["### The recipe that produced this student",
                 f"```\n{without_paths(m.get('command', '(command not recorded)'))}\n```",  # a visitor reads it
                 f"- **Data**: {data} rows ({', '.join(code(short_path(f)) for f in files if f)})",
                 f"- **Student**: teacher layers {m.get('layers')} in the {m.get('student_arch')} shape, "
                 f"{human_count(m.get('student_params', 0))} parameters "
                 f"(teacher {human_count(m.get('teacher_params', 0))})",
                 f"- **Loss weights**: {weights}",
                 f"- **Training**: {m.get('total_steps', 0):,} optimiser steps in {minutes:.1f} min on "
                 f"{m.get('num_processes', 1)} process(es), best epoch {m.get('best_epoch')}",
                 f"- **Read from**: {code(without_paths(str(self.source)))}"]
        return "\n".join(lines)


def short_path(path: str) -> str:
    """A data file by its folder and name: several runs' files are all called train.tsv."""
    return "/".join(Path(path).parts[-2:])


def _ci(intervals: dict | None, name: str) -> list | None:
    """[low, high] of a figure's 95% interval, where the run recorded one (runs before intervals did not)."""
    e = (intervals or {}).get(name) or {}
    return [e["low"], e["high"]] if e.get("low") is not None and e.get("high") is not None else None


def chart_figures(metrics: dict) -> dict:
    """The figures the tab charts, whichever objective made the run (for a general-distillation run the
    held-out top-1 masked-token accuracy takes the place of validation accuracy), each with its 95%
    interval under "ci" and each baseline with the distilled student's paired lead over it ("lead")."""
    if metrics.get("objective") != "mlm":
        ci = metrics.get("intervals")
        return {**metrics, "score_name": "validation accuracy",
                "ci": {k: _ci(ci, k) for k in ("teacher_accuracy", "student_accuracy", "retention")},
                "baselines": [{**b, "ci": _ci(b.get("intervals"), "accuracy"),
                               "lead": (b.get("paired") or {}).get("sentence")}
                              for b in metrics.get("baselines") or []],
                "eval_sets": {name: {**e, "ci": _ci(e.get("intervals"), "retention")}
                              for name, e in (metrics.get("eval_sets") or {}).items()}}
    r = metrics["masked_lm"]
    ci = r.get("intervals")
    return {"score_name": "held-out top-1 masked-token accuracy",
            "teacher_accuracy": r["teacher"]["top1_accuracy"], "student_accuracy": r["student"]["top1_accuracy"],
            "retention": r["retention_top1"], "speedup": r["speedup"],
            "ci": {"teacher_accuracy": _ci(ci, "teacher_top1_accuracy"),
                   "student_accuracy": _ci(ci, "student_top1_accuracy"), "retention": _ci(ci, "retention_top1")},
            "teacher_total_ms": r["teacher"]["seconds"] * 1000, "student_total_ms": r["student"]["seconds"] * 1000,
            "teacher_params": metrics["teacher_params"], "student_params": metrics["student_params"],
            "baselines": [{"name": b["name"], "accuracy": b["masked_lm"]["student"]["top1_accuracy"],
                           "ci": _ci(b["masked_lm"].get("intervals"), "student_top1_accuracy"),
                           "lead": mlm_lead(b)} for b in metrics.get("baselines") or []],
            "eval_sets": {name: {"retention": e["retention_top1"], "ci": _ci(e.get("intervals"), "retention_top1")}
                          for name, e in (metrics.get("eval_sets") or {}).items()}}


def mlm_lead(baseline: dict) -> str | None:
    """The general-distilled student against a baseline on the same masked tokens, in words."""
    p = baseline.get("paired_top1")
    if not p:
        return None
    a, b = p["student_right_baseline_wrong"], p["baseline_right_student_wrong"]
    lead = (a - b) / p["n_masked"] * 100
    if p.get("mcnemar_p") is None:
        return f"against {baseline['name']}: no token where they differ"
    verdict = "ahead" if p["mcnemar_p"] < 0.05 and lead > 0 else "behind" if p["mcnemar_p"] < 0.05 else "level"
    return (f"against {baseline['name']}: {lead:+.1f} points of top-1 ({a:,} tokens only the student gets right, "
            f"{b:,} only the baseline), exact McNemar p = {p['mcnemar_p']:.3g}: "
            + {"ahead": "ahead", "behind": "behind", "level": "no detectable difference"}[verdict])


def reference_link() -> DistillationLink | None:
    """The repository's reference run (its metrics.json, history.jsonl and card, no weights), where present."""
    return DistillationLink(output_dir=str(REFERENCE_RUN)) if (REFERENCE_RUN / "metrics.json").is_file() else None


def reference_note() -> str:
    """Said above a reference run: what it is, how to reproduce it, how to make one's own."""
    return ("**No distillation run is configured for this app: shown is the project's reference run**, made by "
            "this CLI (the MiniLM teacher fine-tuned on 20,000 SST-2 rows, a 3-layer student distilled from 1,000 "
            "labelled rows with the CLI's defaults, the teacher labelling 20 variants of each, beside the same "
            "student trained on the labels alone; metrics, curves and card only, no weights). The recipe below "
            "names its command; docs/results.md (\"The reference run\") reproduces it from scratch. Distil your own "
            "in the **Distil a student** tab, or name a run of yours in the config:\n\n```yaml\ndistillation:\n  "
            "output_dir: STUDENT   # and/or hub_repo: you/name\n```")


def load_evidence(link: DistillationLink | None) -> tuple[Evidence | None, str]:
    """The run to show and a note (said above it); (None, why) when there is none to show. Without a
    configured run: the repository's reference run."""
    if link is None:
        reference = reference_link()
        if reference is not None:
            try:
                shown = Evidence.from_dir(reference.output_dir)
                return shown, reference_note()
            except EvidenceError:
                pass
        return None, ("No distillation run is configured. A run of `python -m demo.distill distill` writes the "
                      "student, `metrics.json` (accuracy, retention, speedup, baselines, other test sets) and "
                      "`history.jsonl` (the training curves); name its directory in the config to show them here:\n\n"
                      f"```\n{EXAMPLE_COMMAND}\n```\n\n```yaml\ndistillation:\n  output_dir: STUDENT   # and/or "
                      "hub_repo: you/name\n```")
    if link.output_dir:
        try:
            return Evidence.from_dir(link.output_dir), ""
        except EvidenceError as exc:
            return None, str(exc)
    if not hub_reachable():
        return None, (f"The run's figures live on the Hub ({link.hub_repo}), which cannot be reached from here. "
                      "Set distillation.output_dir to a local copy of the output directory.")
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(link.hub_repo, allow_patterns=["metrics.json", "history.jsonl"])
        return Evidence.from_dir(local), ""
    except EvidenceError as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - no network, no such repo: said, the app goes on
        return None, (f"The run's figures could not be fetched from {link.hub_repo} "
                      f"({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}). Set "
                      "distillation.output_dir to a local copy of the output directory.")
