"""The distillation step's flags, in the groups `--help` shows: the student, the loss, transfer text,
augmentation, test sets and publishing. DistillArguments holds one of each for the step's code.

Defaults come from where the rule lives: loss weights from losses.LossWeights / MlmWeights (one set
per objective), augmentation rates from augment.AugmentSettings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from demo.core.errors import UsageError
from demo.distill.args import flatten_list, reporting
from demo.distill.augment import AugmentSettings
from demo.distill.losses import LossWeights, MlmWeights
from demo.distill.recipe import AUTO_BELOW, AUTO_MAX_VARIANTS, AUTO_TEXTS

CLS, MLM = LossWeights(), MlmWeights()  # each objective's default weights, for the help texts and check()


def _weight_help(what: str, name: str) -> str:
    mlm = getattr(MLM, name, None)
    default = f"default {getattr(CLS, name, 0.0):g}" + (f", with --objective mlm {mlm:g}" if mlm is not None else "")
    return f"{what} ({default}; 0: off)"


@dataclass
class StudentArguments:
    _argument_group_name = "student"
    teacher: str = field(default=None, metadata={
        "help": "BERT teacher (Hub id or directory): a fine-tuned classifier, or with --objective mlm a masked LM"})
    student_layers: str = field(default="6", metadata={
        "help": "N evenly spaced teacher layers, or a list such as 0,2,4,7,9,11"})
    student_arch: Literal["distilbert", "bert"] = field(default="distilbert", metadata={
        "help": "distilbert (no token types, no pooler) or bert (the teacher's shape, fewer layers)"})
    freeze_embeddings: bool = field(default=False, metadata={
        "help": "classification: keep the teacher's word embeddings as they are (most of a small student's "
                "weights): each step is faster, and words seen only in the labelled rows do not drift"})


@dataclass
class LossArguments:
    _argument_group_name = "loss"
    temperature: float = field(default=CLS.temperature, metadata={"help": "softmax temperature of the soft targets"})
    alpha_ce: float | None = field(default=None, metadata={"help": _weight_help(
        "weight of KL to the teacher's soft targets (with --objective mlm: over the vocabulary at masked positions)",
        "alpha_ce")})
    alpha_hard: float | None = field(default=None, metadata={"help": _weight_help(
        "weight of cross-entropy on gold labels, labelled rows only (classification only)", "alpha_hard")})
    alpha_mlm: float | None = field(default=None, metadata={"help": (
        f"--objective mlm: weight of the masked-LM loss on the true tokens (default {MLM.alpha_mlm:g}; 0: off)")})
    alpha_cos: float | None = field(default=None, metadata={"help": _weight_help(
        "weight of the hidden-state cosine loss", "alpha_cos")})
    cos_layers: Literal["last", "all"] = field(default="last", metadata={
        "help": "align the last hidden state, or every kept layer with its teacher layer"})
    alpha_hidden: float = field(default=CLS.alpha_hidden, metadata={
        "help": "weight of MSE between each student layer's hidden states and its teacher layer's (PKD/TinyBERT; "
                "a learned projection where widths differ, not saved with the student; 0: off)"})
    alpha_attn: float = field(default=CLS.alpha_attn, metadata={
        "help": "weight of KL between attention distributions of mapped layers (TinyBERT/MiniLM; 0: off)"})

    def check(self, objective: str) -> None:
        """Fill in the objective's default weights; refuse terms the objective does not have."""
        if self.temperature <= 0:
            raise UsageError("--temperature must be positive (the paper's spirit: 2).")
        if objective == "mlm":
            if self.alpha_hard is not None:
                raise UsageError("--alpha-hard is the gold-label loss of classification; with --objective mlm the "
                                 "masked-LM loss on the true tokens is --alpha-mlm.")
            if self.alpha_attn:
                raise UsageError("--alpha-attn is not available with --objective mlm; --alpha-cos (with "
                                 "--cos-layers all) and --alpha-hidden align the hidden states of every kept layer.")
            defaults = {"alpha_ce": MLM.alpha_ce, "alpha_mlm": MLM.alpha_mlm, "alpha_cos": MLM.alpha_cos,
                        "alpha_hard": 0.0}
        else:
            if self.alpha_mlm is not None:
                raise UsageError("--alpha-mlm is the masked-LM loss: it needs --objective mlm.")
            defaults = {"alpha_ce": CLS.alpha_ce, "alpha_hard": CLS.alpha_hard, "alpha_cos": CLS.alpha_cos,
                        "alpha_mlm": 0.0}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        weights = (self.alpha_ce, self.alpha_hard, self.alpha_mlm, self.alpha_cos, self.alpha_hidden, self.alpha_attn)
        if min(weights) < 0:
            raise UsageError("loss weights must not be negative; 0 switches a term off.")
        if not any(weights):
            raise UsageError("every loss term is switched off; give --alpha-ce, --alpha-hard, --alpha-cos, "
                             "--alpha-hidden or --alpha-attn > 0 (with --objective mlm: --alpha-ce, --alpha-mlm "
                             "or --alpha-cos).")

    def matches_teacher(self) -> bool:
        """Whether a term learns from the teacher (text without labels needs one)."""
        return bool(self.alpha_ce or self.alpha_cos or self.alpha_hidden or self.alpha_attn)

    def weights(self, objective: str) -> LossWeights | MlmWeights:
        if objective == "mlm":
            return MlmWeights(self.temperature, self.alpha_ce, self.alpha_mlm, self.alpha_cos, self.alpha_hidden)
        return LossWeights(self.temperature, self.alpha_ce, self.alpha_hard, self.alpha_cos, self.alpha_hidden,
                           self.alpha_attn)


@dataclass
class TransferArguments:
    _argument_group_name = "transfer text (classification)"
    transfer_file: list[str] | None = field(default=None, metadata={
        "action": "append", "help": "unlabelled text the student learns from the teacher's soft targets alone "
                                    "(.txt one text per line, or CSV/TSV/JSON(L) with a text column; a label "
                                    "column is ignored); may be given several times"})
    transfer_text_column: str | None = field(default=None, metadata={
        "help": "text column of the transfer files (guessed when obvious)"})
    max_transfer_samples: int | None = field(default=None, metadata={
        "help": "use a seeded random sample of this many transfer texts (with --streaming: the first this many)"})
    streaming: bool = field(default=False, metadata={
        "help": "read the transfer files as a stream, for text larger than memory (needs --max-transfer-samples; "
                "the teacher's soft targets are computed batch by batch, not cached)"})
    transfer_cache: str | None = reporting(None, "keep the teacher's soft targets on the transfer text in this "
                                              "file (reused when it matches; refused when it was made by another "
                                              "teacher or from other text)")
    targets_cache_dir: str | None = reporting(None, "automatic cache of the teacher's soft targets (default "
                                                 "~/.cache/distill-demo/targets; 'none' to switch off)")

    def __post_init__(self):
        self.transfer_file = flatten_list(self.transfer_file)

    def check(self, loss: LossArguments, augment_transfer: bool) -> None:
        if self.transfer_file and not loss.matches_teacher():
            raise UsageError("--transfer-file text has no labels: it needs a teacher-matching loss (--alpha-ce, "
                             "--alpha-hidden, --alpha-attn or --alpha-cos > 0).")
        if self.max_transfer_samples is not None and self.max_transfer_samples < 1:
            raise UsageError("--max-transfer-samples must be at least 1.")
        if (self.max_transfer_samples or self.transfer_cache or self.transfer_text_column) and not self.transfer_file:
            raise UsageError("--max-transfer-samples, --transfer-cache and --transfer-text-column need "
                             "--transfer-file.")
        if self.streaming and not (self.transfer_file and self.max_transfer_samples):
            raise UsageError("--streaming reads the transfer files as a stream: give --transfer-file and "
                             "--max-transfer-samples N (how many streamed texts to learn from).")
        if self.streaming and (self.transfer_cache or augment_transfer):
            raise UsageError("--streaming computes the teacher's soft targets batch by batch: it takes neither "
                             "--transfer-cache nor --augment-transfer.")


@dataclass
class AugmentArguments:
    _argument_group_name = "augmentation (classification)"
    augment: str = field(default="auto", metadata={
        "help": "teacher-labelled variants of each labelled text: 'auto' (the default recipe: below "
                f"{AUTO_BELOW:,} labelled rows, enough variants for about {AUTO_TEXTS:,} texts the labels do not "
                f"cover, at most {AUTO_MAX_VARIANTS} per text, fitted to --max-steps; none with --alpha-ce 0), a "
                "number, or 0 (off)"})
    augment_transfer: bool = field(default=False, metadata={"help": "augment the transfer text too"})
    augment_mlm: str = field(default="teacher", metadata={
        "help": "what proposes replacement words: 'teacher' (its own masked-LM head where it has one, else its "
                "input embeddings), 'embeddings' (the teacher's nearest words by input embedding, TinyBERT's "
                "GloVe swaps), a fill-mask model, or 'none' (masking and n-gram sampling only)"})
    augment_mask_prob: float = field(default=AugmentSettings.mask_prob, metadata={
        "help": "share of words replaced by [MASK]"})
    augment_swap_prob: float = field(default=AugmentSettings.swap_prob, metadata={
        "help": "share of words replaced by a proposed word"})
    augment_ngram_prob: float = field(default=AugmentSettings.ngram_prob, metadata={
        "help": f"share of variants cut to a random 1-{AugmentSettings.max_ngram}-gram"})

    def __post_init__(self):
        self.augment = str(self.augment).strip().lower()  # "auto" or a number, as typed or as a dataclass default

    def check(self) -> None:
        if self.augment != "auto" and not (self.augment.isdigit() and int(self.augment) <= 1000):
            raise UsageError(f"--augment {self.augment!r}: give 'auto' (the default recipe), a number of variants "
                             "per text from 0 (off) to 1000, e.g. 4.")
        if self.augment_transfer and self.augment == "0":
            raise UsageError("--augment-transfer needs --augment N (variants per text).")
        for name in ("augment_mask_prob", "augment_swap_prob", "augment_ngram_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise UsageError(f"--{name.replace('_', '-')} must lie in [0, 1].")
        if self.augment_mask_prob + self.augment_swap_prob > 1:
            raise UsageError("--augment-mask-prob plus --augment-swap-prob must not exceed 1.")


@dataclass
class TestSetArguments:
    _argument_group_name = "test sets and baselines"
    eval_file: list[str] | None = reporting(None, "NAME=FILE: an extra labelled test set (e.g. out of domain) "
                                               "evaluated for teacher and student at the end; may be given "
                                               "several times", action="append")
    baselines: str | None = reporting(None, "also measure, with the same training budget: the layer-dropped student "
                                      "untrained, one trained on hard labels alone (mlm: the masked-LM loss alone), "
                                      "and (with transfer text or augmentation) KD on the labelled rows alone; "
                                      "'--baselines labels': the first two only (what the app's jobs train)",
                                      nargs="?", const="all")
    baseline_steps: int = reporting(0, "the baselines' budget in optimiser steps (0: the run's own, so equal budgets); "
                                       "the app's jobs give the labels-alone student what this command gives it "
                                       "alone (--alpha-ce 0 --alpha-hard 1: 3 epochs, at least 400 steps)")

    def __post_init__(self):
        self.eval_file = flatten_list(self.eval_file)

    def check(self) -> None:
        if self.baseline_steps < 0:
            raise UsageError("--baseline-steps must be 0 (the run's own budget) or more.")
        if self.baselines is not None and self.baselines not in ("all", "labels"):
            raise UsageError(f"--baselines {self.baselines!r}: write --baselines (all of them) or --baselines labels "
                             "(layer dropping and hard labels alone).")
        for item in self.eval_file:
            name, sep, path = item.partition("=")
            if not sep or not name.strip() or not path.strip():
                raise UsageError(f"--eval-file {item!r}: write NAME=FILE, e.g. books=reviews-books/test.tsv.")
        if len(set(self.eval_files)) != len(self.eval_file):
            raise UsageError("--eval-file: give each test set its own NAME.")

    @property
    def eval_files(self) -> dict[str, str]:
        return {n.strip(): p.strip() for n, _, p in (item.partition("=") for item in self.eval_file)}


@dataclass
class PublishArguments:
    _argument_group_name = "publishing"
    push_to_hub: str | None = reporting(None, "publish the output to this Hub repo id")
    hub_private: bool = reporting(False, "create the Hub repo as private")
    dry_run: bool = reporting(False, "with --push-to-hub: list the upload, send nothing")
    export_onnx: bool = reporting(False, "also write the student as ONNX, fp32 and dynamic int8, under onnx/ in "
                                         "the output (published with it)")
    card_example: str | None = reporting(None, "the sentence of the card's usage example (default: a neutral "
                                               "sentence of the task; never a row of the data)")


GROUPS = (StudentArguments, LossArguments, TransferArguments, AugmentArguments, TestSetArguments, PublishArguments)


@dataclass
class DistillArguments:
    """The step's settings, one object per group of flags."""

    student: StudentArguments
    loss: LossArguments
    transfer: TransferArguments
    augmentation: AugmentArguments
    tests: TestSetArguments
    publish: PublishArguments

    def check(self, objective: str) -> DistillArguments:
        """Fill in the objective's defaults and refuse what does not apply to it (the CLI calls this once
        the data arguments, which carry --objective, are parsed)."""
        if not self.student.teacher:
            raise UsageError("--teacher is required: a fine-tuned BERT classifier (run the finetune step first), "
                             "or with --objective mlm a masked LM (finetune --objective mlm).")
        self.loss.check(objective)
        self.tests.check()
        if objective == "mlm":
            t = self.transfer
            if t.transfer_file or self.augmentation.augment not in ("auto", "0") or t.streaming or t.transfer_cache:
                raise UsageError("--objective mlm learns from the --train-file text itself: --transfer-file, "
                                 "--augment, --streaming and --transfer-cache are for classification.")
            if self.student.freeze_embeddings:
                raise UsageError("--freeze-embeddings is for classification: a masked LM's output layer is its word "
                                 "embeddings, which it must learn.")
            return self
        self.transfer.check(self.loss, self.augmentation.augment_transfer)
        self.augmentation.check()
        return self
