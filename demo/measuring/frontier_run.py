"""The evaluator's `--frontier`: every variant of the configured pair (teacher and student, fp32 and int8 on
this machine's fastest backend) and any extra students (`--student DIR`, fp32 and int8), measured on the
labelled file -> frontier.json and frontier.html, and the recommendation printed. A variant that cannot be
built here, or a student of other labels, is listed as "not measured: why" and the rest go on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from demo.core.errors import UsageError, UserError
from demo.core.progress import ProgressLine
from demo.measuring.evaluation import EvalRequest, EvalSettings, LabelMismatch, label_index, read_eval_file
from demo.measuring.frontier import Frontier, measure_frontier, write_frontier
from demo.models import variants
from demo.models.config import APP_INT8, ModelSpec
from demo.models.loading import LoadedModel, load_model
from demo.models.registry import PairRegistry

DEFAULT_MARGIN = 1.0  # points of accuracy a cheaper variant may lose against the teacher, at most


def check_margin(margin: float) -> float:
    if not 0 <= margin <= 100:
        raise UsageError(f"margin {margin:g}: give the points of accuracy you accept to lose, from 0 to 100 "
                         "(e.g. 1.0).")
    return margin


Stage = Callable[[str, int, int], None]  # what is being done, as (words, done, total): the page's progress


def frontier_models(teacher: LoadedModel, student: LoadedModel, extra: list[str], gold: list[str],
                    threads: int, stage: Stage | None = None) -> tuple[dict[str, LoadedModel], dict[str, str]]:
    """name -> model for every variant that could be had here, and name -> why for the others."""
    models, skipped = {"teacher": teacher, "student": student}, {}
    for path in extra:
        name = "student:" + "/".join(Path(path).parts[-2:])  # runs' folders are often all called "student"
        try:
            other = load_model(ModelSpec(path), teacher.task, teacher.device)
            label_index(other, gold)  # a classifier of the same labels, or LabelMismatch
            models[name] = other
        except (LabelMismatch, UserError) as exc:
            skipped[name] = f"not a classifier of this file's labels ({exc})"
    sources = list(models)
    for i, source in enumerate(sources):
        name = f"{source}-int8"
        if stage is not None:
            stage(f"exporting and calibrating {name}", i, len(sources))
        if teacher.device.type != "cpu":
            skipped[name] = f"int8 is a CPU technique here; the models run on {teacher.device.type}"
            continue
        try:
            models[name] = variants.variant(APP_INT8).build(models[source], threads)  # fastest int8 here
        except UserError as exc:
            skipped[name] = str(exc)
    return models, skipped


def frontier_of(teacher: LoadedModel, student: LoadedModel, data, settings: EvalSettings, *, file: str,
                margin: float, price_per_hour: float | None, extra: list[str] = (),
                stage: Stage | None = None) -> Frontier:
    """The one way to a Frontier (the CLI and the Evaluate tab): labels checked before any export, every
    variant built, then measured on the file; stage(words, done, total) hears each step."""
    import torch

    label_index(teacher, data.labels)  # unknown labels stop the run here, before any export
    models, skipped = frontier_models(teacher, student, list(extra), data.labels, torch.get_num_threads(), stage)
    return measure_frontier(models, data.texts, data.labels, task=settings.task, file=file, margin_points=margin,
                            price_per_hour=price_per_hour, max_length=settings.max_length, not_measured=skipped,
                            stage=stage)


def evaluate_frontier(request: EvalRequest, settings: EvalSettings) -> Frontier:
    margin = check_margin(request.margin)
    data = read_eval_file(request.file, request.text_column, request.label_column, settings)
    teacher, student = PairRegistry.for_task(request.config, request.task, request.device).pair(request.task)
    with ProgressLine("measuring the frontier", unit="steps") as progress:
        progress(0, 1)
        frontier = frontier_of(teacher, student, data, settings, file=Path(request.file).name, margin=margin,
                               price_per_hour=request.price_per_hour, extra=list(request.students))
        progress(1, 1)
    skipped = frontier.not_measured
    paths = write_frontier(frontier, request.out)
    for p in frontier.points:
        print(f"  {p.name:<28} accuracy {p.accuracy['value']:.4f}, {p.p50_ms_batch1:7.1f} ms at batch 1, "
              f"{p.per_second_batch32:8.1f}/s at batch 32{'  (Pareto)' if p.pareto else ''}")
    for name, why in skipped.items():
        print(f"  {name}: not measured: {why}")
    print(frontier.recommendation())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return frontier
