"""The benchmark's results as plain data that renders itself: JSON for machines, Markdown for people.

A BenchRecord is one variant at one (batch size, sequence length); the same objects feed the
Benchmark tab's table and chart, bench.json, bench.md and bench.html.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from pathlib import Path

from demo.core.formatting import human_bytes, human_count, json_text, md_escape
from demo.core.measure import LatencyStats, SizeReport
from demo.measuring.charts import bench_figures

TABLE_HEAD = ("| task | variant | batch | seq | p50 ms | p95 ms | min ms | model p50 ms | seq/s | speedup [95%] "
              "| params "
              "| disk | memory |")


@dataclass(frozen=True)
class BenchRecord:
    """One timed measurement. Latency is end-to-end (tokeniser + model + post-processing); model_* is
    the forward pass alone on pre-tokenised tensors."""

    task: str
    variant: str
    model: str
    batch_size: int
    seq_len: int
    p50_ms: float
    p95_ms: float
    min_ms: float
    model_p50_ms: float
    model_p95_ms: float
    model_min_ms: float
    repeats: int
    throughput: float  # sequences per second at the end-to-end p50
    params: int
    disk_bytes: int
    memory_bytes: int
    peak_rss_bytes: int
    device: str
    dtype: str
    runtime: str
    random_weights: bool
    tokenizer: bool
    speedup_low: float | None = None  # 95% interval of teacher p50 / this p50 (paired bootstrap over the rounds)
    speedup_high: float | None = None

    @classmethod
    def of(cls, *, point: tuple[str, int, int], variant: str, loaded, end_to_end: LatencyStats,
           model_only: LatencyStats, size: SizeReport, peak_rss_bytes: int) -> BenchRecord:
        """point: (task, batch size, sequence length); the repeats are the timed rounds of model_only."""
        task, batch_size, seq_len = point
        return cls(task=task, variant=variant, model=loaded.name, batch_size=batch_size, seq_len=seq_len,
                   p50_ms=end_to_end.p50_ms, p95_ms=end_to_end.p95_ms, min_ms=end_to_end.min_ms,
                   model_p50_ms=model_only.p50_ms, model_p95_ms=model_only.p95_ms, model_min_ms=model_only.min_ms,
                   repeats=model_only.n, throughput=batch_size / (end_to_end.p50_ms / 1000.0), params=size.params,
                   disk_bytes=size.disk_bytes, memory_bytes=size.memory_bytes, peak_rss_bytes=peak_rss_bytes,
                   device=str(loaded.device), dtype=loaded.dtype, runtime=loaded.runtime,
                   random_weights=loaded.random_weights, tokenizer=loaded.tokenizer is not None)

    @property
    def point(self) -> tuple[str, int, int]:
        return self.task, self.batch_size, self.seq_len

    def to_dict(self) -> dict:
        return asdict(self)

    def speedup_text(self, speedup: float | None) -> str:
        if not speedup:
            return "–"
        if self.speedup_low is None or self.variant == "teacher":
            return f"{speedup:.2f}×"
        return f"{speedup:.2f}× [{self.speedup_low:.2f}, {self.speedup_high:.2f}]"

    def markdown_row(self, speedup: float | None) -> str:
        cells = [self.task, self.variant, self.batch_size, self.seq_len, f"{self.p50_ms:.1f}", f"{self.p95_ms:.1f}",
                 f"{self.min_ms:.1f}", f"{self.model_p50_ms:.1f}", f"{self.throughput:.1f}",
                 self.speedup_text(speedup), human_count(self.params), human_bytes(self.disk_bytes),
                 human_bytes(self.memory_bytes)]
        return "| " + " | ".join(str(c) for c in cells) + " |"


@dataclass
class BenchResult:
    records: list[BenchRecord] = field(default_factory=list)
    environment: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    quality: list[dict] = field(default_factory=list)
    interrupted: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def speedups(self) -> dict[tuple, float]:
        """(task, variant, batch, seq) -> teacher p50 / variant p50 (end-to-end), from the same run."""
        teacher = {r.point: r.p50_ms for r in self.records if r.variant == "teacher"}
        return {(r.task, r.variant, r.batch_size, r.seq_len): teacher[r.point] / r.p50_ms
                for r in self.records if r.point in teacher}

    def markdown(self) -> str:
        env = self.environment
        ups = self.speedups()
        lines = ["# Teacher vs student: speed and size", "",
                 f"{env.get('cpu', '')} · {env.get('threads')} threads (PyTorch, ONNX Runtime and OpenVINO alike) "
                 "· device "
                 f"{env.get('device')} · torch {env.get('torch')}, transformers {env.get('transformers')}, onnxruntime "
                 f"{env.get('onnxruntime')}, openvino {env.get('openvino') or 'not installed'} · int8 scheme "
                 f"{env.get('int8_scheme')} · "
                 f"{env.get('date')}", ""]
        lines += [f"> **Note:** {md_escape(n)}" for n in self.notes if "RANDOM" in n or "ARCHITECTURE" in n][:1]
        lines += ["", "Latency is end-to-end (tokeniser + model + post-processing) unless marked *model*; "
                  "speedup = teacher p50 / variant p50, end-to-end, same run, with its 95% interval (a paired "
                  "bootstrap over the interleaved rounds).", "",
                  TABLE_HEAD, "| --- " * 13 + "|"]
        lines += [r.markdown_row(ups.get((r.task, r.variant, r.batch_size, r.seq_len))) for r in self.records]
        if self.quality:
            lines += ["", "## Cost of acceleration in answers", "",
                      "| task | variant | examples | agreement with its fp32 model | accuracy |", "| --- " * 5 + "|"]
            for q in self.quality:
                agree = f"{q['agreement_with_student']:.4f}"
                if q["flagged"]:
                    changed = f"changes {q['changed_share']:.1%} of answers"
                    agree = f"<span style=\"color:red\">**{agree} ({changed})**</span>"
                acc = f"{q['accuracy']:.4f}" if "accuracy" in q else "–"
                lines.append(f"| {q['task']} | {q['variant']} | {q['n_examples']} | {agree} | {acc} |")
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {md_escape(n)}" for n in self.notes]
        if self.interrupted:
            lines += ["", "**This sweep was interrupted: the table holds what was measured before.**"]
        return "\n".join(lines) + "\n"


def write_outputs(result: BenchResult, out: str | Path) -> dict[str, Path]:
    """bench.json, bench.md and bench.html (the charts and the table on one page)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"bench.json": out / "bench.json", "bench.md": out / "bench.md", "bench.html": out / "bench.html"}
    paths["bench.json"].write_text(json_text(result.to_dict()) + "\n", encoding="utf-8")
    md = result.markdown()
    paths["bench.md"].write_text(md, encoding="utf-8")
    figures = bench_figures(result.records)
    charts = "".join(f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figures))
    paths["bench.html"].write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>Benchmark</title></head>"
                                   f"<body style='font-family:sans-serif'>{charts}<pre style='white-space:pre-wrap'>"
                                   f"{html.escape(md)}</pre></body></html>", encoding="utf-8")
    return paths
