"""The student's model card, rendered from model_card/template.md with huggingface_hub's tools."""

from __future__ import annotations

import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from demo.core.formatting import without_paths
from demo.distill.data import data_description
from demo.measuring.overlap import Overlap
from demo.measuring.stats import Estimate
from demo.models.loading import LoadedModel
from demo.models.tasks import EXAMPLE_TEXT

EMOTIONS = {"sadness", "joy", "love", "anger", "fear", "surprise"}
GENERIC_EXAMPLE = "This is an example sentence for the model to classify."
# The Hub's relations are adapter, merge, quantized and finetune; a student whose layers are copied from its
# teacher and trained on is listed among the teacher's fine-tunes (there is no "distilled" relation).
BASE_MODEL_RELATION = "finetune"

TEMPLATE = Path(__file__).resolve().parents[2] / "model_card" / "template.md"
MLM_TEMPLATE = TEMPLATE.with_name("template_mlm.md")


def eval_results(metrics: dict, hub_dataset: str | None, config: str | None = None,
                 split: str = "validation") -> list[EvalResult]:
    """model-index entries, as the Hub reads them: evaluation metrics on a dataset the Hub knows, and only
    those (transformers' Trainer leaves a result out when it has no Hub dataset). A run on local files has
    none; its figures, like speedup, size, retention, other test sets and the paired leads, are in the
    card's tables and metrics.json."""
    if not hub_dataset:
        return []
    common = dict(task_type="text-classification", task_name="Text Classification", dataset_type=hub_dataset,
                  dataset_name=f"{hub_dataset} ({config})" if config else hub_dataset, dataset_config=config,
                  dataset_split=split)
    return [EvalResult(metric_type="accuracy", metric_value=round(metrics["student_accuracy"], 4), **common),
            EvalResult(metric_type="f1", metric_name="macro-F1", metric_value=round(metrics["student_macro_f1"], 4),
                       metric_config="macro", **common)]


def hub_url(model: str) -> str | None:
    """A model's page on the Hub; None for a local directory (the card names it without a link)."""
    hub = hub_id(model)
    return f"https://huggingface.co/{hub}" if hub else None


def teacher_name(model: str) -> str:
    """How the card names the teacher: its Hub id, else its folder's name (never a path of this machine)."""
    return hub_id(model) or Path(model).name or model


def example_sentence(label_names: list[str], given: str | None = None) -> str:
    """The card's usage example: the publisher's sentence, else a neutral one of the task (never a row of
    anyone's data: the card is published)."""
    if given and given.strip():
        return " ".join(given.split())[:200].replace('"', "'")
    names = {n.lower() for n in label_names}
    if names and names <= {"negative", "positive", "neutral"}:
        return EXAMPLE_TEXT["sentiment"]
    if names & EMOTIONS:
        return EXAMPLE_TEXT["classify"]
    return GENERIC_EXAMPLE


def class_names(label_names: list[str], teacher_labels: dict[int, str] | None) -> list[str]:
    """The classes as the teacher names them where the data named them by number (a file labelled 0/1)."""
    generic = not teacher_labels or all(str(v).upper().startswith("LABEL_") for v in teacher_labels.values())
    if not generic and all(str(n).strip().isdigit() and int(n) in teacher_labels for n in label_names):
        return [teacher_labels[int(n)] for n in label_names]
    return list(label_names)


def teacher_facts(model: str) -> dict[str, object]:
    """license and language from the teacher's own card (its folder's README.md, or the Hub's copy in the
    local cache); {} when it has none: the student's card then leaves them to the publisher and says so."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.repocard import metadata_load

    path = Path(model) / "README.md"
    if not path.is_file() and hub_id(model) and not Path(model).exists():
        cached = try_to_load_from_cache(model, "README.md")
        path = Path(cached) if isinstance(cached, str) else path
    try:
        meta = metadata_load(path) if path.is_file() else None
    except Exception:  # noqa: BLE001 - a card whose header does not parse gives no facts
        meta = None
    return {k: meta[k] for k in ("license", "language") if meta and meta.get(k)}


def hub_id(model: str) -> str | None:
    """The model's Hub id, for `base_model`: the id itself, or that of a Hub snapshot on disk
    (.../models--org--name/snapshots/SHA); None for any other local directory."""
    path = Path(model)
    if not path.exists():
        return model if model.count("/") == 1 else None
    for part in path.resolve().parts:
        if part.startswith("models--") and part.count("--") >= 2:
            return part[len("models--"):].replace("--", "/", 1)
    return None


FRAMEWORKS = ("transformers", "torch", "accelerate", "datasets", "tokenizers", "huggingface_hub", "onnxruntime")


def framework_versions() -> dict[str, str]:
    """The libraries this run trained and measured with, as the Trainer's cards list them."""
    found = {"Python": platform.python_version()}
    for name in FRAMEWORKS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def evaluations(out: Path) -> list[dict]:
    """The run's evaluations from its history.jsonl (the rows marked evaluated), for the results table."""
    path = out / "history.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row for row in rows if row.get("evaluated")]


def interval_texts(intervals: dict) -> dict[str, str]:
    """Each figure as "value [low, high]" (or "undefined (why)") for the card's tables."""
    digits = {"speedup": 2, "retention": 3, "agreement": 3, "retention_top1": 3, "agreement_top1": 3}
    out = {}
    for name, raw in intervals.items():
        out[name] = Estimate(**raw).text(digits.get(name, 4), unit="×" if name == "speedup" else "")
    return out


def lead_text(paired: dict | None) -> str:
    """A paired comparison in a table cell: "+2.3 points [0.9, 3.7], p = 0.002"."""
    if not paired:
        return "–"
    diff = Estimate(**paired["difference"])
    if not diff.defined:
        return diff.text()
    p = "no row differs" if paired["mcnemar_p"] is None else f"p = {paired['mcnemar_p']:.3g}"
    return f"{diff.value * 100:+.1f} points [{diff.low * 100:+.1f}, {diff.high * 100:+.1f}], {p}"


def card_metadata(teacher: str, arch: str, pipeline_tag: str, **extra) -> ModelCardData:
    """The metadata every card of this project carries: facts read from the teacher, tags true to the
    student's architecture, base_model (and its relation) only for a teacher on the Hub."""
    facts, base = teacher_facts(teacher), hub_id(teacher)
    return ModelCardData(
        language=facts.get("language"), license=facts.get("license"), library_name="transformers",
        pipeline_tag=pipeline_tag, tags=["distillation", "knowledge-distillation", arch, pipeline_tag],
        base_model=base, base_model_relation=BASE_MODEL_RELATION if base else None, **extra)


def unknown_facts(teacher: str) -> list[str]:
    """What the card leaves to its publisher because the teacher's card does not say it."""
    facts = teacher_facts(teacher)
    return [k for k in ("license", "language") if k not in facts]


def render_card(metrics: dict, context: dict, template: Path = TEMPLATE) -> ModelCard:
    """metrics: the run's metrics.json; context: what the template needs beyond the figures."""
    card_data = card_metadata(
        context["teacher_path"], context["student_arch"], "text-classification",
        datasets=[context["hub_dataset"]] if context.get("hub_dataset") else None,  # local files: said in the text
        metrics=["accuracy", "f1"], model_name=context["model_name"],
        eval_results=eval_results(metrics, context.get("hub_dataset"), context.get("hub_dataset_config")) or None,
    )
    return ModelCard.from_template(card_data, template_path=str(template), m=metrics, **context)


def loss_description(metrics: dict) -> str:
    """The loss as a sum of its switched-on terms, for either objective (a general-distillation run's
    soft targets are over the vocabulary at the masked positions), read from the run's own metrics."""
    w = metrics["loss_weights"]
    mlm = metrics.get("objective") == "mlm"
    cos_layers = metrics["args"]["cos_layers"]
    terms = []
    if w["alpha_ce"]:
        where = "over the vocabulary at the masked positions, temperature" if mlm else "on softmax at temperature"
        terms.append(f"{w['alpha_ce']} × KL(teacher ‖ student) {where} T = {w['temperature']}, scaled by T²")
    if w.get("alpha_hard"):
        terms.append(f"{w['alpha_hard']} × cross-entropy on the gold labels (labelled rows only)")
    if w.get("alpha_mlm"):
        terms.append(f"{w['alpha_mlm']} × the masked-LM loss on the true tokens")
    if w["alpha_cos"]:
        pairs = ("every student layer's hidden states and those of the teacher layer it was copied from, embeddings "
                 "included" if cos_layers == "all" else "the last layer")
        terms.append(f"{w['alpha_cos']} × cosine loss between student and teacher hidden states ({pairs}, real "
                     "tokens only)")
    if w.get("alpha_hidden"):
        terms.append(f"{w['alpha_hidden']} × MSE between every student layer's hidden states and its teacher "
                     "layer's (embeddings included)")
    if w.get("alpha_attn"):
        terms.append(f"{w['alpha_attn']} × KL between the attention distributions of mapped layers")
    return " + ".join(terms)


def write_card(out: Path, metrics: dict, dargs, data_args, data, layers: list[int], teacher: LoadedModel) -> None:
    """No row of the data and no path of this machine in it: the card is what the Hub shows.
    teacher: the loaded teacher (its layer count, its class names)."""
    n_teacher_layers, best_epoch = teacher.model.config.num_hidden_layers, metrics["best_epoch"]
    teacher_labels = teacher.id2label
    dataset_name = data_args.dataset or Path(data_args.first_train_file).parent.name or "local files"
    repo_id = dargs.publish.push_to_hub or f"{out.name}"
    classes = class_names(data.label_names, teacher_labels)
    teacher = dargs.student.teacher
    context = {
        "model_name": repo_id.split("/")[-1], "repo_id": repo_id, "teacher": teacher_name(teacher),
        "teacher_path": teacher, "teacher_url": hub_url(teacher), "unknown_facts": unknown_facts(teacher),
        "task_description": f"text classification ({', '.join(classes)})",
        "student_layer_count": len(layers), "teacher_layer_count": n_teacher_layers, "layers": layers,
        "student_arch": dargs.student.student_arch,
        "student_arch_name": "DistilBERT" if dargs.student.student_arch == "distilbert" else "BERT",
        "loss_description": loss_description(metrics), "args": metrics["args"],
        "best_epoch": best_epoch, "data_description": data_description(data_args, data),
        "example_text": example_sentence(classes, dargs.publish.card_example), "label_names": classes,
        "max_seq_length": data_args.max_seq_length, "command": without_paths(metrics["command"]),
        "baselines": [{**b, "ci": interval_texts(b.get("intervals", {})), "lead": lead_text(b.get("paired"))}
                      for b in metrics.get("baselines") or []] or None,
        "ci": interval_texts(metrics.get("intervals", {})), "dataset_name": without_paths(dataset_name),
        "hub_dataset": data_args.dataset, "hub_dataset_config": data_args.dataset_config,
        "frameworks": framework_versions(), "evaluations": evaluations(out),
        "overlap_sentences": Overlap(**metrics["overlap"]).sentences() if metrics.get("overlap") else [],
    }
    render_card(metrics, context).save(out / "README.md")


def write_mlm_card(out: Path, metrics: dict, dargs, corpus, layers: list[int], n_teacher_layers: int,
                   data_description: str) -> None:
    """The general-distilled student's card: fill-mask figures against the teacher and baselines."""
    repo_id = dargs.publish.push_to_hub or out.name
    teacher = dargs.student.teacher
    given = dargs.publish.card_example
    example = " ".join(given.split())[:200] if given and "[MASK]" in given else EXAMPLE_TEXT["fill_mask"]
    card_data = card_metadata(teacher, dargs.student.student_arch, "fill-mask",
                              model_name=repo_id.split("/")[-1])  # no model-index (see eval_results)
    context = {
        "model_name": repo_id.split("/")[-1], "repo_id": repo_id, "teacher": teacher_name(teacher),
        "teacher_url": hub_url(teacher), "unknown_facts": unknown_facts(teacher),
        "student_layer_count": len(layers), "teacher_layer_count": n_teacher_layers, "layers": layers,
        "student_arch_name": "DistilBERT" if dargs.student.student_arch == "distilbert" else "BERT",
        "loss_description": loss_description(metrics), "args": metrics["args"],
        "data_description": without_paths(data_description), "example_text": example.replace('"', "'"),
        "max_seq_length": metrics["args"]["max_seq_length"], "command": without_paths(metrics["command"]),
        "baselines": [{**b, "ci": interval_texts(b["masked_lm"].get("intervals", {}))}
                      for b in metrics.get("baselines") or []] or None,
        "r": metrics["masked_lm"], "ci": interval_texts(metrics["masked_lm"].get("intervals", {})),
        "frameworks": framework_versions(), "evaluations": evaluations(out),
        "eval_ci": {name: interval_texts(e.get("intervals", {}))
                    for name, e in (metrics.get("eval_sets") or {}).items()}}
    ModelCard.from_template(card_data, template_path=str(MLM_TEMPLATE), m=metrics, **context).save(out / "README.md")
