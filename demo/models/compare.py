"""Run one text through teacher and student, one after the other, and compare the answers."""

from __future__ import annotations

from dataclasses import dataclass, field

from demo.core import zerogpu
from demo.core.measure import INFERENCE_LOCK, timed
from demo.models.loading import LoadedModel
from demo.models.tasks import (
    EXAMPLE_TEXT,
    HIGH_UNK_SHARE,
    InputError,
    Prediction,
    predict,
    prepare_text,
)

UNK_NOTICE = ("{share:.0%} of the {variant}'s tokens are [UNK]: it cannot represent these characters, so its answer "
              "means little.")


@dataclass
class VariantResult:
    """What one model answered, and how long the user waited for it."""

    variant: str
    model: str
    prediction: Prediction
    latency_ms: float
    device: str
    dtype: str

    def summary(self) -> dict:
        return {"model": self.model, "prediction": {"label": self.prediction.label,
                                                    "score": round(self.prediction.score, 6)},
                "latency_ms": round(self.latency_ms, 3), "device": self.device, "dtype": self.dtype}


@dataclass
class Comparison:
    """Teacher and student on the same text: both answers, agreement and speedup."""

    task: str
    text: str
    teacher: VariantResult
    student: VariantResult
    teacher_first: bool
    notices: list[str] = field(default_factory=list)
    extra: dict[str, VariantResult] = field(default_factory=dict)  # e.g. the ONNX int8 student
    random_weights: bool = False  # architecture-only fallback: latency and size are real, answers are not

    def results(self) -> dict[str, VariantResult]:
        """Every variant's answer: teacher, student, then any extra (e.g. the ONNX int8 student)."""
        return {"teacher": self.teacher, "student": self.student, **self.extra}

    @property
    def agree(self) -> bool:
        return self.teacher.prediction.label.lower() == self.student.prediction.label.lower()

    @property
    def top_overlap(self) -> float:
        """Share of the teacher's top-k that the student also ranks in its top-k."""
        t = {lab.lower() for lab, _ in self.teacher.prediction.top}
        s = {lab.lower() for lab, _ in self.student.prediction.top}
        return len(t & s) / len(t) if t else 0.0

    @property
    def speedup(self) -> float:
        return self.teacher.latency_ms / self.student.latency_ms if self.student.latency_ms > 0 else float("inf")

    def summary(self) -> dict:
        """The API's JSON answer."""
        data = {"task": self.task, "text": self.text, "teacher": self.teacher.summary(),
                "student": self.student.summary(), "agree": self.agree, "speedup": round(self.speedup, 4),
                "notices": list(self.notices)}
        for variant, result in self.extra.items():
            data[variant] = result.summary()
            same = result.prediction.label.lower() == self.student.prediction.label.lower()
            data[variant]["agrees_with_student"] = same
        if self.random_weights:
            data["random_weights"] = True
        if self.task == "fill_mask":
            data["top5_overlap"] = self.top_overlap
            data["teacher"]["completed"] = self.teacher.prediction.completed
            data["student"]["completed"] = self.student.prediction.completed
        return data


class ModelFailure(RuntimeError):
    """A model raised while answering (not the user's input): which one, and why in one line."""

    def __init__(self, variant: str, reason: str):
        super().__init__(f"{variant}: {reason}")
        self.variant, self.reason = variant, reason


def run_variant(variant: str, loaded: LoadedModel, text: str) -> VariantResult:
    """One timed answer: tokenisation, forward pass and post-processing, device synchronised."""
    try:
        prediction, ms = timed(lambda: predict(loaded, text), loaded.device)
    except InputError:
        raise
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelFailure(variant, reason) from exc
    return VariantResult(variant=variant, model=loaded.name, prediction=prediction, latency_ms=ms,
                      device=str(loaded.device), dtype=loaded.dtype)


def compare(task: str, text: str, teacher: LoadedModel, student: LoadedModel,
            teacher_first: bool = True, extra: dict[str, LoadedModel] | None = None) -> Comparison:
    """Check the text, then time the models in turn (never concurrently); order is the caller's."""
    prepared = prepare_text(task, text)
    order = [("teacher", teacher), ("student", student)]
    if not teacher_first:
        order.reverse()
    order += list((extra or {}).items())
    results = {}
    with INFERENCE_LOCK:
        for variant, loaded in order:
            results[variant] = run_variant(variant, loaded, prepared.text)
    notices = list(prepared.notices)
    for variant in ("teacher", "student"):
        pred = results[variant].prediction
        if pred.truncated:
            notices.append(f"The text is longer than the {pred.n_tokens} tokens the {variant} reads: "
                           "only the beginning was used.")
        if pred.unk_share >= HIGH_UNK_SHARE:
            notices.append(UNK_NOTICE.format(share=pred.unk_share, variant=variant))
    random = teacher.random_weights or student.random_weights
    if random:
        notices = ["RANDOM WEIGHTS: the real architectures with random weights, because the weights could not be "
                   "loaded. Latency and size are real; the answers mean nothing and are not shown."]
    return Comparison(task=task, text=prepared.text, teacher=results["teacher"], student=results["student"],
                      teacher_first=teacher_first, notices=notices, random_weights=random,
                      extra={variant: results[variant] for variant in (extra or {})})


def warm_up(loaded: LoadedModel) -> None:
    """One untimed pass so that the first user request does not pay for lazy initialisation. On ZeroGPU the
    GPU exists only inside a decorated call: the first such call warms up instead (zerogpu.warm_once)."""
    if zerogpu.state().active and loaded.device.type == "cuda":
        return
    with INFERENCE_LOCK:
        predict(loaded, prepare_text(loaded.task, EXAMPLE_TEXT[loaded.task]).text)
