"""The decision report: one self-contained page (no script, prints to PDF) for the people who must decide
whether the student can replace its teacher on this data and this hardware.

A plain-language verdict first, each claim with its 95% interval; then the scorecard, per-class
figures, where the two disagree, throughput and cost per million predictions at batch 1 and 32,
latency, size, and the commands and environment that reproduce it.
"""

from __future__ import annotations

import html
import platform
import shlex
import sys
from dataclasses import dataclass

import torch

from demo.core.formatting import human_bytes, human_count
from demo.core.measure import cpu_name, interleaved_timing
from demo.measuring.eval_report import disagreements_sorted, report_scorecard
from demo.measuring.evaluation import EvalContext, EvalReport, predict_batch
from demo.measuring.scorecard import PAPER, PAPER_TEXT
from demo.measuring.stats import Estimate
from demo.models.onnx_variants import quantization_scheme

BATCH_SIZES = (1, 32)  # one request at a time, and a throughput batch
REPEATS, WARMUP = 20, 3  # timed rounds per batch size after warm-up (each round times both models in turn)
DISAGREEMENTS_SHOWN = 12
WHETHER = {"params_saved": "has 40% fewer parameters", "speedup": "is 60% faster",
           "retention": "keeps 97% of the score"}


@dataclass(frozen=True)
class Throughput:
    model: str  # teacher or student
    batch_size: int
    p50_ms: float
    p95_ms: float

    @property
    def per_second(self) -> float:
        return self.batch_size / (self.p50_ms / 1000)

    def cost_per_million(self, price_per_hour: float) -> float:
        """What a million predictions cost on this hardware at that price, one model busy all the time."""
        return price_per_hour / (self.per_second * 3600) * 1_000_000


def measure_throughput(teacher, student, texts: list[str], max_length: int) -> list[Throughput]:
    """Both models at batch 1 and 32 on the file's own texts, timed round-robin after warm-up."""
    out = []
    for batch in BATCH_SIZES:
        chunk = (texts * batch)[:batch]
        calls = {name: (lambda m=model, c=chunk: predict_batch(m, c, max_length))
                 for name, model in (("teacher", teacher), ("student", student))}
        stats = interleaved_timing(calls, teacher.device, REPEATS, WARMUP)
        out += [Throughput(name, batch, s.p50_ms, s.p95_ms) for name, s in stats.items()]
    return out


def per_class(report: EvalReport) -> list[dict]:
    """Per gold class: examples, each model's precision, recall and F1, and how often the two agree."""
    rows = []
    for name in report.label_names:
        mine = [r for r in report.rows if r["gold"] == name]
        entry = {"class": name, "n": len(mine),
                 "agreement": (sum(r["teacher_prediction"] == r["student_prediction"] for r in mine) / len(mine)
                               if mine else None)}
        for model in ("teacher", "student"):
            predicted = [r for r in report.rows if r[f"{model}_prediction"] == name]
            tp = sum(r["gold"] == name for r in predicted)
            precision = tp / len(predicted) if predicted else None
            recall = tp / len(mine) if mine else None
            f1 = (2 * precision * recall / (precision + recall) if precision and recall else
                  0.0 if precision is not None and recall is not None else None)
            entry[model] = {"precision": precision, "recall": recall, "f1": f1}
        rows.append(entry)
    return rows


def verdict(report: EvalReport, ctx: EvalContext) -> tuple[str, list[str]]:
    """(headline, one sentence per claim): can the student replace the teacher here?"""
    row = report_scorecard(report, ctx).rows[0]
    states = {c: row.state(c) for c in PAPER}
    retention, speedup = report.estimate("retention"), report.estimate("speedup")
    lines = [f"Retention {retention.text(3)} against the claim of {PAPER['retention']}: {states['retention']}.",
             f"Speedup {speedup.text(2, unit='×')} against {PAPER['speedup']}×: {states['speedup']}.",
             f"Parameters saved: {'–' if row.params_saved is None else f'{row.params_saved:.0%}'} against "
             f"{PAPER['params_saved']:.0%}: {states['params_saved'] or 'not measured'}.",
             f"On the same rows, {report.paired['sentence']}."]
    if all(states[c] == "met" for c in PAPER):
        head = "Yes, on this data and this hardware: the student keeps the teacher's score, is faster and smaller."
    elif "not met" in states.values():
        missed = [PAPER_TEXT[c] for c in PAPER if states[c] == "not met"]
        undecided = [WHETHER[c] for c in PAPER if states[c] in ("not yet known", None)]
        head = (f"Not against DistilBERT's claims: the student falls short of {' and '.join(missed)} here"
                + (f"; whether it {' or '.join(undecided)} is not yet known." if undecided else "."))
    else:
        head = ("Not yet known: the intervals straddle the claims. Evaluate more rows (the intervals narrow as "
                "the square root of their number) before deciding.")
    return head, lines


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def _table(head: list[str], rows: list[list]) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return (f"<table><thead><tr>{''.join(f'<th>{html.escape(h)}</th>' for h in head)}</tr></thead>"
            f"<tbody>{cells}</tbody></table>")


def decision_html(report: EvalReport, ctx: EvalContext, throughput: list[Throughput], price_per_hour: float,
                  command: str, lead: str | None = None) -> str:
    """lead: the frontier's recommendation (`--frontier`), said first: which variant to ship, in plain words."""
    head, claims = verdict(report, ctx)
    e = report.estimate
    figures = _table(["", "teacher", "student"], [
        ["model", report.teacher_model, report.student_model],
        ["accuracy", e("teacher_accuracy").text(), e("student_accuracy").text()],
        ["macro-F1", e("teacher_macro_f1").text(), e("student_macro_f1").text()],
        *[[label, *(fmt(getattr(ctx.sizes[k], attr)) if ctx.sizes.get(k) else "n/a" for k in ("teacher", "student"))]
          for label, attr, fmt in (("parameters", "params", human_count),
                                   ("weights on disk", "disk_bytes", human_bytes),
                                   ("memory (tensors)", "memory_bytes", human_bytes))]])
    classes = _table(["class", "rows", "teacher P / R / F1", "student P / R / F1", "agreement"], [
        [c["class"], c["n"], *(" / ".join(_pct(c[m][k]) for k in ("precision", "recall", "f1"))
                               for m in ("teacher", "student")), _pct(c["agreement"])] for c in per_class(report)])
    priced = bool(price_per_hour)  # 0: no price given, so no cost column (a column of $0.00 says nothing)
    speed = _table(["model", "batch", "p50 ms", "p95 ms", "predictions / s",
                    *([f"cost per million at ${price_per_hour:g}/h"] if priced else [])],
                   [[t.model, t.batch_size, f"{t.p50_ms:.1f}", f"{t.p95_ms:.1f}", f"{t.per_second:,.1f}",
                     *([f"${t.cost_per_million(price_per_hour):,.2f}"] if priced else [])] for t in throughput])
    shown = disagreements_sorted(report)[:DISAGREEMENTS_SHOWN]
    disagree = _table(["text", "gold", "teacher (confidence)", "student (confidence)"], [
        [r["text"][:160], r["gold"], f"{r['teacher_prediction']} ({r['teacher_confidence']:.2f})",
         f"{r['student_prediction']} ({r['student_confidence']:.2f})"] for r in shown])
    env = (f"Python {platform.python_version()}, torch {torch.__version__}, device {report.device}, {cpu_name()} "
           f"({quantization_scheme()} instructions, {torch.get_num_threads()} threads); created {ctx.created}.")
    body = [*([f"<p class='verdict'>{html.escape(lead)}</p>", "<p class='note'>Every variant, fp32 and int8, "
               "with its interval and cost: frontier.html beside this page.</p>"] if lead else []),
            f"<h1>Can the student replace the teacher on {html.escape(ctx.data_name)}?</h1>",
            f"<p class='verdict'>{html.escape(head)}</p>",
            "<ul>" + "".join(f"<li>{html.escape(c)}</li>" for c in claims) + "</ul>",
            f"<p class='note'>{report.n_examples:,} labelled rows, task {html.escape(ctx.task)}. Brackets are 95% "
            "intervals: a claim is met only when the whole interval clears it, not met when it lies below, and not "
            "yet known when it straddles.</p>",
            "<h2>Scorecard</h2>", _scorecard_table(report, ctx), "<h2>Accuracy, macro-F1 and size</h2>", figures,
            "<h2>Per class</h2>", classes,
            f"<h2>Where they disagree ({len(report.disagreements):,} rows; the teacher's most confident first)</h2>",
            disagree, "<h2>Throughput and cost on this hardware</h2>", speed,
            "<h2>Reproduce</h2>", f"<pre>{html.escape(command)}</pre>", f"<p class='note'>{html.escape(env)}</p>"]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Decision: {html.escape(ctx.data_name)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")


def _scorecard_table(report: EvalReport, ctx: EvalContext) -> str:
    row = report_scorecard(report, ctx).rows[0]
    cells = []
    for claim in PAPER:
        value = getattr(row, claim)
        shown = (value.text(3) if isinstance(value, Estimate) else "–" if value is None else f"{value:.0%}")
        cells.append([PAPER_TEXT[claim], shown, row.state(claim) or "not measured"])
    return _table(["claim", "measured (95% interval)", "verdict"], cells)


STYLE = ("body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222;line-height:1.4}"
         "h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}"
         ".verdict{font-size:1.2em;font-weight:600;padding:.6em .8em;background:#f3f6fa;border-left:4px solid #1f77b4}"
         "table{border-collapse:collapse;width:100%;font-size:.9em}td,th{border:1px solid #ddd;padding:.3em .5em;"
         "text-align:left;vertical-align:top}th{background:#f7f7f7}.note{color:#555;font-size:.9em}"
         "pre{white-space:pre-wrap;background:#f7f7f7;padding:.6em}"
         "@media print{body{margin:0;max-width:none}h2{page-break-after:avoid}table{page-break-inside:avoid}}")


def command_line(argv: list[str]) -> str:
    """The evaluator's command as typed, to reproduce the page."""
    return "python -m demo.evaluate " + " ".join(shlex.quote(a) for a in argv) if argv else " ".join(sys.argv)
