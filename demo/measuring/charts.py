"""Data in, plotly figure out. No Gradio, no torch: these functions are pure and testable alone."""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from demo.core.formatting import human_bytes, human_count
from demo.core.measure import SizeReport, percentile
from demo.measuring.scorecard import live_speedup
from demo.models.config import TASKS
from demo.models.variants import color as variant_color

LAYOUT = dict(template="plotly_white", height=400, margin=dict(l=50, r=20, t=70, b=40),
              legend=dict(orientation="h", yanchor="top", y=-0.18, x=0))


def running_percentiles(values: Sequence[float], q: float) -> list[float]:
    """The q-th percentile of values[:i+1] for every i: how the statistic evolves request by request.

    Kept sorted as it grows (bisect), so a session of n requests costs n log n, not n² log n."""
    ordered: list[float] = []
    out = []
    for value in values:
        bisect.insort(ordered, value)
        pos = (len(ordered) - 1) * q / 100.0
        lo, hi = math.floor(pos), math.ceil(pos)
        out.append(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))
    return out


@functools.lru_cache(maxsize=1)
def _template() -> dict:
    import plotly.io as pio

    return pio.templates[LAYOUT["template"]].to_plotly_json()


def latency_chart(history: Sequence[Mapping], variants: Sequence[str] = ("teacher", "student")) -> go.Figure:
    """Every request of this session: each model's latency, with running p50 and p95.

    history rows look like {"request": 1, "teacher_ms": 12.3, "student_ms": 6.1}. Drawn on every
    request while the models wait, so the figure is built as plain data and not validated by plotly
    (0.6 ms instead of 17 ms).
    """
    x = [row["request"] for row in history]
    traces = []
    for variant in variants:
        ys = [row.get(f"{variant}_ms") for row in history]
        if not any(y is not None for y in ys):
            continue
        color = variant_color(variant)
        traces.append(dict(type="scatter", x=x, y=ys, mode="lines+markers", name=f"{variant} (ms)",
                           line=dict(color=color, width=1.5), marker=dict(size=6)))
        clean = [y for y in ys if y is not None]
        for q, dash in ((50, "dash"), (95, "dot")):
            traces.append(dict(type="scatter", x=x[-len(clean):], y=running_percentiles(clean, q), mode="lines",
                               name=f"{variant} p{q}", line=dict(color=color, dash=dash, width=1)))
    busy = [row for row in history if row.get("training")]
    if busy:  # the CPU was shared with a distillation job: these timings are not the models' own
        traces.append(dict(type="scatter", x=[row["request"] for row in busy], y=[row["teacher_ms"] for row in busy],
                           mode="markers", name="measured while training", marker=dict(symbol="x", size=11,
                                                                                        color="#d62728")))
    title = "Latency per request (tokenise + forward + post-process)"
    annotations = []
    if history:
        t50 = percentile([r["teacher_ms"] for r in history], 50)
        s50 = percentile([r["student_ms"] for r in history], 50)
        speedup = live_speedup(history)
        title += (f"<br><sup>{len(history)} requests · p50 teacher {t50:.1f} ms, student {s50:.1f} ms · "
                  + (f"speedup {speedup:.2f}×" if speedup is not None else "speedup: wait for a request without "
                     "training") + (f" · {len(busy)} measured while training" if busy else "") + "</sup>")
    else:
        annotations.append(dict(text="Run a request to start the chart", showarrow=False, x=0.5, y=0.5,
                                xref="paper", yref="paper", font=dict(size=14, color="#888")))
    layout = dict(title=dict(text=title), template=_template(), height=LAYOUT["height"], margin=LAYOUT["margin"],
                  legend=LAYOUT["legend"], annotations=annotations,
                  xaxis=dict(title=dict(text="request #"), rangemode="tozero",
                             dtick=max(1, -(-len(history) // 10))),  # whole request numbers
                  yaxis=dict(title=dict(text="ms"), rangemode="tozero"))
    return go.Figure(dict(data=traces, layout=layout), _validate=False)


def size_chart(sizes: Mapping[str, SizeReport | None]) -> go.Figure:
    """Parameters, weight bytes on disk and bytes in memory, side by side, with student/teacher ratios."""
    metrics = (("params", "Parameters", human_count), ("disk_bytes", "Weights on disk", human_bytes),
               ("memory_bytes", "Memory (tensors)", human_bytes))
    known = {variant: s for variant, s in sizes.items() if s is not None}
    titles = []
    for attr, label, _ in metrics:
        t, s = known.get("teacher"), known.get("student")
        if t and s and getattr(t, attr):
            titles.append(f"{label}<br><sup>student / teacher = {getattr(s, attr) / getattr(t, attr):.2f}</sup>")
        else:
            titles.append(label)
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles)
    for col, (attr, _, fmt) in enumerate(metrics, start=1):
        variants = list(known)
        values = [getattr(known[r], attr) for r in variants]
        fig.add_trace(go.Bar(x=variants, y=values, text=[fmt(v) for v in values], textposition="auto",
                             marker_color=[variant_color(r) for r in variants], showlegend=False,
                             hovertemplate="%{x}: %{text}<extra></extra>"), row=1, col=col)
    if not known:
        fig.add_annotation(text="Sizes appear once the models have loaded", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper", font=dict(size=14, color="#888"))
    fig.update_layout(title="Model size", **{k: v for k, v in LAYOUT.items() if k != "legend"})
    return fig


def bench_figures(records: Sequence) -> list[go.Figure]:
    """Per task in the benchmark's records (BenchRecord): latency against batch size and against
    sequence length, and the size bars."""
    figs = []
    for task in dict.fromkeys(r.task for r in records):
        rows = [r for r in records if r.task == task]
        seq_ref = max({r.seq_len for r in rows}, key=lambda s: (s == 128, -abs(s - 128)))
        batch_ref = max({r.batch_size for r in rows}, key=lambda b: (b == 8, -abs(b - 8)))
        fig = make_subplots(rows=1, cols=3, subplot_titles=(f"p50 vs batch size (seq {seq_ref})",
                                                            f"p50 vs sequence length (batch {batch_ref})",
                                                            "weights on disk (MB)"))
        for variant in dict.fromkeys(r.variant for r in rows):
            color = variant_color(variant)
            mine = [r for r in rows if r.variant == variant]
            by_batch = sorted((r.batch_size, r.p50_ms) for r in mine if r.seq_len == seq_ref)
            by_seq = sorted((r.seq_len, r.p50_ms) for r in mine if r.batch_size == batch_ref)
            fig.add_trace(go.Scatter(x=[x for x, _ in by_batch], y=[y for _, y in by_batch], name=variant,
                                     legendgroup=variant, line=dict(color=color)), row=1, col=1)
            fig.add_trace(go.Scatter(x=[x for x, _ in by_seq], y=[y for _, y in by_seq], name=variant,
                                     legendgroup=variant, showlegend=False, line=dict(color=color)), row=1, col=2)
            fig.add_trace(go.Bar(x=[variant], y=[mine[0].disk_bytes / 1e6], marker_color=color, showlegend=False),
                          row=1, col=3)
        fig.update_xaxes(type="log", row=1, col=1, title_text="batch size")
        fig.update_xaxes(type="log", row=1, col=2, title_text="tokens")
        fig.update_yaxes(title_text="ms", row=1, col=1)
        fig.update_layout(title=TASKS.get(task, task) + (" (random weights)" if rows[0].random_weights else ""),
                          template="plotly_white", height=420)
        figs.append(fig)
    return figs


# ---- a distillation run's evidence (metrics.json and history.jsonl as plain dicts) -----------------
def training_curves(history: Sequence[Mapping], score_name: str = "validation accuracy") -> go.Figure:
    """Each loss term against the optimiser step, and validation accuracy (or the run's score) where it
    was measured."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Training loss terms", score_name.capitalize()))
    logged = [r for r in history if not r.get("evaluated")] or [r for r in history if r.get("evaluated")]
    terms = [k for k in dict.fromkeys(k for r in logged for k in r) if k.startswith("train_")]
    for _i, term in enumerate(terms):
        points = [(r["step"], r[term]) for r in logged if term in r]
        fig.add_trace(go.Scatter(x=[x for x, _ in points], y=[y for _, y in points], mode="lines+markers",
                                 name=term.removeprefix("train_").replace("loss", "total"),
                                 line=dict(width=2 if term == "train_loss" else 1)), row=1, col=1)
    evaluated = [r for r in history if r.get("evaluated") and "validation_accuracy" in r]
    fig.add_trace(go.Scatter(x=[r["step"] for r in evaluated], y=[r["validation_accuracy"] for r in evaluated],
                             mode="lines+markers", name=score_name, line=dict(color=variant_color("student"))),
                  row=1, col=2)
    # One step axis for both panels: a one-epoch run's single score sits at its step on the loss curve's
    # scale, not alone on an axis of its own.
    fig.update_xaxes(title_text="optimiser step", matches="x")
    fig.update_yaxes(range=[0, 1], row=1, col=2)
    if not history:
        fig.add_annotation(text="This run kept no history", showarrow=False, x=0.5, y=0.5, xref="paper",
                           yref="paper", font=dict(size=14, color="#888"))
    fig.update_layout(title="How the student learnt", **LAYOUT)
    return fig


def error_bars(values: Sequence[float | None], intervals: Sequence[list | None]) -> dict | None:
    """Plotly error bars from [low, high] intervals (none where a figure has no interval)."""
    if not any(intervals):
        return None
    return dict(type="data", symmetric=False, color="#333", thickness=1.5, width=6,
                array=[(ci[1] - v) if ci and v is not None else 0 for v, ci in zip(values, intervals)],
                arrayminus=[(v - ci[0]) if ci and v is not None else 0 for v, ci in zip(values, intervals)])


def _with_interval(value: float | None, ci: list | None, digits: int) -> str:
    if value is None:
        return "undefined"
    return f"{value:.{digits}f}" + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")


def recipe_comparison_chart(metrics: Mapping) -> go.Figure:
    """Validation accuracy (or the run's score) of the teacher, the distilled student and each baseline
    (same budget), each with its 95% interval as an error bar."""
    baselines = metrics.get("baselines") or []
    ci = metrics.get("ci") or {}
    names = ["teacher", "distilled student"] + [b["name"] for b in baselines]
    values = [metrics.get("teacher_accuracy"), metrics.get("student_accuracy")] + [b["accuracy"] for b in baselines]
    intervals = [ci.get("teacher_accuracy"), ci.get("student_accuracy")] + [b.get("ci") for b in baselines]
    colors = [variant_color("teacher"), variant_color("student")] + ["#999"] * len(baselines)
    fig = go.Figure(go.Bar(x=values, y=names, orientation="h", marker_color=colors,
                           error_x=error_bars(values, intervals),
                           text=[_with_interval(v, c, 3) for v, c in zip(values, intervals)], textposition="inside",
                           hovertemplate="%{y}: %{text}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    known = [v for v in values if v is not None] + [x for c in intervals if c for x in c]
    fig.update_xaxes(range=[max(0.0, min(known) - 0.1), min(1.0, max(known) + 0.1)],
                     title_text=metrics.get("score_name", "validation accuracy") + " (bars: 95% intervals)")
    title = "Teacher, distilled student and baselines" + ("" if baselines else
                                                          " (run with --baselines to compare recipes)")
    fig.update_layout(title=title, **{k: v for k, v in LAYOUT.items() if k != "legend"})
    return fig


def retention_chart(metrics: Mapping) -> go.Figure:
    """Student accuracy / teacher accuracy on the validation set and on every --eval-file set, with 95%
    intervals; an undefined retention (a teacher that scored 0) is drawn as no bar and said."""
    sets = {"validation (in domain)": (metrics.get("retention"), (metrics.get("ci") or {}).get("retention"))}
    sets.update({name: (f.get("retention"), f.get("ci")) for name, f in (metrics.get("eval_sets") or {}).items()})
    names = list(sets)
    values = [sets[n][0] for n in names]
    fig = go.Figure(go.Bar(x=names, y=values, marker_color=variant_color("student"),
                           error_y=error_bars(values, [sets[n][1] for n in names]),
                           text=[_with_interval(sets[n][0], sets[n][1], 3) for n in names], textposition="inside"))
    fig.add_hline(y=0.97, line_dash="dot", line_color="#888", annotation_text="DistilBERT: 0.97")
    score = metrics.get("score_name", "accuracy").replace("validation ", "").replace("held-out ", "")
    fig.update_yaxes(title_text=f"student / teacher {score} (bars: 95% intervals)", rangemode="tozero")
    title = "Retention in and out of domain" + ("" if metrics.get("eval_sets") else
                                                " (add --eval-file NAME=FILE for other domains)")
    fig.update_layout(title=title, **{k: v for k, v in LAYOUT.items() if k != "legend"})
    return fig


def run_size_speed_chart(metrics: Mapping) -> go.Figure:
    """Parameters and evaluation time of teacher and student, as measured by the run."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        f"Parameters (student / teacher = {metrics['student_params'] / metrics['teacher_params']:.2f})",
        f"Evaluation pass, ms (speedup {metrics.get('speedup', 0):.2f}×)"))
    for col, (key, fmt) in enumerate((("params", human_count), ("total_ms", lambda v: f"{v:,.0f} ms")), start=1):
        values = [metrics[f"teacher_{key}"], metrics[f"student_{key}"]]
        fig.add_trace(go.Bar(x=["teacher", "student"], y=values, text=[fmt(v) for v in values], textposition="auto",
                             marker_color=[variant_color("teacher"), variant_color("student")], showlegend=False),
                      row=1, col=col)
    fig.update_layout(title="Size and speed of the run's pair", **{k: v for k, v in LAYOUT.items() if k != "legend"})
    return fig
