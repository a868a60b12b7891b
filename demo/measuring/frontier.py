"""Which variant to ship: every variant of a pair (teacher and student, fp32 and int8, and any extra
students) on one labelled file, each with its accuracy, its paired difference to the teacher, its
latency, throughput, size and cost, the Pareto front, and a recommendation: the cheapest variant whose
difference to the teacher has its lower bound above minus the margin (non-inferiority), or none.

Plain data in, plain data out (Frontier renders itself as JSON and as an HTML page with a plotly chart);
the evaluator's `--frontier` builds the models and calls measure_frontier.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field

from demo.core.measure import interleaved_timing, size_of_loaded
from demo.measuring import stats
from demo.measuring.evaluation import label_index, predict_batch
from demo.models.loading import LoadedModel

BATCH_SIZES = (1, 32)  # latency of one request, and throughput of a full batch
REPEATS, WARMUP = 20, 3


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
        return {**{k: v for k, v in asdict(self).items() if k != "points"},
                "points": [asdict(p) for p in self.points], "recommendation": self.recommendation()}

    def point(self, name: str) -> Point:
        return next(p for p in self.points if p.name == name)

    def recommendation(self) -> str:
        """The answer in plain words, with the figures it rests on."""
        if self.recommended is None:
            return (f"No variant qualifies: none is within {self.margin_points:g} points of the teacher on "
                    f"{self.n_examples:,} rows of {self.file} (lower bound of its 95% interval).")
        p, teacher = self.point(self.recommended), self.point("teacher")
        d = p.vs_teacher["difference"]
        cheaper = (f"{teacher.cost_per_million / p.cost_per_million:.1f}x cheaper than the teacher"
                   if p.cost_per_million and teacher.cost_per_million else
                   f"{p.per_second_batch32 / teacher.per_second_batch32:.1f}x the teacher's throughput")
        if p.name == "teacher":
            return f"Ship the teacher: no smaller or int8 variant stays within {self.margin_points:g} points of it."
        diff = (f"{d['value'] * 100:+.1f} points [{d['low'] * 100:+.1f}, {d['high'] * 100:+.1f}]"
                if d.get("low") is not None else "no row where they differ")
        return (f"Ship {p.name}: {cheaper}, {diff} against the teacher, within your {self.margin_points:g}-point "
                f"margin ({self.n_examples:,} rows of {self.file}).")


def _predictions(model: LoadedModel, texts: list[str], max_length: int) -> list[int]:
    ids = []
    for start in range(0, len(texts), 32):
        ids += predict_batch(model, texts[start:start + 32], max_length)[0]
    return ids


def _timings(models: dict[str, LoadedModel], texts: list[str], max_length: int) -> dict[int, dict]:
    out = {}
    for batch in BATCH_SIZES:
        chunk = (texts * batch)[:batch]
        calls = {name: (lambda m=m, c=chunk: predict_batch(m, c, max_length)) for name, m in models.items()}
        out[batch] = interleaved_timing(calls, next(iter(models.values())).device, REPEATS, WARMUP)
    return out


def measure_frontier(models: dict[str, LoadedModel], texts: list[str], gold: list[str], *, task: str, file: str,
                     margin_points: float, price_per_hour: float | None, max_length: int = 128,
                     not_measured: dict[str, str] | None = None) -> Frontier:
    """models: variant name -> loaded model, "teacher" among them; gold: the file's label names."""
    frontier = Frontier(task, file, len(texts), margin_points, price_per_hour, not_measured=dict(not_measured or {}))
    hits, f1 = {}, {}
    for name, model in models.items():
        index = label_index(model, gold)  # LabelMismatch for a model of other labels: said by the caller
        predicted, wanted = _predictions(model, texts, max_length), [index[g] for g in gold]
        hits[name] = [p == w for p, w in zip(predicted, wanted)]
        f1[name] = stats.macro_f1_estimate(predicted, wanted).to_dict()
    timing = _timings(models, texts, max_length)
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
            cost_per_million=(price_per_hour / (per_second * 3600) * 1e6) if price_per_hour is not None else None))
    mark_pareto(frontier.points)
    frontier.recommended = recommend(frontier.points, margin_points)
    return frontier


def mark_pareto(points: list[Point]) -> None:
    """A point is on the front when no other is at least as accurate and at least as fast, and better in one."""
    for p in points:
        acc, ms = p.accuracy["value"], p.p50_ms_batch1
        p.pareto = not any(q is not p and q.accuracy["value"] >= acc and q.p50_ms_batch1 <= ms
                           and (q.accuracy["value"] > acc or q.p50_ms_batch1 < ms) for q in points)


def recommend(points: list[Point], margin_points: float) -> str | None:
    """The cheapest non-inferior variant: the highest throughput at batch 32 (at one price per hour the cost
    per prediction follows it, so the ranking is the same with or without a price)."""
    ok = [p for p in points if p.non_inferior(margin_points)]
    if not ok:
        return None
    return max(ok, key=lambda p: p.per_second_batch32).name


def frontier_figure(frontier: Frontier):
    """Accuracy (95% interval) against latency at batch 1, the Pareto front dotted, the recommendation a star."""
    import plotly.graph_objects as go

    from demo.models.variants import color

    fig = go.Figure()
    for p in frontier.points:
        a = p.accuracy
        fig.add_trace(go.Scatter(
            x=[p.p50_ms_batch1], y=[a["value"]], mode="markers+text", text=[p.name], textposition="top center",
            name=p.name, marker=dict(size=14 if p.name == frontier.recommended else 10, color=color(p.name),
                                     symbol="star" if p.name == frontier.recommended else "circle",
                                     line=dict(width=2 if p.pareto else 0, color="#000")),
            error_y=dict(type="data", symmetric=False, array=[a["high"] - a["value"]],
                         arrayminus=[a["value"] - a["low"]])))
    front = sorted((p for p in frontier.points if p.pareto), key=lambda p: p.p50_ms_batch1)
    fig.add_trace(go.Scatter(x=[p.p50_ms_batch1 for p in front], y=[p.accuracy["value"] for p in front],
                             mode="lines", name="Pareto front", line=dict(dash="dot", color="#555")))
    fig.update_layout(title=f"Accuracy against latency on {html.escape(frontier.file)} (batch 1; the front "
                            "outlined, the recommendation a star)", xaxis_title="p50 ms, batch 1",
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
    skipped = "".join(f"<li>{html.escape(n)}: not measured: {html.escape(w)}</li>"
                      for n, w in frontier.not_measured.items())
    return (f"<!doctype html><meta charset='utf-8'><title>Which variant to ship</title>"
            f"<h1>{html.escape(frontier.recommendation())}</h1>{fig.to_html(full_html=False, include_plotlyjs=True)}"
            "<table border=1 cellpadding=4><tr><th>variant</th><th>runtime</th><th>accuracy [95%]</th>"
            "<th>against the teacher, same rows</th><th>p50 ms, batch 1</th><th>predictions/s, batch 32</th>"
            "<th>parameters</th><th>size</th><th>cost per million</th><th>Pareto</th></tr>" + rows + "</table>"
            + (f"<ul>{skipped}</ul>" if skipped else "")
            + "".join(f"<p>{html.escape(p.name)}: {html.escape(p.note)}</p>" for p in frontier.points if p.note))


def write_frontier(frontier: Frontier, out) -> dict:
    from pathlib import Path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"frontier.json": out / "frontier.json", "frontier.html": out / "frontier.html"}
    paths["frontier.json"].write_text(json.dumps(frontier.to_dict(), indent=1), encoding="utf-8")
    paths["frontier.html"].write_text(frontier_html(frontier), encoding="utf-8")
    return paths
