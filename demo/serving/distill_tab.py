"""The Distillation tab: the training script, the recipe that made the shown student, its evidence."""

from __future__ import annotations

import gradio as gr

from demo.core.formatting import md_escape
from demo.measuring.bought import bought_heading
from demo.measuring.charts import (
    recipe_comparison_chart,
    retention_chart,
    run_size_speed_chart,
    training_curves,
)
from demo.models.config import DistillationLink
from demo.serving.evidence import load_evidence, reference_link, script_markdown


def build_tab(link: DistillationLink | None, space_id: str | None) -> None:
    """Adds the tab's components; the run's files are read once, when the page is built."""
    gr.Markdown("What distillation buys, shown on the run that produced the student: its script, its recipe, "
                "how it learnt, and how it compares with its teacher and with students trained without one.")
    gr.Markdown(script_markdown(link, space_id), elem_id="distill-script")
    evidence, note = load_evidence(link)
    if evidence is None:
        gr.Markdown(note, elem_id="distill-note")
        return
    if link is None:  # the repository's reference run, said as such
        gr.Markdown(note, elem_id="distill-reference")
        link = reference_link()
    bought = bought_heading(evidence.metrics)
    if bought:  # what distillation bought over the labels alone, first
        gr.Markdown(bought, elem_id="distill-bought")
    gr.Markdown(evidence.recipe_markdown(), elem_id="distill-recipe")
    figures = evidence.figures  # a classifier run's or a general-distillation run's, charted alike
    gr.Plot(training_curves(evidence.history, figures["score_name"]), label="Training curves",
            elem_id="distill-curves")
    with gr.Row():
        gr.Plot(recipe_comparison_chart(figures), label="Recipes compared", elem_id="distill-recipes")
        gr.Plot(retention_chart(figures), label="Retention by domain", elem_id="distill-retention")
    leads = [b["lead"] for b in figures.get("baselines") or [] if b.get("lead")]
    if leads:
        gr.Markdown("**What distillation adds, on the same rows** (the distilled student against each baseline, "
                    "paired; a lead whose interval holds 0 is not a result):\n\n" + "\n".join(f"- {md_escape(x)}"
                                                                                            for x in leads),
                    elem_id="distill-leads")
    gr.Plot(run_size_speed_chart(figures), label="Size and speed", elem_id="distill-size")
    card = link.card_text() if link is not None else None
    if card:
        with gr.Accordion("The student's model card", open=False):
            gr.Markdown(card, elem_id="distill-card")
