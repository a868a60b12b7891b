"""Command-line settings as dataclasses (transformers' HfArgumentParser turns them into flags).

Every default lives here, or in the dataclass this module reads it from (the loss weights in
losses.py, the augmentation rates in augment.py), so `--help` shows the value a run uses.
Distillation settings (distill_args.py) extend these rather than copying them.
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass, field, fields, is_dataclass
from types import MappingProxyType
from typing import Literal

from transformers import HfArgumentParser

from demo.core.errors import UsageError, UserError
from demo.distill.budget import steps_per_epoch
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
