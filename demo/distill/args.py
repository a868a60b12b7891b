"""Command-line settings as dataclasses (transformers' HfArgumentParser turns them into flags).

Distillation settings extend the training settings rather than copying them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from demo.core.errors import UsageError


def _flatten(values) -> list[str]:
    """A repeatable list flag: --x a --x b and --x a b both give [a, b]."""
    out = []
    for v in values or []:
        out += v if isinstance(v, list) else [v]
    return out


OBJECTIVES = ("classification", "mlm")


@dataclass
class DataArguments:
    objective: Literal["classification", "mlm"] = field(default="classification", metadata={
        "help": "classification: labelled rows (a classifier teacher, a classifier student); mlm: raw text and "
                "the masked-LM objective (general distillation, DistilBERT's; a fill-mask model)"})
    train_file: Optional[list[str]] = field(default=None, metadata={
        "action": "append", "help": "CSV/TSV/JSON(L) training file (with --objective mlm: .txt or a text "
                                    "column, may be given several times)"})
    validation_file: Optional[str] = field(default=None, metadata={
        "help": "CSV/TSV/JSON(L) validation file (with --objective mlm: optional, else a held-out slice)"})
    validation_split_percentage: float = field(default=5.0, metadata={
        "help": "--objective mlm without --validation-file: percent of the texts held out for evaluation, chosen "
                "by a hash of each text, so every run and step holds out the same texts"})
    dataset: Optional[str] = field(default=None, metadata={"help": "Hub dataset name instead of files, e.g. glue"})
    dataset_config: Optional[str] = field(default=None, metadata={"help": "Hub dataset configuration, e.g. sst2"})
    text_column: Optional[str] = field(default=None, metadata={"help": "text column (guessed when obvious)"})
    label_column: Optional[str] = field(default=None, metadata={"help": "label column (guessed when obvious)"})
    label_names: Optional[str] = field(default=None, metadata={
        "help": "comma-separated class names for integer labels, in class order (e.g. negative,positive)"})
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "train on a seeded random subset"})
    max_eval_samples: Optional[int] = field(default=None, metadata={"help": "evaluate on the first N rows"})
    max_seq_length: int = field(default=128, metadata={"help": "tokens per text; longer texts are cut"})
    quoting: Literal["auto", "none", "csv"] = field(default="auto", metadata={
        "help": "how CSV/TSV fields are quoted: auto (detect), none (GLUE-style TSV, bare quotes are text) "
                "or csv (quoted fields may span lines and hold tabs)"})

    def __post_init__(self):
        self.train_file = _flatten(self.train_file)
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
        if not 8 <= self.max_seq_length <= 512:
            raise UsageError("--max-seq-length must lie between 8 and 512.")

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
    output_dir: str = field(default=None, metadata={"help": "where the model, metrics and card are written"})
    epochs: int = field(default=2, metadata={"help": "passes over the training data (raised to reach --min-steps)"})
    min_steps: int = field(default=400, metadata={
        "help": "train for at least this many optimiser steps, taking more epochs on small data (0: off); "
                "2 epochs of 1,000 rows are only 63 steps, too few to fine-tune"})
    batch_size: int = field(default=32, metadata={"help": "training batch size"})
    eval_batch_size: int = field(default=64, metadata={"help": "evaluation batch size"})
    learning_rate: float = field(default=5e-5, metadata={"help": "AdamW peak learning rate"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (not on biases/LayerNorm)"})
    warmup_ratio: float = field(default=0.06, metadata={"help": "share of steps spent warming up linearly"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    seed: int = field(default=42, metadata={"help": "random seed (data order, subset, head init)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | mps (under accelerate launch: its own)"})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "allow writing into a non-empty directory"})
    mixed_precision: Literal["no", "fp16", "bf16"] = field(default="no", metadata={
        "help": "compute in fp16 (GPU) or bf16 (recent GPUs, CPU) through accelerate; weights stay float32"})
    gradient_accumulation_steps: int = field(default=1, metadata={
        "help": "batches per optimiser step (an effective batch of batch-size x this)"})
    checkpoint_steps: int = field(default=0, metadata={
        "help": "save model, optimiser, scheduler, RNG and data position every N optimiser steps (0: off)"})
    keep_checkpoints: int = field(default=2, metadata={"help": "newest checkpoints kept (0: all)"})
    resume_from_checkpoint: Optional[str] = field(default=None, metadata={
        "help": "continue a stopped run: a checkpoint directory, or 'latest' (in --output-dir/checkpoints)"})
    max_steps: int = field(default=0, metadata={
        "help": "stop after this many optimiser steps, whatever --epochs and --min-steps say (0: off); for "
                "large text corpora"})
    logging_steps: int = field(default=50, metadata={"help": "a history.jsonl line every N optimiser steps"})
    report_to: str = field(default="none", metadata={
        "help": "accelerate trackers besides history.jsonl: none, tensorboard, wandb, ... (comma-separated)"})

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

    def total_steps(self, n_rows: int) -> int:
        """The budget in optimiser steps: --epochs passes, at least --min-steps, at most --max-steps."""
        per_epoch = -(-n_rows // (self.batch_size * self.gradient_accumulation_steps))
        total = max(self.epochs * per_epoch, self.min_steps)
        return min(total, self.max_steps) if self.max_steps else total


@dataclass
class FinetuneArguments:
    model: str = field(default=None, metadata={
        "help": "Hub id or directory of a BERT encoder to fine-tune (with --objective mlm: to adapt to the text; "
                "an MLM head tied to the input embeddings is added where the checkpoint has none)"})

    def __post_init__(self):
        if not self.model:
            raise UsageError("--model is required: a BERT encoder (Hub id or directory) to fine-tune as teacher.")


@dataclass
class DistillArguments:
    teacher: str = field(default=None, metadata={
        "help": "BERT teacher (Hub id or directory): a fine-tuned classifier, or with --objective mlm a masked LM"})
    student_layers: str = field(default="6", metadata={
        "help": "N evenly spaced teacher layers, or a list such as 0,2,4,7,9,11"})
    student_arch: Literal["distilbert", "bert"] = field(default="distilbert", metadata={
        "help": "distilbert (no token types, no pooler) or bert (the teacher's shape, fewer layers)"})
    temperature: float = field(default=2.0, metadata={"help": "softmax temperature of the soft targets"})
    alpha_ce: Optional[float] = field(default=None, metadata={
        "help": "weight of KL to the teacher's soft targets (with --objective mlm: over the vocabulary at masked "
                "positions); default 0.5, or 5.0 for mlm (DistilBERT's); 0: off"})
    alpha_hard: Optional[float] = field(default=None, metadata={
        "help": "weight of cross-entropy on gold labels, labelled rows only; default 0.5 (classification only)"})
    alpha_mlm: Optional[float] = field(default=None, metadata={
        "help": "--objective mlm: weight of the masked-LM loss on the true tokens; default 2.0 (DistilBERT's)"})
    alpha_cos: Optional[float] = field(default=None, metadata={
        "help": "weight of hidden-state cosine loss; default 0, or 1.0 for mlm (DistilBERT's, last hidden state)"})
    cos_layers: Literal["last", "all"] = field(default="last", metadata={
        "help": "align the last hidden state, or every kept layer with its teacher layer"})
    alpha_hidden: float = field(default=0.0, metadata={
        "help": "weight of MSE between each student layer's hidden states and its teacher layer's (PKD/TinyBERT; "
                "a learned projection where widths differ, not saved with the student; 0: off)"})
    alpha_attn: float = field(default=0.0, metadata={
        "help": "weight of KL between attention distributions of mapped layers (TinyBERT/MiniLM; 0: off)"})
    transfer_file: Optional[list[str]] = field(default=None, metadata={
        "action": "append", "help": "unlabelled text the student learns from the teacher's soft targets alone "
                                    "(.txt one text per line, or CSV/TSV/JSON(L) with a text column; a label "
                                    "column is ignored); may be given several times"})
    transfer_text_column: Optional[str] = field(default=None, metadata={
        "help": "text column of the transfer files (guessed when obvious)"})
    max_transfer_samples: Optional[int] = field(default=None, metadata={
        "help": "use a seeded random sample of this many transfer texts (with --streaming: the first this many)"})
    streaming: bool = field(default=False, metadata={
        "help": "read the transfer files as a stream, for text larger than memory (needs --max-transfer-samples; "
                "the teacher's soft targets are computed batch by batch, not cached)"})
    transfer_cache: Optional[str] = field(default=None, metadata={
        "help": "keep the teacher's soft targets on the transfer text in this file (reused when it matches; "
                "refused when it was made by another teacher or from other text)"})
    targets_cache_dir: Optional[str] = field(default=None, metadata={
        "help": "automatic cache of the teacher's soft targets (default ~/.cache/distill-demo/targets; "
                "'none' to switch off)"})
    augment: int = field(default=0, metadata={
        "help": "augmented variants per labelled text, labelled by the teacher's soft targets (0: off)"})
    augment_transfer: bool = field(default=False, metadata={"help": "augment the transfer text too"})
    augment_mlm: str = field(default="teacher", metadata={
        "help": "masked LM proposing replacement words: 'teacher' (its own MLM head, where it has one), a "
                "fill-mask model, or 'none' (masking and n-gram sampling only)"})
    augment_mask_prob: float = field(default=0.1, metadata={"help": "share of words replaced by [MASK]"})
    augment_swap_prob: float = field(default=0.1, metadata={"help": "share of words replaced by a MLM guess"})
    augment_ngram_prob: float = field(default=0.25, metadata={"help": "share of variants cut to a random 1-5-gram"})
    eval_file: Optional[list[str]] = field(default=None, metadata={
        "action": "append", "help": "NAME=FILE: an extra labelled test set (e.g. out of domain) evaluated for "
                                    "teacher and student at the end; may be given several times"})
    baselines: bool = field(default=False, metadata={
        "help": "also measure, with the same training budget: the layer-dropped student untrained, one trained "
                "on hard labels alone, and (with transfer text or augmentation) KD on the labelled rows alone"})
    push_to_hub: Optional[str] = field(default=None, metadata={"help": "publish the output to this Hub repo id"})
    hub_private: bool = field(default=False, metadata={"help": "create the Hub repo as private"})
    dry_run: bool = field(default=False, metadata={"help": "with --push-to-hub: list the upload, send nothing"})

    def __post_init__(self):
        self.transfer_file = _flatten(self.transfer_file)
        self.eval_file = _flatten(self.eval_file)

    def check(self, objective: str) -> "DistillArguments":
        """Fill in the objective's default loss weights and refuse what does not apply to it (the CLI
        calls this once the data arguments, which carry --objective, are parsed)."""
        if not self.teacher:
            raise UsageError("--teacher is required: a fine-tuned BERT classifier (run the finetune step first), "
                             "or with --objective mlm a masked LM (finetune --objective mlm).")
        if self.temperature <= 0:
            raise UsageError("--temperature must be positive (the paper's spirit: 2).")
        if objective == "mlm":
            self._check_mlm()
        else:
            if self.alpha_mlm is not None:
                raise UsageError("--alpha-mlm is the masked-LM loss: it needs --objective mlm.")
            self.alpha_ce = 0.5 if self.alpha_ce is None else self.alpha_ce
            self.alpha_hard = 0.5 if self.alpha_hard is None else self.alpha_hard
            self.alpha_cos = 0.0 if self.alpha_cos is None else self.alpha_cos
            self.alpha_mlm = 0.0
        weights = (self.alpha_ce, self.alpha_hard, self.alpha_mlm, self.alpha_cos, self.alpha_hidden, self.alpha_attn)
        if min(weights) < 0:
            raise UsageError("loss weights must not be negative; 0 switches a term off.")
        if not any(weights):
            raise UsageError("every loss term is switched off; give --alpha-ce, --alpha-hard, --alpha-cos, "
                             "--alpha-hidden or --alpha-attn > 0 (with --objective mlm: --alpha-ce, --alpha-mlm "
                             "or --alpha-cos).")
        for item in self.eval_file:
            name, sep, path = item.partition("=")
            if not sep or not name.strip() or not path.strip():
                raise UsageError(f"--eval-file {item!r}: write NAME=FILE, e.g. books=reviews-books/test.tsv.")
        names = [item.partition("=")[0].strip() for item in self.eval_file]
        if len(set(names)) != len(names):
            raise UsageError("--eval-file: give each test set its own NAME.")
        if objective == "mlm":
            return self
        if self.transfer_file and not (self.alpha_ce or self.alpha_cos or self.alpha_hidden or self.alpha_attn):
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
        if self.streaming and (self.transfer_cache or self.augment_transfer):
            raise UsageError("--streaming computes the teacher's soft targets batch by batch: it takes neither "
                             "--transfer-cache nor --augment-transfer.")
        if self.augment < 0:
            raise UsageError("--augment must be 0 (off) or a number of variants per text, e.g. 4.")
        if self.augment_transfer and not self.augment:
            raise UsageError("--augment-transfer needs --augment N (variants per text).")
        for name in ("augment_mask_prob", "augment_swap_prob", "augment_ngram_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise UsageError(f"--{name.replace('_', '-')} must lie in [0, 1].")
        if self.augment_mask_prob + self.augment_swap_prob > 1:
            raise UsageError("--augment-mask-prob plus --augment-swap-prob must not exceed 1.")
        return self

    def _check_mlm(self) -> None:
        """General distillation: the training text is the --train-file text; DistilBERT's triple loss."""
        if self.alpha_hard is not None:
            raise UsageError("--alpha-hard is the gold-label loss of classification; with --objective mlm the "
                             "masked-LM loss on the true tokens is --alpha-mlm.")
        if self.alpha_attn:
            raise UsageError("--alpha-attn is not available with --objective mlm; --alpha-cos (with --cos-layers "
                             "all) and --alpha-hidden align the hidden states of every kept layer.")
        if self.transfer_file or self.augment or self.streaming or self.transfer_cache:
            raise UsageError("--objective mlm learns from the --train-file text itself: --transfer-file, --augment, "
                             "--streaming and --transfer-cache are for classification.")
        self.alpha_ce = 5.0 if self.alpha_ce is None else self.alpha_ce
        self.alpha_mlm = 2.0 if self.alpha_mlm is None else self.alpha_mlm
        self.alpha_cos = 1.0 if self.alpha_cos is None else self.alpha_cos
        self.alpha_hard = 0.0

    @property
    def eval_files(self) -> dict[str, str]:
        return {n.strip(): p.strip() for n, _, p in (item.partition("=") for item in self.eval_file)}


@dataclass
class DistillTrainArguments(TrainArguments):
    """The training settings with the defaults measured for distillation (README: "Defaults")."""

    epochs: int = field(default=3, metadata={"help": "passes over the training data (raised to reach --min-steps)"})
    learning_rate: Optional[float] = field(default=None, metadata={
        "help": "AdamW peak learning rate; default 1e-4, or 3e-4 with --objective mlm"})

    def check(self, objective: str) -> "DistillTrainArguments":
        """Fill in the objective's learning rate. A general-distillation student starts far from where it
        ends (half its teacher's layers gone, the text raw) and learnt faster at 3e-4 than 1e-4 or 6e-4
        (README: "General distillation")."""
        if self.learning_rate is None:
            self.learning_rate = 3e-4 if objective == "mlm" else 1e-4
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
