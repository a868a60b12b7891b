"""The verdict at a glance: each pair against the claims that define the field (DistilBERT, Sanh et
al. 2019: 40% fewer parameters, 60% faster, 97% of the teacher's score), each in one of three states:
met (the 95% interval clears the claim), not met (the interval lies below it), not yet known (it
straddles: more data would decide), each with the n it rests on.

Plain data from what the page already measured: the loaded sizes, this session's requests (the
same rows the latency chart draws) and the labelled files evaluated in this session. No Gradio.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from demo.core.formatting import code, md_escape
from demo.core.measure import SizeReport, percentile
from demo.measuring import stats
from demo.measuring.stats import Estimate

# The paper's figures, as thresholds: parameters saved, teacher time / student time, retention.
PAPER = {"params_saved": 0.40, "speedup": 1.60, "retention": 0.97}
PAPER_TEXT = {"params_saved": "40% fewer parameters", "speedup": "60% faster", "retention": "97% of the score"}
STATE_ICONS = {"met": "✅", "not met": "❌", "not yet known": "❓"}


def quiet(history: Sequence[Mapping]) -> list[Mapping]:
    """The requests measured with the CPU to themselves (none marked "training")."""
    return [row for row in history if not row.get("training")]


def live_speedup(history: Sequence[Mapping]) -> float | None:
    """Teacher p50 / student p50 over this session's requests: the latency chart's subtitle figure.
    Requests measured while a distillation job trained (the CPU shared) are left out."""
    history = quiet(history)
    if not history:
        return None
    t50 = percentile([r["teacher_ms"] for r in history], 50)
    s50 = percentile([r["student_ms"] for r in history], 50)
    return t50 / max(s50, 1e-9)


@dataclass
class ScoreRow:
    task: str
    params_saved: float | None  # 1 - student parameters / teacher parameters (exact: no sample)
    speedup: Estimate | None  # teacher time / student time, with its interval
    requests: int  # what the speedup and agreement rest on (requests, or evaluated examples)
    agreement: Estimate | None  # share of them where both gave the same answer
    retention: Estimate | None  # student / teacher accuracy on the last labelled file evaluated
    retention_data: str | None = None
    retention_student: str | None = None  # the student the retention was measured on (it may have changed since)

    def state(self, claim: str) -> str | None:
        """met, not met or not yet known; None where nothing was measured."""
        if claim == "params_saved":
            return None if self.params_saved is None else ("met" if self.params_saved >= PAPER[claim] else "not met")
        estimate = getattr(self, claim)
        return None if estimate is None else estimate.verdict(PAPER[claim])

    def to_dict(self) -> dict:
        def plain(value):
            return value.to_dict() if isinstance(value, Estimate) else value

        return {"task": self.task, "params_saved": self.params_saved, "speedup": plain(self.speedup),
                "requests": self.requests, "agreement": plain(self.agreement), "retention": plain(self.retention),
                "retention_data": self.retention_data, "retention_student": self.retention_student,
                "state": {c: self.state(c) for c in PAPER}}


@dataclass
class Scorecard:
    rows: list[ScoreRow]
    speedup_measured_on: str = "this session"  # or the evaluated file, in a report
    device: str = ""  # where the timings ran ("cpu", "cuda (NVIDIA A100)"): a speedup means little without it
    unit: str = "requests"  # what the speedup's n counts: requests (live) or batches (a report)

    def to_dict(self) -> dict:
        return {"paper": PAPER, "device": self.device, "rows": [r.to_dict() for r in self.rows]}

    def markdown(self) -> str:
        lines = ["**Scorecard** against DistilBERT's claims (" + ", ".join(PAPER_TEXT.values()) + "), "
                 "95% intervals: ✅ met (the interval clears the claim), ❌ not met (it lies below), ❓ not yet known "
                 "(it straddles the claim: more data decides).", "",
                 f"| pair | parameters saved | speedup, {self.speedup_measured_on}"
                 f"{f' on {md_escape(self.device)}' if self.device else ''} | agreement | retention |",
                 "| --- | --- | --- | --- | --- |"]
        for r in self.rows:
            lines.append(f"| {md_escape(r.task)} | {self._params(r)} | {self._speedup(r)} | {self._agreement(r)} | "
                         f"{self._retention(r)} |")
        return "\n".join(lines)

    @staticmethod
    def _cell(row: ScoreRow, claim: str, shown: str) -> str:
        state = row.state(claim)
        return f"{STATE_ICONS.get(state, '')} {shown}" + (" (not yet known)" if state == "not yet known" else "")

    def _params(self, r: ScoreRow) -> str:
        return "–" if r.params_saved is None else self._cell(r, "params_saved", f"{r.params_saved:.0%}")

    def _speedup(self, r: ScoreRow) -> str:
        if r.speedup is None:
            return "–"
        return self._cell(r, "speedup", f"{r.speedup.text(2, unit='×')} over {r.speedup.n:,} {self.unit}")

    @staticmethod
    def _agreement(r: ScoreRow) -> str:
        return "–" if r.agreement is None else f"{r.agreement.text(2, 100, '%')} of {r.agreement.n:,}"

    def _retention(self, r: ScoreRow) -> str:
        if r.retention is None:
            return "– (evaluate a file)"
        student = f", student {code(r.retention_student)}" if r.retention_student else ""
        return self._cell(r, "retention", f"{r.retention.text(3)} on {code(r.retention_data or '')} "
                                          f"(n = {r.retention.n:,}{student})")


def scorecard(sizes: Mapping[str, Mapping[str, SizeReport | None]], history: Mapping[str, Sequence[Mapping]],
              evaluated: Mapping[str, Mapping]) -> Scorecard:
    """sizes: task -> {variant: SizeReport}; history: task -> this session's request rows (with
    teacher_ms, student_ms, agree); evaluated: task -> {"retention": Estimate.to_dict(), "data": name,
    "models": {variant: model}} (the models: where the page knows which student it was measured on)."""
    rows = []
    for task, by_variant in sizes.items():
        rows_of_task = list(history.get(task) or [])
        agreements = [bool(r["agree"]) for r in rows_of_task if "agree" in r]
        timed = quiet(rows_of_task)  # not the requests measured while a training job shared the CPU
        teacher_ms, student_ms = [r["teacher_ms"] for r in timed], [r["student_ms"] for r in timed]
        speedup = (stats.median_speedup(teacher_ms, student_ms, resamples=stats.LIVE_RESAMPLES)
                   if timed else None)
        result = evaluated.get(task) or {}
        retention = result.get("retention")
        rows.append(ScoreRow(task=task, params_saved=params_saved(by_variant), speedup=speedup,
                             requests=len(rows_of_task),
                             agreement=stats.proportion(sum(agreements), len(agreements)) if agreements else None,
                             retention=Estimate(**retention) if isinstance(retention, dict) else None,
                             retention_data=result.get("data"),
                             retention_student=(result.get("models") or {}).get("student")))
    return Scorecard(rows)


def params_saved(sizes: Mapping[str, SizeReport | None]) -> float | None:
    teacher, student = sizes.get("teacher"), sizes.get("student")
    return 1 - student.params / teacher.params if teacher and student and teacher.params else None
