"""Teacher and student on a labelled set: batched predictions, figures, per-example rows.

Shared by the distillation CLI (its metrics.json), the evaluator CLI and the Evaluate tab, so
the three always agree on a figure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch

from .compare import INFERENCE_LOCK
from .loading import LoadedModel
from .measure import timed
from .metrics import accuracy, agreement, confusion_matrix, macro_f1
from .tasks import accepted_inputs

DEFAULT_BATCH_SIZE = 32  # sequences per forward pass; 32 keeps 2 CPU cores busy without padding waste
DEFAULT_MAX_LENGTH = 128  # tokens per text for evaluation (SST-2 and emotion texts are far shorter)


class LabelMismatch(ValueError):
    """The file's labels cannot be matched to a model's classes."""


@dataclass
class BatchPredictions:
    labels: list[int]  # predicted class ids in the model's own numbering
    confidences: list[float]
    latency_ms: list[float]  # one entry per batch: tokenise + forward + argmax


@torch.inference_mode()
def predict_batch(loaded: LoadedModel, texts: Sequence[str], max_length: int = DEFAULT_MAX_LENGTH):
    """Classify a batch: tokenise (padded, cut to max_length), forward, softmax. Returns (ids, confidences)."""
    enc = loaded.tokenizer(list(texts), truncation=True, max_length=min(max_length, loaded.max_length),
                           padding=True, return_tensors="pt")
    accepted = accepted_inputs(loaded.model)
    inputs = {k: v.to(loaded.device) for k, v in enc.items() if k in accepted}
    probs = loaded.model(**inputs).logits.float().softmax(-1)
    conf, ids = probs.max(-1)
    return ids.tolist(), conf.tolist()


def label_index(loaded: LoadedModel, names: Sequence[str]) -> dict[str, int]:
    """Map gold label names (or integer strings) onto a model's class ids, case-insensitively."""
    by_name = {v.lower(): k for k, v in loaded.id2label.items()}
    mapping, unknown = {}, []
    for name in dict.fromkeys(names):
        key = str(name).strip().lower()
        if key in by_name:
            mapping[name] = by_name[key]
        elif key.lstrip("-").isdigit() and int(key) in loaded.id2label:
            mapping[name] = int(key)
        else:
            unknown.append(str(name))
    if unknown:
        known = ", ".join(loaded.id2label[i] for i in sorted(loaded.id2label))
        raise LabelMismatch(f"labels {', '.join(sorted(unknown))} are unknown to {loaded.name}, "
                            f"which knows: {known}.")
    return mapping


@dataclass
class EvalReport:
    """Everything a stakeholder needs to judge a student on one labelled set."""

    n_examples: int
    label_names: list[str]
    teacher_model: str
    student_model: str
    teacher_accuracy: float
    student_accuracy: float
    retention: float
    agreement: float
    teacher_macro_f1: float
    student_macro_f1: float
    teacher_total_ms: float
    student_total_ms: float
    speedup: float
    batch_size: int
    device: str
    teacher_confusion: list[list[int]] = field(default_factory=list)
    student_confusion: list[list[int]] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list, repr=False)

    def figures(self) -> dict:
        """The headline numbers (report.json, metrics.json), without the per-example rows."""
        data = asdict(self)
        data.pop("rows")
        return data

    @property
    def disagreements(self) -> list[dict]:
        return [r for r in self.rows if r["teacher_prediction"] != r["student_prediction"]]


def _timed_batch(loaded: LoadedModel, texts: Sequence[str], max_length: int, into: BatchPredictions) -> None:
    """One batch through one model, timed like every other answer (lock held, device synchronised)."""
    with INFERENCE_LOCK:
        (ids, conf), ms = timed(lambda: predict_batch(loaded, texts, max_length), loaded.device)
    into.labels += ids
    into.confidences += conf
    into.latency_ms.append(ms)


def _in_file_order(preds: BatchPredictions, by_length: list[int]) -> BatchPredictions:
    labels, confidences = [0] * len(by_length), [0.0] * len(by_length)
    for position, index in enumerate(by_length):
        labels[index], confidences[index] = preds.labels[position], preds.confidences[position]
    return BatchPredictions(labels, confidences, preds.latency_ms)


def evaluate_pair(teacher: LoadedModel, student: LoadedModel, texts: Sequence[str], gold: Sequence[str],
                  batch_size: int = DEFAULT_BATCH_SIZE, max_length: int = DEFAULT_MAX_LENGTH,
                  progress: Callable[[int, int], None] | None = None) -> EvalReport:
    """Batched evaluation of both models on the same batches, alternating which model goes first."""
    if len(texts) != len(gold) or not texts:
        raise ValueError("texts and labels must be non-empty and of equal length.")
    t_map = label_index(teacher, gold)
    label_index(student, gold)  # the student must know every gold label too (raises LabelMismatch)
    names = [teacher.id2label[i] for i in sorted(teacher.id2label)]
    # Batches of similar length waste little on padding: run in length order, report in file order.
    by_length = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    sorted_texts = [texts[i] for i in by_length]
    t_sorted, s_sorted = BatchPredictions([], [], []), BatchPredictions([], [], [])
    starts = list(range(0, len(texts), batch_size))
    for n, start in enumerate(starts):
        order = [(teacher, t_sorted), (student, s_sorted)]
        if n % 2:
            order.reverse()
        for loaded, into in order:
            _timed_batch(loaded, sorted_texts[start:start + batch_size], max_length, into)
        if progress is not None:
            progress(min(start + batch_size, len(texts)), len(texts))
    t_pred, s_pred = _in_file_order(t_sorted, by_length), _in_file_order(s_sorted, by_length)
    # Compare in the teacher's numbering: student ids map through the shared label names.
    student_names = [student.id2label[i] for i in sorted(student.id2label)]
    s_to_t = {sid: label_index(teacher, student_names)[student.id2label[sid]] for sid in student.id2label}
    gold_t = [t_map[g] for g in gold]
    student_in_t = [s_to_t[s] for s in s_pred.labels]
    t_acc, s_acc = accuracy(t_pred.labels, gold_t), accuracy(student_in_t, gold_t)
    rows = [{"index": i, "text": texts[i], "gold": names[gold_t[i]],
             "teacher_prediction": names[t_pred.labels[i]], "teacher_confidence": round(t_pred.confidences[i], 6),
             "student_prediction": names[student_in_t[i]], "student_confidence": round(s_pred.confidences[i], 6)}
            for i in range(len(texts))]
    t_ms, s_ms = sum(t_pred.latency_ms), sum(s_pred.latency_ms)
    return EvalReport(
        n_examples=len(texts), label_names=names, teacher_model=teacher.name, student_model=student.name,
        teacher_accuracy=t_acc, student_accuracy=s_acc, retention=s_acc / t_acc if t_acc else float("nan"),
        agreement=agreement(t_pred.labels, student_in_t),
        teacher_macro_f1=macro_f1(t_pred.labels, gold_t), student_macro_f1=macro_f1(student_in_t, gold_t),
        teacher_total_ms=t_ms, student_total_ms=s_ms, speedup=t_ms / s_ms if s_ms else float("nan"),
        batch_size=batch_size, device=str(teacher.device),
        teacher_confusion=confusion_matrix(t_pred.labels, gold_t, len(names)),
        student_confusion=confusion_matrix(student_in_t, gold_t, len(names)), rows=rows)
