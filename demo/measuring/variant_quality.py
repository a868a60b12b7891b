"""What acceleration costs in answers: each variant (ONNX fp32, int8 on either backend) against the fp32 model it
was made from (the student, or the teacher for teacher-int8) on a labelled file, for the benchmark's table."""

from __future__ import annotations

from demo.data.files import LabelledData
from demo.measuring.evaluation import LabelMismatch, label_index, predict_batch
from demo.models.loading import LoadedModel
from demo.models.variants import derived
from demo.models.variants import variant as variant_of


def variant_agreement(task: str, models: dict[str, LoadedModel], data: LabelledData, notes: list[str],
                      flag_share: float) -> list[dict]:
    """Agreement of each variant with the fp32 student (and accuracy) on a labelled file; the benchmark's
    cost-of-acceleration table. A variant that changes more than flag_share of the answers is flagged."""
    if task == "fill_mask" or "student" not in models:
        return []
    try:
        label_index(models["student"], data.labels)
    except LabelMismatch:
        notes.append(f"{task}: the eval file's labels are not this task's; no agreement measured for it.")
        return []
    preds = {}
    for variant, loaded in models.items():
        ids = []
        for start in range(0, len(data.texts), 32):
            ids += predict_batch(loaded, data.texts[start:start + 32])[0]
        preds[variant] = [loaded.id2label[i] for i in ids]
    out = []
    for variant, labels in preds.items():
        source = variant_of(variant).source if derived(variant) else "student"
        reference = preds.get(source, preds["student"])
        agree = sum(a.lower() == b.lower() for a, b in zip(labels, reference)) / len(labels)
        row = {"task": task, "variant": variant, "n_examples": len(labels), "agreement_with_student": agree,
               "changed_share": 1 - agree, "flagged": derived(variant) and (1 - agree) > flag_share}
        try:
            gold_map = label_index(models[variant], data.labels)
            names = models[variant].id2label
            row["accuracy"] = sum(lab == names[gold_map[g]] for lab, g in zip(labels, data.labels)) / len(labels)
        except LabelMismatch as exc:
            notes.append(f"{task} {variant}: no accuracy ({exc})")
        out.append(row)
    return out
