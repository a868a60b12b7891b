"""The student's model card, rendered from model_card/template.md with huggingface_hub's tools."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

TEMPLATE = Path(__file__).resolve().parents[2] / "model_card" / "template.md"


def eval_results(metrics: dict, dataset_name: str, dataset_type: str) -> list[EvalResult]:
    """model-index entries: accuracy and F1, plus size and speed figures as named metrics."""
    common = dict(task_type="text-classification", task_name="Text Classification",
                  dataset_type=dataset_type, dataset_name=dataset_name, dataset_split="validation")
    return [
        EvalResult(metric_type="accuracy", metric_value=round(metrics["student_accuracy"], 4), **common),
        EvalResult(metric_type="f1", metric_name="macro-F1", metric_value=round(metrics["student_macro_f1"], 4),
                   metric_config="macro", **common),
        EvalResult(metric_type="retention", metric_name="Accuracy retention vs teacher",
                   metric_value=round(metrics["retention"], 4), **common),
        EvalResult(metric_type="params", metric_name="Parameters", metric_value=int(metrics["student_params"]),
                   **common),
        EvalResult(metric_type="speedup", metric_name=f"Speedup over teacher ({metrics['device']})",
                   metric_value=round(metrics["speedup"], 3), **common),
    ]


def render_card(metrics: dict, context: dict, template: Path = TEMPLATE) -> ModelCard:
    """metrics: the run's metrics.json; context: what the template needs beyond the figures."""
    card_data = ModelCardData(
        language="en", license="apache-2.0", library_name="transformers", pipeline_tag="text-classification",
        tags=["distillation", "distilbert", "knowledge-distillation", "text-classification"],
        base_model=context["teacher"] if not Path(context["teacher"]).exists() else None,
        datasets=[context["dataset_type"]] if "/" in context["dataset_type"] or not Path(
            context["dataset_type"]).suffix else None,
        metrics=["accuracy", "f1"], model_name=context["model_name"],
        eval_results=eval_results(metrics, context["dataset_name"], context["dataset_type"]),
    )
    return ModelCard.from_template(card_data, template_path=str(template), m=AttrDict(metrics), **context)


class AttrDict(dict):
    """Lets the template write m.student_accuracy for metrics['student_accuracy']."""

    __getattr__ = dict.__getitem__
