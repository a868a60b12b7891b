"""Which variant to ship: every variant of a pair (teacher and student, fp32 and int8, and any extra
students) on one labelled file, each with its accuracy, its paired difference to the teacher, its
latency, throughput, size and cost, the Pareto front, and a recommendation: the fastest variant whose
difference to the teacher has its lower bound above minus the margin (non-inferiority), or none; and for
every other variant one sentence saying why it was not picked.

One speed measure decides and is shown: predictions per second at batch 32 (SPEED): the ranking, the
headline, the chart's axis and each reason use it; the batch-1 latency is a column of the table.

frontier_of builds every variant here and measures them; the rest is plain data in, plain data out (Frontier
renders itself as JSON and as an HTML page with a plotly chart). The evaluator's `--frontier` and the
Evaluate tab's "Which variant to ship" both ask through a FrontierRequest.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from demo.core.errors import UsageError, UserError
from demo.core.measure import LatencyStats, interleaved_timing, size_of_loaded, timed_exclusive
from demo.measuring import stats
from demo.measuring.evaluation import (
    LabelMismatch,
    label_index,
    predict_batch,
)
from demo.models import variants
from demo.models.config import APP_INT8, ModelSpec
from demo.models.loading import LoadedModel, load_model

REPEATS, WARMUP = 20, 3
SPEED = "predictions/s at batch 32"  # the one measure that ranks, heads the page and draws the chart


DEFAULT_MARGIN = 1.0  # points of accuracy a cheaper variant may lose against the teacher, at most


def check_margin(margin: float) -> float:
    if not 0 <= margin <= 100:
        raise UsageError(f"margin {margin:g}: give the points of accuracy you accept to lose, from 0 to 100 "
                         "(e.g. 1.0).")
    return margin


@dataclass(frozen=True)
class FrontierRequest:
    """Which variant to ship for one labelled file, asked by name (the evaluator's flags, the Evaluate tab's
    fields): the cheapest within margin_points of the teacher, costed at price_per_hour (None: ranked by
    throughput alone). The margin is checked where the request is made."""

    task: str
    file: str  # the labelled file's name, as the report says it
    margin_points: float = DEFAULT_MARGIN
    price_per_hour: float | None = None
    max_length: int = 128  # tokens per text
    students: tuple[str, ...] = ()  # further students of the same labels (directories), measured fp32 and int8

    def __post_init__(self):
        check_margin(self.margin_points)


@dataclass
class Point:
    """One variant on the file."""

    name: str
    runtime: str
    accuracy: dict  # Estimate.to_dict()
    macro_f1: dict
    vs_teacher: dict  # PairedComparison.to_dict(): the variant minus the teacher, in accuracy
    p50_ms_batch1: float
    per_second_batch32: float
    params: int
    disk_bytes: int
    cost_per_million: float | None  # at the price given; None without one
    note: str = ""
    pareto: bool = False
    reason: str = ""  # why it was not the recommendation (empty for the one recommended)

    def non_inferior(self, margin_points: float) -> bool:
        low = self.vs_teacher["difference"].get("low")
        return self.name == "teacher" or (low is not None and low * 100 > -margin_points)


@dataclass
class Frontier:
    task: str
    file: str
    n_examples: int
    margin_points: float
    price_per_hour: float | None
    points: list[Point] = field(default_factory=list)
    not_measured: dict[str, str] = field(default_factory=dict)  # variant -> why
    recommended: str | None = None

    def to_dict(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k != "points"}, "speed_measure": SPEED,
                "points": [asdict(p) for p in self.points], "recommendation": self.recommendation(),
                "reasons": self.reasons()}

    def reasons(self) -> dict[str, str]:
        """variant -> why it was not picked: every variant measured but the pick, and every one not measured."""
        return {**{p.name: p.reason for p in self.points if p.name != self.recommended},
                **{n: f"not measured: {w}" for n, w in self.not_measured.items()}}

    def point(self, name: str) -> Point:
        return next(p for p in self.points if p.name == name)

    def recommendation(self) -> str:
        """The answer in plain words, with the figures it rests on."""
        if self.recommended is None:
            return (f"No variant qualifies: none is within {self.margin_points:g} points of the teacher on "
                    f"{self.n_examples:,} rows of {self.file} (lower bound of its 95% interval).")
        p, teacher = self.point(self.recommended), self.point("teacher")
        d = p.vs_teacher["difference"]
        cheaper = f"{p.per_second_batch32 / teacher.per_second_batch32:.1f}x the teacher's {SPEED}"
        if p.cost_per_million and teacher.cost_per_million:  # the same ratio, in money, at the price given
            cheaper += f" ({p.cost_per_million:,.2f} against {teacher.cost_per_million:,.2f} per million predictions)"
        if p.name == "teacher":
            return f"Ship the teacher: no smaller or int8 variant stays within {self.margin_points:g} points of it."
        diff = (f"{d['value'] * 100:+.1f} points [{d['low'] * 100:+.1f}, {d['high'] * 100:+.1f}]"
                if d.get("low") is not None else "no row where they differ")
        return (f"Ship {p.name}: {cheaper}, {diff} against the teacher, within your {self.margin_points:g}-point "
                f"margin ({self.n_examples:,} rows of {self.file}).")


def _answers_and_batch_timing(models: dict[str, LoadedModel], texts: list[str], max_length: int,
                              stage=None) -> tuple[dict[str, list[int]], dict]:
    """Every variant's answers on the file, a batch of 32 rows at a time, the variants taking turns on each
    batch (order reversed every other batch): the pass that scores them also times them at batch 32, on the
    file's own rows and with every variant meeting the same drift. The last, partial batch is not timed."""
    names, device = list(models), next(iter(models.values())).device
    answers: dict[str, list[int]] = {n: [] for n in names}
    samples: dict[str, list[float]] = {n: [] for n in names}
    starts = list(range(0, len(texts), 32))
    for i, start in enumerate(starts):
        if stage is not None and i % 8 == 0:
            stage(f"answering and timing every variant on the rows ({start:,} of {len(texts):,})", start, len(texts))
        chunk = texts[start:start + 32]
        for name in names if i % 2 == 0 else names[::-1]:
            (ids, _), ms = timed_exclusive(lambda n=name, c=chunk: predict_batch(models[n], c, max_length), device)
            answers[name] += ids
            if len(chunk) == 32:
                samples[name].append(ms)
    if not samples[names[0]]:  # fewer than 32 rows: time a full batch of them, repeated
        return answers, _timings(models, texts, max_length, (32,))[32]
    return answers, {n: LatencyStats.of(v) for n, v in samples.items()}


def _timings(models: dict[str, LoadedModel], texts: list[str], max_length: int,
             batches: tuple[int, ...] = (1,)) -> dict[int, dict]:
    """Interleaved timing of a batch of the file's first rows (batch 1: one request's latency)."""
    out = {}
    for batch in batches:
        chunk = (texts * batch)[:batch]
        calls = {name: (lambda m=m, c=chunk: predict_batch(m, c, max_length)) for name, m in models.items()}
        out[batch] = interleaved_timing(calls, next(iter(models.values())).device, REPEATS, WARMUP)
    return out


def measure_frontier(models: dict[str, LoadedModel], texts: list[str], gold: list[str], request: FrontierRequest,
                     not_measured: dict[str, str] | None = None, stage=None) -> Frontier:
    """models: variant name -> loaded model, "teacher" among them; gold: the file's label names;
    stage(words, done, total): each step said as it starts."""
    margin_points, price_per_hour, max_length = request.margin_points, request.price_per_hour, request.max_length
    frontier = Frontier(request.task, request.file, len(texts), margin_points, price_per_hour,
                        not_measured=dict(not_measured or {}))
    hits, f1 = {}, {}
    indexes = {name: label_index(model, gold) for name, model in models.items()}  # LabelMismatch: said by the caller
    answers, batch32 = _answers_and_batch_timing(models, texts, max_length, stage)
    for name in models:
        predicted, wanted = answers[name], [indexes[name][g] for g in gold]
        hits[name] = [p == w for p, w in zip(predicted, wanted)]
        f1[name] = stats.macro_f1_estimate(predicted, wanted).to_dict()
    if stage is not None:
        stage(f"timing every variant at batch 1, interleaved ({REPEATS} repeats)", len(texts), len(texts))
    timing = {**_timings(models, texts, max_length), 32: batch32}
    for name, model in models.items():
        size = size_of_loaded(model)
        per_second = 32 / (timing[32][name].p50_ms / 1000)
        frontier.points.append(Point(
            name=name, runtime=model.runtime, note=model.note or "",
            accuracy=stats.proportion(sum(hits[name]), len(texts)).to_dict(),
            macro_f1=f1[name],
            vs_teacher=stats.paired_comparison(hits[name], hits["teacher"], name, "teacher").to_dict(),
            p50_ms_batch1=round(timing[1][name].p50_ms, 2), per_second_batch32=round(per_second, 1),
            params=size.params, disk_bytes=size.disk_bytes,
            cost_per_million=(price_per_hour / (per_second * 3600) * 1e6) if price_per_hour else None))  # 0: none
    mark_pareto(frontier.points)
    frontier.recommended = recommend(frontier.points, margin_points)
    explain(frontier)
    return frontier


def explain(frontier: Frontier) -> None:
    """Each variant not recommended gets one sentence: past the margin (its interval's low end), or within
    it but slower than the pick, in SPEED."""
    pick = frontier.point(frontier.recommended) if frontier.recommended else None
    margin = frontier.margin_points
    for p in frontier.points:
        if pick is not None and p.name == pick.name:
            p.reason = ""
        elif not p.non_inferior(margin):
            d = p.vs_teacher["difference"]
            low = d.get("low")
            p.reason = (f"outside your {margin:g}-point margin: {d['value'] * 100:+.1f} points [{low * 100:+.1f}, "
                        f"{d['high'] * 100:+.1f}] against the teacher, and its interval's low end ({low * 100:+.1f}) "
                        f"passes -{margin:g}" if low is not None else
                        f"outside your {margin:g}-point margin: its difference to the teacher is undefined")
        elif pick is not None:
            role = "the reference, " if p.name == "teacher" else "within the margin but "
            p.reason = (f"{role}slower than {pick.name}: {p.per_second_batch32:,.0f} against "
                        f"{pick.per_second_batch32:,.0f} {SPEED}")


def mark_pareto(points: list[Point]) -> None:
    """A point is on the front when no other is at least as accurate and at least as fast (SPEED), and better
    in one."""
    for p in points:
        acc, speed = p.accuracy["value"], p.per_second_batch32
        p.pareto = not any(q is not p and q.accuracy["value"] >= acc and q.per_second_batch32 >= speed
                           and (q.accuracy["value"] > acc or q.per_second_batch32 > speed) for q in points)


def recommend(points: list[Point], margin_points: float) -> str | None:
    """The cheapest non-inferior variant: the highest throughput at batch 32 (at one price per hour the cost
    per prediction follows it, so the ranking is the same with or without a price)."""
    ok = [p for p in points if p.non_inferior(margin_points)]
    if not ok:
        return None
    return max(ok, key=lambda p: p.per_second_batch32).name


def frontier_figure(frontier: Frontier):
    """Accuracy (95% interval) against SPEED, the measure the recommendation ranks by; the Pareto front
    dotted, the recommendation a star."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for p in frontier.points:
        a = p.accuracy
        fig.add_trace(go.Scatter(
            x=[p.per_second_batch32], y=[a["value"]], mode="markers+text", text=[p.name],
            textposition="top center",
            name=p.name, marker=dict(size=14 if p.name == frontier.recommended else 10, color=variants.color(p.name),
                                     symbol="star" if p.name == frontier.recommended else "circle",
                                     line=dict(width=2 if p.pareto else 0, color="#000")),
            error_y=dict(type="data", symmetric=False, array=[a["high"] - a["value"]],
                         arrayminus=[a["value"] - a["low"]])))
    front = sorted((p for p in frontier.points if p.pareto), key=lambda p: p.per_second_batch32)
    fig.add_trace(go.Scatter(x=[p.per_second_batch32 for p in front], y=[p.accuracy["value"] for p in front],
                             mode="lines", name="Pareto front", line=dict(dash="dot", color="#555")))
    fig.update_layout(title=f"Accuracy against speed on {html.escape(frontier.file)} ({SPEED}; the front "
                            "outlined, the recommendation a star)", xaxis_title=SPEED,
                      yaxis_title="accuracy (95% interval)", template="plotly_white", height=520)
    return fig


def frontier_html(frontier: Frontier) -> str:
    """The page: the recommendation, the chart, and the table."""
    fig = frontier_figure(frontier)
    rows = "".join(
        f"<tr><td>{html.escape(p.name)}{' ★' if p.name == frontier.recommended else ''}</td><td>{p.runtime}</td>"
        f"<td>{stats.Estimate(**p.accuracy).text(4)}</td><td>{html.escape(p.vs_teacher['sentence'])}</td>"
        f"<td>{p.p50_ms_batch1:.1f}</td><td>{p.per_second_batch32:,.1f}</td><td>{p.params:,}</td>"
        f"<td>{p.disk_bytes / 1e6:.1f} MB</td><td>{'' if p.cost_per_million is None else f'{p.cost_per_million:,.2f}'}"
        f"</td><td>{'yes' if p.pareto else ''}</td></tr>" for p in frontier.points)
    why = "".join(f"<li><b>{html.escape(n)}</b>: {html.escape(w)}</li>" for n, w in frontier.reasons().items())
    cost = ("" if frontier.price_per_hour else
            "<p>No price per hour was given: no cost is shown, and the ranking is by speed alone.</p>")
    return (f"<!doctype html><meta charset='utf-8'><title>Which variant to ship</title>"
            f"<h1>{html.escape(frontier.recommendation())}</h1><h2>Why not the others</h2><ul>{why}</ul>{cost}"
            f"{fig.to_html(full_html=False, include_plotlyjs=True)}"
            "<table border=1 cellpadding=4><tr><th>variant</th><th>runtime</th><th>accuracy [95%]</th>"
            "<th>against the teacher, same rows</th><th>p50 ms, batch 1</th><th>predictions/s, batch 32</th>"
            "<th>parameters</th><th>size</th><th>cost per million</th><th>Pareto</th></tr>" + rows + "</table>"
            + "".join(f"<p>{html.escape(p.name)}: {html.escape(p.note)}</p>" for p in frontier.points if p.note))


def write_frontier(frontier: Frontier, out) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"frontier.json": out / "frontier.json", "frontier.html": out / "frontier.html"}
    paths["frontier.json"].write_text(json.dumps(frontier.to_dict(), indent=1), encoding="utf-8")
    paths["frontier.html"].write_text(frontier_html(frontier), encoding="utf-8")
    return paths


# ---- the one way to a Frontier: every variant built, then measured -----------------------------------
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


def frontier_of(teacher: LoadedModel, student: LoadedModel, data, request: FrontierRequest,
                stage: Stage | None = None) -> Frontier:
    """The one way to a Frontier (the CLI and the Evaluate tab): labels checked before any export, every
    variant built, then measured on the file; stage(words, done, total) hears each step."""
    label_index(teacher, data.labels)  # unknown labels stop the run here, before any export
    models, skipped = frontier_models(teacher, student, list(request.students), data.labels,
                                      torch.get_num_threads(), stage)
    return measure_frontier(models, data.texts, data.labels, request, not_measured=skipped, stage=stage)
