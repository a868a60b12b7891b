"""Data in, plotly figure out. No Gradio, no torch: these functions are pure and testable alone."""

from __future__ import annotations

from typing import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .formatting import human_bytes, human_count
from .measure import SizeReport, percentile

COLORS = {"teacher": "#1f77b4", "student": "#ff7f0e", "student-onnx-int8": "#2ca02c",
          "student-onnx-fp32": "#9467bd"}
LAYOUT = dict(template="plotly_white", height=400, margin=dict(l=50, r=20, t=70, b=40),
              legend=dict(orientation="h", yanchor="top", y=-0.18, x=0))


def running_percentiles(values: Sequence[float], q: float) -> list[float]:
    """The q-th percentile of values[:i+1] for every i: how the statistic evolves request by request."""
    return [percentile(values[: i + 1], q) for i in range(len(values))]


def latency_chart(history: Sequence[Mapping], variants: Sequence[str] = ("teacher", "student")) -> go.Figure:
    """Every request of this session: each model's latency, with running p50 and p95.

    history rows look like {"request": 1, "teacher_ms": 12.3, "student_ms": 6.1}.
    """
    fig = go.Figure()
    x = [row["request"] for row in history]
    for variant in variants:
        ys = [row.get(f"{variant}_ms") for row in history]
        if not any(y is not None for y in ys):
            continue
        color = COLORS.get(variant, "#444")
        fig.add_trace(go.Scatter(x=x, y=ys, mode="lines+markers", name=f"{variant} (ms)",
                                 line=dict(color=color, width=1.5), marker=dict(size=6)))
        clean = [y for y in ys if y is not None]
        for q, dash in ((50, "dash"), (95, "dot")):
            fig.add_trace(go.Scatter(x=x[-len(clean):], y=running_percentiles(clean, q), mode="lines",
                                     name=f"{variant} p{q}", line=dict(color=color, dash=dash, width=1)))
    title = "Latency per request (tokenise + forward + post-process)"
    if history:
        t = [r["teacher_ms"] for r in history]
        s = [r["student_ms"] for r in history]
        title += f"<br><sup>{len(history)} requests · p50 teacher {percentile(t, 50):.1f} ms, " \
                 f"student {percentile(s, 50):.1f} ms · speedup {percentile(t, 50) / max(percentile(s, 50), 1e-9):.2f}×</sup>"
    else:
        fig.add_annotation(text="Run a request to start the chart", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper", font=dict(size=14, color="#888"))
    fig.update_layout(title=title, xaxis_title="request #", yaxis_title="ms", **LAYOUT)
    fig.update_yaxes(rangemode="tozero")
    fig.update_xaxes(dtick=max(1, -(-len(history) // 10)), rangemode="tozero")  # whole request numbers
    return fig


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
                             marker_color=[COLORS.get(r, "#444") for r in variants], showlegend=False,
                             hovertemplate="%{x}: %{text}<extra></extra>"), row=1, col=col)
    if not known:
        fig.add_annotation(text="Sizes appear once the models have loaded", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper", font=dict(size=14, color="#888"))
    fig.update_layout(title="Model size", **{k: v for k, v in LAYOUT.items() if k != "legend"})
    return fig


def bench_figures(records: Sequence) -> list[go.Figure]:
    """Per task in the benchmark's records (BenchRecord): latency against batch size and against
    sequence length, and the size bars."""
    from .config import TASKS

    figs = []
    for task in dict.fromkeys(r.task for r in records):
        rows = [r for r in records if r.task == task]
        seq_ref = max({r.seq_len for r in rows}, key=lambda s: (s == 128, -abs(s - 128)))
        batch_ref = max({r.batch_size for r in rows}, key=lambda b: (b == 8, -abs(b - 8)))
        fig = make_subplots(rows=1, cols=3, subplot_titles=(f"p50 vs batch size (seq {seq_ref})",
                                                            f"p50 vs sequence length (batch {batch_ref})",
                                                            "weights on disk (MB)"))
        for variant in dict.fromkeys(r.variant for r in rows):
            color = COLORS.get(variant, "#444")
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
