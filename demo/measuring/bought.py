"""What distillation bought, in one sentence: the distilled student against the same student trained on the
labels alone (same rows; the same budget, or its own with `--baseline-steps`, which the sentence then names),
with the paired interval and the exact McNemar p, and the teacher's figure beside it. The model card,
metrics.json, the Distillation tab and the Distil a student tab all say this one sentence.
"""

from __future__ import annotations

from demo.core.formatting import md_escape

LABELS_ALONE = "hard labels alone"  # the baseline's name starts so (distill/kd.py)


def labels_alone(metrics: dict) -> dict | None:
    """The run's hard-labels-alone baseline, where it trained one."""
    return next((b for b in metrics.get("baselines") or [] if b.get("name", "").startswith(LABELS_ALONE)), None)


def bought_sentence(metrics: dict) -> str | None:
    """None where the run has no labels-alone baseline (run without --baselines)."""
    baseline = labels_alone(metrics)
    paired = (baseline or {}).get("paired")
    if not paired:
        return None
    d, p = paired["difference"], paired["mcnemar_p"]
    steps = baseline.get("steps")
    own = (f" (for its own {steps:,} steps)" if steps and metrics.get("total_steps") not in (None, steps) else "")
    alone = f"over training this student on your labels alone{own}"
    teacher = (f" (the teacher: {metrics['teacher_accuracy']:.4f}, the student: {metrics['student_accuracy']:.4f}, "
               f"labels alone: {baseline['accuracy']:.4f}, on {paired['n']:,} rows)")
    if p is None or d.get("low") is None:
        return f"distilling bought no detectable difference {alone}" + teacher
    lead = f"{d['value'] * 100:+.1f} points [{d['low'] * 100:+.1f}, {d['high'] * 100:+.1f}]"
    if p < 0.05:
        verb = "bought" if d["value"] > 0 else "cost"
        return f"distilling {verb} {lead} {alone} (exact McNemar p = {p:.3g})" + teacher
    return f"distilling bought no detectable difference {alone} ({lead}, exact McNemar p = {p:.3g})" + teacher


def bought_heading(metrics: dict) -> str | None:
    """The sentence as the page leads with it (the Distillation tab, the Distil tab's result)."""
    sentence = bought_sentence(metrics)
    return f"### {md_escape(sentence[0].upper() + sentence[1:])}." if sentence else None
