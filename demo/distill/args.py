"""Command-line settings as dataclasses (transformers' HfArgumentParser turns them into flags).

Every default lives here, or in the dataclass this module reads it from (the loss weights in
losses.py, the augmentation rates in augment.py), so `--help` shows the value a run uses.
The distillation step's own groups (the student, the loss, transfer text, augmentation, test sets and
publishing: DistillArguments holds one of each) extend these rather than copying them.
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass, field, fields, is_dataclass
from types import MappingProxyType
from typing import Literal

from transformers import HfArgumentParser

from demo.core.errors import UsageError, UserError
from demo.distill.augment import AugmentSettings
from demo.distill.budget import steps_per_epoch
from demo.distill.losses import LossWeights, MlmWeights
from demo.distill.recipe import AUTO_BELOW, AUTO_MAX_VARIANTS, AUTO_TEXTS
from demo.models.inputs import length_problem

# A general-distillation student starts far from where it ends (half its teacher's layers gone, the
# text raw) and learnt faster at 3e-4 than at 1e-4 or 6e-4 (docs/distillation.md).
DISTILL_LEARNING_RATE = {"classification": 1e-4, "mlm": 3e-4}
REPORTING = "reporting"  # field metadata: the flag changes where or how a run reports, not what it trains


class ObjectiveMismatch(UserError):
    """A teacher that does not fit the objective (a classifier for --objective mlm, or the reverse)."""


def default_of(settings: type, name: str):
    """A flag's default as its dataclass declares it (the app reads the CLI's defaults, never copies them)."""
    return next(f.default for f in fields(settings) if f.name == name)


def labels_alone_steps(n_rows: int) -> int:
    """What `distill --alpha-ce 0 --alpha-hard 1` gives a student trained on n_rows labels alone, at its
    defaults (3 epochs, at least --min-steps): the budget the app's jobs give their labels-alone baseline."""
    epochs, floor = default_of(DistillTrainArguments, "epochs"), default_of(DistillTrainArguments, "min_steps")
    return max(epochs * steps_per_epoch(n_rows, default_of(DistillTrainArguments, "batch_size")), floor)


def reporting(default, help: str, **extra):
    """A field whose value a checkpoint may differ in and still resume (not part of the fingerprint)."""
    return field(default=default, metadata={"help": help, REPORTING: True, **extra})


def flatten_list(values) -> list[str]:
    """A repeatable list flag: --x a --x b and --x a b both give [a, b]."""
    out = []
    for v in values or []:
        out += v if isinstance(v, list) else [v]
    return out


def settings_dict(*settings, training_only: bool = False) -> dict:
    """Every field of the given settings (groups of a composite flattened), as one flat dict."""
    out = {}
    for obj in settings:
        for f in fields(obj):
            value = getattr(obj, f.name)
            if is_dataclass(value):
                out.update(settings_dict(value, training_only=training_only))
            elif not (training_only and f.metadata.get(REPORTING)):
                out[f.name] = value
    return out


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default, except where there is none to show (the help text says what applies)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is argparse.SUPPRESS or action.default == []:
            return action.help
        return super()._get_help_string(action)


class ArgumentParser(HfArgumentParser):
    """HfArgumentParser that knows this module's field metadata (argparse would refuse the key)."""

    def __init__(self, types, **kwargs):
        super().__init__(types, formatter_class=DefaultsHelpFormatter, **kwargs)

    @staticmethod
    def _parse_dataclass_field(parser, field_):
        if REPORTING in field_.metadata:  # a copy: the dataclass's own field keeps the mark for settings_dict
            field_ = copy.copy(field_)
            field_.metadata = MappingProxyType({k: v for k, v in field_.metadata.items() if k != REPORTING})
        HfArgumentParser._parse_dataclass_field(parser, field_)


@dataclass
class DataArguments:
    _argument_group_name = "data"
    objective: Literal["classification", "mlm"] = field(default="classification", metadata={
        "help": "classification: labelled rows (a classifier teacher, a classifier student); mlm: raw text and "
                "the masked-LM objective (general distillation, DistilBERT's; a fill-mask model)"})
    train_file: list[str] | None = field(default=None, metadata={
        "action": "append", "help": "CSV/TSV/JSON(L) training file (with --objective mlm: .txt or a text "
                                    "column, may be given several times)"})
    validation_file: str | None = field(default=None, metadata={
        "help": "CSV/TSV/JSON(L) validation file (with --objective mlm: optional, else a held-out slice)"})
    validation_split_percentage: float = field(default=5.0, metadata={
        "help": "--objective mlm without --validation-file: percent of the texts held out for evaluation, chosen "
                "by a hash of each text, so every run and step holds out the same texts"})
    dataset: str | None = field(default=None, metadata={"help": "Hub dataset name instead of files, e.g. glue"})
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration, e.g. sst2"})
    text_column: str | None = field(default=None, metadata={"help": "text column (guessed when obvious)"})
    label_column: str | None = field(default=None, metadata={"help": "label column (guessed when obvious)"})
    label_names: str | None = field(default=None, metadata={
        "help": "comma-separated class names for integer labels, in class order (e.g. negative,positive)"})
    max_train_samples: int | None = field(default=None, metadata={"help": "train on a seeded random subset"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "evaluate on the first N rows"})
    max_seq_length: int = field(default=128, metadata={"help": "tokens per text; longer texts are cut"})
    quoting: Literal["auto", "none", "csv"] = field(default="auto", metadata={
        "help": "how CSV/TSV fields are quoted: auto (detect), none (GLUE-style TSV, bare quotes are text) "
                "or csv (quoted fields may span lines and hold tabs)"})

    def __post_init__(self):
        self.train_file = flatten_list(self.train_file)
        if self.objective == "mlm":
            self._check_mlm()
        elif self.dataset is None and not (self.train_file and self.validation_file):
            raise UsageError("give --train-file and --validation-file (or --dataset NAME where the Hub is reachable).")
        elif len(self.train_file) > 1:
            raise UsageError("classification reads one --train-file (several are for --objective mlm).")
        if self.dataset is not None and (self.train_file or self.validation_file):
            raise UsageError("give either --dataset or --train-file/--validation-file, not both.")
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1.")
        if (problem := length_problem(self.max_seq_length, "--max-seq-length")) is not None:
            raise UsageError(problem)

    def _check_mlm(self) -> None:
        if self.dataset is not None:
            raise UsageError("--objective mlm reads text files: give --train-file (one or more), not --dataset.")
        if not self.train_file:
            raise UsageError("--objective mlm needs text: give --train-file (one or more; .txt one text per line, "
                             "or CSV/TSV/JSON(L) with a text column).")
        if self.label_column or self.label_names:
            raise UsageError("--objective mlm learns from raw text: --label-column and --label-names do not apply.")
        if not 0 < self.validation_split_percentage < 50:
            raise UsageError("--validation-split-percentage must lie between 0 and 50 (e.g. 5).")

    @property
    def first_train_file(self) -> str | None:
        return self.train_file[0] if self.train_file else None

    @property
    def label_name_list(self) -> list[str] | None:
        return [n.strip() for n in self.label_names.split(",")] if self.label_names else None


@dataclass
class TrainArguments:
    _argument_group_name = "training"
    output_dir: str = reporting(None, "where the model, metrics and card are written")
    epochs: int = field(default=2, metadata={
        "help": "passes over the training data; left at its default, raised to reach --min-steps"})
    min_steps: int = field(default=400, metadata={
        "help": "where --epochs is not given: train for at least this many optimiser steps, taking more epochs "
                "on small data (0: off); 2 epochs of 1,000 rows are only 63 steps, too few to fine-tune"})
    batch_size: int = field(default=32, metadata={"help": "training batch size"})
    eval_batch_size: int = reporting(64, "evaluation batch size")
    learning_rate: float = field(default=5e-5, metadata={"help": "AdamW peak learning rate"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (not on biases/LayerNorm)"})
    warmup_ratio: float = field(default=0.06, metadata={"help": "share of steps spent warming up linearly"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    seed: int = field(default=42, metadata={"help": "random seed (data order, subset, head init)"})
    device: str = reporting("auto", "auto | cpu | cuda | mps (under accelerate launch: its own)")
    overwrite_output_dir: bool = reporting(False, "allow writing into a non-empty directory")
    mixed_precision: Literal["no", "fp16", "bf16"] = field(default="no", metadata={
        "help": "compute in fp16 (GPU) or bf16 (recent GPUs, CPU) through accelerate; weights stay float32"})
    gradient_accumulation_steps: int = field(default=1, metadata={
        "help": "batches per optimiser step (an effective batch of batch-size x this)"})
    checkpoint_steps: int = reporting(0, "save model, optimiser, scheduler, RNG and data position every N optimiser "
                                         "steps (0: off)")
    keep_checkpoints: int = reporting(2, "newest checkpoints kept (0: all)")
    resume_from_checkpoint: str | None = reporting(None, "continue a stopped run: a checkpoint directory, or "
                                                      "'latest' (in --output-dir/checkpoints)")
    max_steps: int = field(default=0, metadata={
        "help": "stop after this many optimiser steps, whatever --epochs and --min-steps say (0: off); for "
                "large text corpora"})
    logging_steps: int = reporting(50, "a history.jsonl line every N optimiser steps")
    status_file: str | None = reporting(None, "keep this JSON file up to date with the run's plan and progress "
                                                 "(phase, step, total steps, epochs) for a program that watches the "
                                                 "run; see demo/distill/run_status.py")
    report_to: str = reporting("none", "accelerate trackers besides history.jsonl: none, tensorboard, wandb, ... "
                                       "(comma-separated)")

    def __post_init__(self):
        if not self.output_dir:
            raise UsageError("--output-dir is required: the directory where the model and metrics go.")
        if self.min_steps < 0:
            raise UsageError("--min-steps must be 0 (off) or more.")
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise UsageError("--epochs, --batch-size and --eval-batch-size must be at least 1.")
        if self.learning_rate is not None and not 0 < self.learning_rate < 1:
            raise UsageError("--learning-rate must lie in (0, 1), e.g. 5e-5.")
        if not 0 <= self.warmup_ratio < 1:
            raise UsageError("--warmup-ratio must lie in [0, 1).")
        if self.gradient_accumulation_steps < 1 or self.logging_steps < 1:
            raise UsageError("--gradient-accumulation-steps and --logging-steps must be at least 1.")
        if self.max_steps < 0:
            raise UsageError("--max-steps must be 0 (off) or more.")
        if self.checkpoint_steps < 0 or self.keep_checkpoints < 0:
            raise UsageError("--checkpoint-steps and --keep-checkpoints must be 0 (off / all) or more.")

    epochs_given: bool = field(default=False, init=False)  # set by the CLI: --epochs was typed, so it is kept

    def total_steps(self, n_rows: int) -> int:
        """The budget in optimiser steps: --epochs passes (at least --min-steps when --epochs was left at
        its default), at most --max-steps."""
        per_epoch = steps_per_epoch(n_rows, self.batch_size, self.gradient_accumulation_steps)
        total = self.epochs * per_epoch if self.epochs_given else max(self.epochs * per_epoch, self.min_steps)
        return min(total, self.max_steps) if self.max_steps else total

    def budget_note(self, n_rows: int) -> str:
        """What the budget is, said where a default changed it (the --min-steps floor, --max-steps)."""
        per_epoch = steps_per_epoch(n_rows, self.batch_size, self.gradient_accumulation_steps)
        total = self.total_steps(n_rows)
        note = f"{total:,} steps ({total / per_epoch:.1f} epochs of {per_epoch:,} steps)"
        if total > self.epochs * per_epoch:
            note += (f"; raised from {self.epochs} epochs to reach --min-steps {self.min_steps} (give --epochs to "
                     "keep an epoch count)")
        elif total < self.epochs * per_epoch:
            note += f"; cut to --max-steps {self.max_steps}"
        return note


@dataclass
class FinetuneArguments:
    _argument_group_name = "model"
    model: str = field(default=None, metadata={
        "help": "Hub id or directory of a BERT encoder to fine-tune (with --objective mlm: to adapt to the text; "
                "an MLM head tied to the input embeddings is added where the checkpoint has none)"})

    def __post_init__(self):
        if not self.model:
            raise UsageError("--model is required: a BERT encoder (Hub id or directory) to fine-tune as teacher.")


@dataclass
class DistillTrainArguments(TrainArguments):
    """The training settings with the defaults measured for distillation (docs/distillation.md)."""

    epochs: int = field(default=3, metadata={
        "help": "passes over the training data; left at its default, raised to reach --min-steps"})
    learning_rate: float | None = field(default=None, metadata={
        "help": f"AdamW peak learning rate (default {DISTILL_LEARNING_RATE['classification']:g}, with --objective "
                f"mlm {DISTILL_LEARNING_RATE['mlm']:g})"})

    def check(self, objective: str) -> DistillTrainArguments:
        """Fill in the objective's learning rate."""
        if self.learning_rate is None:
            self.learning_rate = DISTILL_LEARNING_RATE[objective]
        return self


@dataclass
class PushArguments:
    output_dir: str = field(default=None, metadata={"help": "a finished distillation output directory"})
    repo_id: str = field(default=None, metadata={"help": "Hub repo id, e.g. you/minilm-sst2-distilled"})
    hub_private: bool = field(default=False, metadata={"help": "create the repo as private"})
    dry_run: bool = field(default=False, metadata={"help": "list the upload, send nothing"})

    def __post_init__(self):
        if not self.output_dir or not self.repo_id:
            raise UsageError("--output-dir and --repo-id are required.")


# ---- the distillation step's groups ------------------------------------------------------------------
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
