"""The verdict at a glance: each pair against the claims that define the field (DistilBERT, Sanh et
al. 2019: 40% fewer parameters, 60% faster, 97% of the teacher's score), each marked met or not.

Plain data from what the page already measured: the loaded sizes, this session's requests (the
same rows the latency chart draws) and the labelled files evaluated in this session. No Gradio.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

from demo.core.formatting import code, md_escape
from demo.core.measure import SizeReport, percentile

# The paper's figures, as thresholds: parameters saved, teacher time / student time, retention.
PAPER = {"params_saved": 0.40, "speedup": 1.60, "retention": 0.97}
PAPER_TEXT = {"params_saved": "40% fewer parameters", "speedup": "60% faster", "retention": "97% of the score"}


def live_speedup(history: Sequence[Mapping]) -> float | None:
    """Teacher p50 / student p50 over this session's requests: the latency chart's subtitle figure."""
    if not history:
        return None
    t50 = percentile([r["teacher_ms"] for r in history], 50)
    s50 = percentile([r["student_ms"] for r in history], 50)
    return t50 / max(s50, 1e-9)


@dataclass
class ScoreRow:
    task: str
    params_saved: float | None  # 1 - student parameters / teacher parameters
    speedup: float | None  # this session's p50 teacher ms / p50 student ms
    requests: int
    agreement: float | None  # share of this session's requests where both gave the same answer
    retention: float | None  # student / teacher accuracy on the last labelled file evaluated
    retention_data: str | None = None

    def met(self, claim: str) -> bool | None:
        value = getattr(self, claim)
        return None if value is None else value >= PAPER[claim]


@dataclass
class Scorecard:
    rows: list[ScoreRow]
    speedup_measured_on: str = "this session"  # or the evaluated file, in a report

    def to_dict(self) -> dict:
        return {"paper": PAPER, "rows": [{**asdict(r), "met": {c: r.met(c) for c in PAPER}} for r in self.rows]}

    def markdown(self) -> str:
        def cell(row: ScoreRow, claim: str, shown: str | None) -> str:
            met = row.met(claim)
            return "–" if met is None else f"{'✅' if met else '❌'} {shown}"

        lines = ["**Scorecard** against DistilBERT's claims (" + ", ".join(PAPER_TEXT.values()) + "):", "",
                 f"| pair | parameters saved | speedup, {self.speedup_measured_on} | agreement | retention |",
                 "| --- | --- | --- | --- | --- |"]
        for r in self.rows:
            saved = None if r.params_saved is None else f"{r.params_saved:.0%}"
            speed = None if r.speedup is None else f"{r.speedup:.2f}× ({r.requests:,} texts)"
            agree = "–" if r.agreement is None else f"{r.agreement:.0%} of {r.requests:,}"
            kept = None if r.retention is None else f"{r.retention:.3f} on {code(r.retention_data or '')}"
            retention = cell(r, "retention", kept) if r.retention is not None else "– (evaluate a file)"
            lines.append(f"| {md_escape(r.task)} | {cell(r, 'params_saved', saved)} | {cell(r, 'speedup', speed)} | "
                         f"{agree} | {retention} |")
        return "\n".join(lines)


def scorecard(sizes: Mapping[str, Mapping[str, SizeReport | None]], history: Mapping[str, Sequence[Mapping]],
              evaluated: Mapping[str, Mapping]) -> Scorecard:
    """sizes: task -> {variant: SizeReport}; history: task -> this session's request rows (with
    teacher_ms, student_ms, agree); evaluated: task -> {"retention": ..., "data": name}."""
    rows = []
    for task, by_variant in sizes.items():
        saved = params_saved(by_variant)
        rows_of_task = list(history.get(task) or [])
        agreements = [r["agree"] for r in rows_of_task if "agree" in r]
        result = evaluated.get(task) or {}
        rows.append(ScoreRow(task=task, params_saved=saved, speedup=live_speedup(rows_of_task),
                             requests=len(rows_of_task),
                             agreement=sum(agreements) / len(agreements) if agreements else None,
                             retention=result.get("retention"), retention_data=result.get("data")))
    return Scorecard(rows)


def params_saved(sizes: Mapping[str, SizeReport | None]) -> float | None:
    teacher, student = sizes.get("teacher"), sizes.get("student")
    return 1 - student.params / teacher.params if teacher and student and teacher.params else None
