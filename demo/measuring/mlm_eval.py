"""A masked LM measured on held-out text: top-1 / top-5 masked-token accuracy, masked and pseudo
perplexity, and for a teacher/student pair the agreement of their top-1 guesses and the speedup.

Masks are fixed and seeded per text (masked_lm.fixed_masks), so a teacher, its student, and a run
measured again later all guess the very same tokens. The training CLI (metrics.json, the card) and
`python -m demo.evaluate --task fill_mask` both report through here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from demo.core.errors import UserError
from demo.core.measure import timed_exclusive
from demo.measuring import stats
from demo.measuring.stats import Estimate
from demo.models.masked_lm import (
    IGNORE_INDEX,
    MaskedCounts,
    fixed_masks,
    mask_token_id,
    masked_logits,
    pseudo_perplexity,
    score_logits,
)

EVAL_SEED = 1234  # the held-out masks; the same for every model and run
PPPL_TEXTS = 200  # pseudo-perplexity costs one forward per token: measured on the first this many texts


class VocabularyMismatch(UserError):
    """Teacher and student must share a vocabulary for their masked-token guesses to be compared."""


@dataclass
class MaskedLMScores:
    top1_accuracy: float
    top5_accuracy: float
    masked_perplexity: float  # exp(mean NLL) at the fixed masked positions
    pseudo_perplexity: float  # Salazar et al. 2020, on the first PPPL_TEXTS texts
    seconds: float  # forward time over every batch (masked positions' head only)


@dataclass
class MaskedLMReport:
    n_texts: int
    n_masked: int
    pppl_texts: int
    seed: int
    teacher: MaskedLMScores
    student: MaskedLMScores | None = None
    agreement_top1: float | None = None  # share of masked tokens where both guess the same top-1
    extra: dict = field(default_factory=dict)
    # The student's top-1 right or wrong, token by token in a fixed order: for a paired test against
    # another student measured on the same texts (paired_top1). Not a figure: never serialised.
    student_hits: torch.Tensor | None = field(default=None, repr=False, compare=False)
    teacher_hits: torch.Tensor | None = field(default=None, repr=False, compare=False)
    batch_seconds: dict = field(default_factory=dict, repr=False, compare=False)  # model -> forward time per batch

    def intervals(self) -> dict[str, dict]:
        """95% intervals: top-1/top-5 (Wilson, per model), top-1 agreement, top-1 retention (paired bootstrap
        over tokens; undefined where the teacher gets none right), speedup (over the batch pairs)."""
        out = {}
        for name, scores in (("teacher", self.teacher), ("student", self.student)):
            if scores is not None:
                for key in ("top1_accuracy", "top5_accuracy"):
                    out[f"{name}_{key}"] = stats.proportion(round(getattr(scores, key) * self.n_masked),
                                                            self.n_masked).to_dict()
        if self.student is not None and self.student_hits is not None and self.teacher_hits is not None:
            agreeing = round(self.agreement_top1 * self.n_masked)
            out["agreement_top1"] = stats.proportion(agreeing, self.n_masked).to_dict()
            out["retention_top1"] = stats.ratio(self.student_hits.numpy(), self.teacher_hits.numpy(),
                                                "top-1 retention").to_dict()
            out["speedup"] = stats.speedup(self.batch_seconds["teacher"], self.batch_seconds["student"]).to_dict()
        return out

    @property
    def retention_top1(self) -> float | None:
        return (self.student.top1_accuracy / self.teacher.top1_accuracy if self.student and
            self.teacher.top1_accuracy else None)

    @property
    def speedup(self) -> float | None:
        return self.teacher.seconds / self.student.seconds if self.student and self.student.seconds else None

    def figures(self) -> dict:
        out = {"n_texts": self.n_texts, "n_masked": self.n_masked, "pppl_texts": self.pppl_texts, "seed": self.seed,
               "teacher": asdict(self.teacher), "intervals": self.intervals()}
        if self.student is not None:
            out.update(student=asdict(self.student), agreement_top1=self.agreement_top1,
                       retention_top1=self.retention_top1, speedup=self.speedup)
        return out

    def markdown(self, teacher_name: str = "teacher", student_name: str = "student") -> str:
        rows = [("top-1 masked-token accuracy", "top1_accuracy", "{:.4f}"),
                ("top-5 masked-token accuracy", "top5_accuracy", "{:.4f}"),
                ("masked-token perplexity", "masked_perplexity", "{:.2f}"),
                (f"pseudo-perplexity (first {self.pppl_texts} texts)", "pseudo_perplexity", "{:.2f}"),
                ("forward time (s)", "seconds", "{:.2f}")]
        models = [(teacher_name, self.teacher)] + ([(student_name, self.student)] if self.student else [])
        lines = ["| | " + " | ".join(n for n, _ in models) + " |", "|---|" + "---:|" * len(models)]
        lines += [f"| {label} | " + " | ".join(fmt.format(getattr(s, key)) for _, s in models) + " |"
                  for label, key, fmt in rows]
        lines.append(f"\n{self.n_masked:,} masked tokens in {self.n_texts:,} held-out texts (fixed masks, seed "
                     f"{self.seed}).")
        if self.student is not None:
            ci = {k: Estimate(**v) for k, v in self.intervals().items()}
            lines.append(f"{student_name.capitalize()}/{teacher_name} top-1: **{ci['retention_top1'].text(3)}**; "
                         f"top-1 agreement **{ci['agreement_top1'].text()}**; speedup "
                         f"**{ci['speedup'].text(2, unit='x')}** (95% intervals).")
        return "\n".join(lines)


@dataclass
class PairedTop1:
    """Two models on the very same masked tokens: where one is right and the other wrong. McNemar's
    test reads only these discordant tokens, so it can tell a real lead from the noise of the sample."""
    n_masked: int
    a_only: int  # tokens A guesses right and B wrong
    b_only: int

    @property
    def mcnemar_z(self) -> float | None:
        discordant = self.a_only + self.b_only
        return (self.a_only - self.b_only) / discordant ** 0.5 if discordant else None

    @property
    def mcnemar_p(self) -> float | None:
        """The exact test: scipy's binomial test on the discordant tokens."""
        return stats.mcnemar_p(self.a_only, self.b_only)

    def figures(self, a: str, b: str) -> dict:
        return {"n_masked": self.n_masked, f"{a}_right_{b}_wrong": self.a_only, f"{b}_right_{a}_wrong": self.b_only,
                "mcnemar_z": self.mcnemar_z, "mcnemar_p": self.mcnemar_p}

    def sentence(self, a: str, b: str) -> str:
        z = (f"McNemar z = {self.mcnemar_z:.2f}, exact p = {self.mcnemar_p:.3g}" if self.mcnemar_z is not None
             else "no token where they differ")
        return (f"of {self.n_masked:,} masked tokens, {a} is right where {b} is wrong {self.a_only:,} times and "
                f"wrong where it is right {self.b_only:,} times ({z})")


def paired_top1(a: MaskedLMReport, b: MaskedLMReport) -> PairedTop1:
    """The students of two reports measured on the same texts and masks, token by token."""
    if (a.student_hits is None or b.student_hits is None or a.student_hits.shape != b.student_hits.shape
            or a.seed != b.seed):
        raise ValueError("a paired comparison needs two students measured on the same texts and masks")
    hits_a, hits_b = a.student_hits, b.student_hits
    return PairedTop1(len(hits_a), int((hits_a & ~hits_b).sum()), int((~hits_a & hits_b).sum()))


def _batches(tokenizer, texts: list[str], max_length: int, batch_size: int):
    """Padded batches in length order, each with the row numbers (which fix the masks)."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(enc)), key=lambda i: len(enc[i]))
    pad = tokenizer.pad_token_id or 0
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        width = max(len(enc[i]) for i in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention = torch.zeros_like(ids)
        for b, i in enumerate(rows):
            ids[b, :len(enc[i])] = torch.tensor(enc[i])
            attention[b, :len(enc[i])] = 1
        yield ids, attention, torch.tensor(rows)


def check_same_vocabulary(teacher_tokenizer, student_tokenizer) -> None:
    if teacher_tokenizer.get_vocab() != student_tokenizer.get_vocab():
        raise VocabularyMismatch("teacher and student have different vocabularies, so their masked-token guesses "
                                 "cannot be compared token for token; pair models that share a tokenizer.")


@dataclass(frozen=True)
class MaskedLMSettings:
    """How held-out text is measured: the same for the evaluator, the distill step and every model compared."""

    max_length: int = 128  # tokens per text
    batch_size: int = 64
    device: torch.device | str = "cpu"  # where the models already are
    seed: int = EVAL_SEED  # the masks
    pppl_texts: int = PPPL_TEXTS  # texts whose pseudo-perplexity is measured


@torch.inference_mode()
def evaluate_masked_lm(teacher, tokenizer, texts: list[str], *, student=None,
                       settings: MaskedLMSettings = MaskedLMSettings(), progress=None,
                       teacher_pppl: float | None = None) -> MaskedLMReport:
    """teacher, student: masked-LM models (already on settings.device); one tokenizer for both (same
    vocabulary). teacher_pppl: the teacher's pseudo-perplexity on these texts, when already measured (it
    costs one forward per token and does not change between students)."""
    max_length, batch_size, device = settings.max_length, settings.batch_size, settings.device
    seed, pppl_texts = settings.seed, settings.pppl_texts
    mask_token_id(tokenizer, getattr(tokenizer, "name_or_path", "the tokenizer"))
    if not texts:
        raise UserError("no text to measure the masked LM on.")
    models = {"teacher": teacher, **({"student": student} if student is not None else {})}
    for m in models.values():
        m.eval()
    counts = {k: MaskedCounts() for k in models}
    seconds = dict.fromkeys(models, 0.0)
    agree, done = 0, 0
    student_hits, teacher_hits = [], []
    batch_seconds = {k: [] for k in models}
    for ids, attention, rows in _batches(tokenizer, texts, max_length, batch_size):
        masked, labels = fixed_masks(ids, attention, rows, tokenizer, seed)
        gold = labels[labels != IGNORE_INDEX].to(device)
        top1 = {}
        inputs = (masked.to(device), attention.to(device), labels.to(device))
        for name, model in models.items():  # interleaved per batch: both see the same machine load
            logits, ms = timed_exclusive(lambda m=model, i=inputs: masked_logits(m, *i)[0], device)
            seconds[name] += ms / 1000
            batch_seconds[name].append(ms / 1000)
            hit1, hit5, nll = score_logits(logits, gold)
            counts[name] = counts[name].add(MaskedCounts(len(gold), int(hit1.sum()), int(hit5.sum()),
                                                         float(nll.sum())))
            top1[name] = logits.argmax(-1)
            (student_hits if name == "student" else teacher_hits).append(hit1.bool().cpu())
        if student is not None:
            agree += int((top1["teacher"] == top1["student"]).sum())
        done += len(rows)
        if progress is not None:
            progress(done, len(texts))
    sample = texts[:pppl_texts]
    known = {"teacher": teacher_pppl} if teacher_pppl is not None else {}
    scores = {name: MaskedLMScores(counts[name].top1_accuracy, counts[name].top5_accuracy,
                                   counts[name].masked_perplexity,
                                   known.get(name) or pseudo_perplexity(model, tokenizer, sample, max_length,
                                                                        batch_size, device),
                                   seconds[name])
              for name, model in models.items()}
    n_masked = counts["teacher"].masked
    return MaskedLMReport(len(texts), n_masked, len(sample), seed, scores["teacher"], scores.get("student"),
                          agree / n_masked if student is not None and n_masked else None,
                          student_hits=torch.cat(student_hits) if student_hits else None,
                          teacher_hits=torch.cat(teacher_hits) if teacher_hits else None, batch_seconds=batch_seconds)
