"""Teacher and student on a labelled set: settings, batched predictions, figures, per-example rows.

Shared by the distillation CLI (its metrics.json), the evaluator CLI and the Evaluate tab, so
the three always agree on a figure and refuse the same settings with the same message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from demo.core.errors import UserError
from demo.core.measure import SizeReport, timed_exclusive
from demo.data.files import (
    DEFAULT_LIMITS,
    MAX_FILE_BYTES,
    QUOTING,
    DataError,
    LabelledData,
    ReadLimits,
    listed,
    read_labelled,
)
from demo.measuring import stats
from demo.measuring.overlap import overlap, trained_on
from demo.measuring.scoring import accuracy, agreement, confusion_matrix, macro_f1
from demo.measuring.stats import Estimate
from demo.models.config import LABELLED_TASKS, ConfigError
from demo.models.inputs import length_problem, model_inputs
from demo.models.loading import LoadedModel

if TYPE_CHECKING:
    from demo.models.registry import PairRegistry

DEFAULT_BATCH_SIZE = 32  # sequences per forward pass; 32 keeps 2 CPU cores busy without padding waste
DEFAULT_MAX_LENGTH = 128  # tokens per text for evaluation (SST-2 and emotion texts are far shorter)
MAX_ROWS = 20_000  # examples per evaluation unless max_rows says otherwise; bounds time on 2 CPU cores


class LabelMismatch(UserError, ValueError):
    """The file's labels cannot be matched to a model's classes."""


@dataclass(frozen=True)
class EvalRequest:
    """What to evaluate and where its reports go, built once at the CLI's edge (demo/evaluate.py) from its
    flags: the library reads these fields and returns what it wrote; the CLI prints and picks the exit code."""

    config: str | None  # pairs YAML (None: the shipped pairs.yaml)
    task: str
    file: str
    text_column: str | None
    label_column: str | None
    device: str | None
    out: str
    against: str | None  # a second student, compared row by row
    decision: bool  # also write decision.html
    price_per_hour: float | None
    margin: float  # --frontier: accuracy points a variant may lose against the teacher
    students: tuple[str, ...] = ()  # --frontier: more students of the same labels
    command: tuple[str, ...] = ()  # the command as typed, for the decision page


@dataclass(frozen=True)
class EvalSettings:
    """How to evaluate, checked on creation: the CLI's flags and the tab's fields both become one."""

    task: str
    batch_size: int = DEFAULT_BATCH_SIZE
    max_length: int = DEFAULT_MAX_LENGTH
    max_rows: int | None = None  # None: every row, up to MAX_ROWS
    unbatched_baseline: bool = False  # also time one example at a time, to show what batching buys
    quoting: str = "auto"  # CSV/TSV quoting: auto (detect), none (GLUE-style) or csv
    read_limits: ReadLimits = DEFAULT_LIMITS  # what the file may cost to read (the app's are tighter)

    def __post_init__(self):
        if self.task not in (*LABELLED_TASKS, "fill_mask"):  # fill_mask: held-out text, masked-LM figures
            raise ConfigError(f"task {self.task!r} cannot be evaluated; use one of "
                              f"{', '.join(LABELLED_TASKS)} or fill_mask.")
        if self.batch_size < 1 or (self.max_rows is not None and self.max_rows < 1):
            raise ConfigError("batch size and max rows must be at least 1 (leave max rows out for every row).")
        if (problem := length_problem(self.max_length, "max length")) is not None:
            raise ConfigError(problem)
        if self.quoting not in QUOTING:
            raise ConfigError(f"quoting {self.quoting!r}: use {', '.join(QUOTING)}.")


def read_eval_file(path: str | Path, text_column: str | None, label_column: str | None,
                   settings: EvalSettings) -> LabelledData:
    """The labelled file, at most settings.max_rows rows; a file over MAX_ROWS needs max_rows set."""
    if settings.task not in LABELLED_TASKS:
        raise ConfigError(f"task {settings.task!r} has no labels to evaluate against: measure a fill-mask pair on "
                          "text with python -m demo.evaluate --task fill_mask.")
    data = read_labelled(path, text_column, label_column, max_rows=settings.max_rows, max_bytes=MAX_FILE_BYTES,
                         quoting=settings.quoting, limits=settings.read_limits)
    if settings.max_rows is None and len(data) > MAX_ROWS:
        raise DataError(f"{Path(path).name} has {len(data):,} rows, over the {MAX_ROWS:,} limit; set max rows "
                        f"(--max-rows N) to evaluate a sample of the first N rows.")
    return data


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
    probs = loaded.model(**model_inputs(loaded.model, enc, loaded.device)).logits.float().softmax(-1)
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
        raise LabelMismatch(f"labels {listed(sorted(unknown))} are unknown to {loaded.name}, "
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
    intervals: dict[str, dict] = field(default_factory=dict)  # figure -> Estimate.to_dict(): value, 95% interval, n
    paired: dict = field(default_factory=dict)  # teacher against student on the same rows (PairedComparison)
    rows: list[dict] = field(default_factory=list, repr=False)

    def estimate(self, name: str) -> Estimate:
        """A figure with its interval (accuracy, macro-F1, agreement, retention, speedup; teacher_/student_)."""
        return Estimate(**self.intervals[name])

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
    (ids, conf), ms = timed_exclusive(lambda: predict_batch(loaded, texts, max_length), loaded.device)
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
                  progress: Callable[[int, int], None] | None = None, intervals: bool = True) -> EvalReport:
    """Batched evaluation of both models on the same batches, alternating which model goes first.
    intervals=False: the figures alone (a pass that is only timed)."""
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
    intervals, paired = (uncertainty(t_pred.labels, student_in_t, gold_t, t_pred.latency_ms, s_pred.latency_ms)
                         if intervals else ({}, {}))
    return EvalReport(
        n_examples=len(texts), label_names=names, teacher_model=teacher.name, student_model=student.name,
        teacher_accuracy=t_acc, student_accuracy=s_acc, retention=s_acc / t_acc if t_acc else float("nan"),
        agreement=agreement(t_pred.labels, student_in_t),
        teacher_macro_f1=macro_f1(t_pred.labels, gold_t), student_macro_f1=macro_f1(student_in_t, gold_t),
        teacher_total_ms=t_ms, student_total_ms=s_ms, speedup=t_ms / s_ms if s_ms else float("nan"),
        batch_size=batch_size, device=str(teacher.device),
        teacher_confusion=confusion_matrix(t_pred.labels, gold_t, len(names)),
        student_confusion=confusion_matrix(student_in_t, gold_t, len(names)), intervals=intervals, paired=paired,
        rows=rows)


def uncertainty(teacher: list[int], student: list[int], gold: list[int], teacher_ms: list[float],
                student_ms: list[float]) -> tuple[dict[str, dict], dict]:
    """Every figure's 95% interval, and teacher against student on the same rows (exact McNemar).
    The speedup's interval comes from the per-batch timing pairs (both models ran each batch in turn)."""
    t_hits = [p == g for p, g in zip(teacher, gold)]
    s_hits = [p == g for p, g in zip(student, gold)]
    n = len(gold)
    estimates = {"teacher_accuracy": stats.proportion(sum(t_hits), n),
                 "student_accuracy": stats.proportion(sum(s_hits), n),
                 "agreement": stats.proportion(sum(a == b for a, b in zip(teacher, student)), n),
                 "teacher_macro_f1": stats.macro_f1_estimate(teacher, gold),
                 "student_macro_f1": stats.macro_f1_estimate(student, gold),
                 "retention": stats.ratio(s_hits, t_hits, "retention"),
                 "speedup": stats.speedup(teacher_ms, student_ms)}
    paired = stats.paired_comparison(s_hits, t_hits, "student", "teacher")
    return {k: e.to_dict() for k, e in estimates.items()}, paired.to_dict()


@dataclass
class EvalContext:
    """What the figures alone do not say: which data, which task, the sizes, the unbatched baseline."""

    task: str
    data_name: str
    sizes: dict[str, SizeReport | None]
    unbatched: dict | None = None  # {"batch_size": 1, "teacher_total_ms":..., "student_total_ms":..., "ratio":...}
    created: str = ""
    against: dict | None = None  # --against MODEL: its figures and the student against it on the same rows
    overlap: dict | None = None  # Overlap.to_dict(): scored rows each model was trained on (contamination)

    def __post_init__(self):
        self.created = self.created or datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def evaluate_task(registry: PairRegistry, data: LabelledData, settings: EvalSettings,
                  progress: Callable[[int, int], None] | None = None) -> tuple[EvalReport, EvalContext]:
    """Both models of a configured task on a labelled set; labels are checked before any inference."""
    teacher, student = registry.pair(settings.task)
    for model in (teacher, student):
        label_index(model, data.labels)  # raises LabelMismatch naming unknown and known labels
    report = evaluate_pair(teacher, student, data.texts, data.labels, settings.batch_size, settings.max_length,
                           progress)
    unbatched = None
    if settings.unbatched_baseline:
        one = evaluate_pair(teacher, student, data.texts, data.labels, 1, settings.max_length, intervals=False)
        unbatched = {"batch_size": 1, "teacher_total_ms": one.teacher_total_ms,
                     "student_total_ms": one.student_total_ms,
                     "ratio": (one.teacher_total_ms + one.student_total_ms) /
                              (report.teacher_total_ms + report.student_total_ms)}
    sizes = {s.variant: s.size for s in registry.status(settings.task)}
    trained = {who: trained_on(m.spec.model) for who, m in (("teacher", teacher), ("student", student))}
    return report, EvalContext(task=settings.task, data_name=Path(data.source).name, sizes=sizes, unbatched=unbatched,
                               overlap=overlap(data.texts, trained).to_dict())
