"""The rows a student trains on: what the run reads (checked before anything is written), the
labelled rows, their augmented variants and the transfer text, each with the teacher's soft targets."""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from demo.data.files import DataError, LabelledData, read_labelled, read_texts
from demo.data.streams import TextStream, stream_texts
from demo.distill.args import DataArguments, DistillArguments, ObjectiveMismatch, TrainArguments
from demo.distill.augment import (
    AugmentError,
    AugmentSettings,
    EmbeddingNeighbours,
    MaskedLM,
    augment_texts,
    load_proposer,
)
from demo.distill.data import TaskData, read_data
from demo.distill.losses import IGNORE_INDEX, LossWeights
from demo.distill.recipe import AugmentPlan, Passes, can_vary, plan_augmentation
from demo.distill.targets import (
    DEFAULT_CACHE_DIR,
    TargetsInfo,
    TargetsKey,
    check_named_cache,
    soft_targets,
    weights_digest,
)
from demo.measuring.evaluation import label_index
from demo.models.config import ModelSpec
from demo.models.loading import LoadedModel, load_model, read_config
from demo.models.masked_lm import is_classifier, is_masked_lm

LABELLED, AUGMENTED, TRANSFER, TRANSFER_AUGMENTED = "labelled", "augmented", "transfer", "transfer_augmented"
SAMPLE_ROWS = 200  # augmented texts written beside the output, for a person to read


@dataclass
class DistillSet:
    """The rows a student trains on. Rows without a gold label carry IGNORE_INDEX and learn from the
    teacher's soft targets alone."""

    texts: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    logits: torch.Tensor | None = None  # (N, C) teacher logits, row-aligned
    stream: list = field(default_factory=list)  # --streaming: the transfer files as TextStreams ...
    n_streamed: int = 0  # ... of which the first n_streamed texts are trained on (never held in memory)

    def add(self, texts, labels, kind, logits: torch.Tensor | None) -> None:
        self.texts += list(texts)
        self.labels += list(labels)
        self.kinds += [kind] * len(texts)
        if logits is not None:
            self.logits = logits if self.logits is None else torch.cat([self.logits, logits])

    def only(self, *kinds: str) -> DistillSet:
        keep = [i for i, k in enumerate(self.kinds) if k in kinds]
        return DistillSet([self.texts[i] for i in keep], [self.labels[i] for i in keep],
                          [self.kinds[i] for i in keep], None if self.logits is None else self.logits[keep],
                          self.stream if TRANSFER in kinds else [], self.n_streamed if TRANSFER in kinds else 0)

    def counts(self) -> dict[str, int]:
        counts = {k: self.kinds.count(k) for k in (LABELLED, AUGMENTED, TRANSFER, TRANSFER_AUGMENTED)}
        counts[TRANSFER] += self.n_streamed
        return counts

    def __len__(self) -> int:
        return len(self.texts) + self.n_streamed


def use_eager_attention(model: torch.nn.Module) -> None:
    """Attention probabilities are only returned by the eager implementation (not SDPA)."""
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    else:  # pragma: no cover - older transformers
        model.config._attn_implementation = "eager"


# ---- what the run reads, checked before anything is written -------------------------------------
@dataclass
class Inputs:
    teacher: LoadedModel
    data: TaskData
    transfer_texts: list[str]
    transfer_sources: list[dict]
    transfer_streams: list  # --streaming: TextStreams instead of transfer_texts
    eval_sets: dict[str, LabelledData]
    mlm: MaskedLM | EmbeddingNeighbours | None
    augment: AugmentSettings
    teacher_digest: str
    cache_dir: Path | None
    plan: AugmentPlan  # how many variants, and the sentence saying why


def refuse_masked_lm_teacher(name: str) -> None:
    """A masked LM given to classification distillation would get a random classifier head."""
    config = read_config(name)  # None: load_model explains a model that cannot be read
    if config is not None and is_masked_lm(config):
        raise ObjectiveMismatch(f"{name} is a masked LM ({config.architectures[0]}), not a fine-tuned classifier: "
                                "distil it with --objective mlm (general distillation), or fine-tune it on your "
                                "labels first (python -m demo.distill finetune --model ...).")


def resolve_mlm(dargs: DistillArguments, teacher: LoadedModel, device) -> MaskedLM | EmbeddingNeighbours | None:
    """What proposes replacement words: a named fill-mask model, or the teacher's own masked-LM head where
    it has one, else the teacher's input embeddings (every BERT has those)."""
    aug = dargs.augmentation
    if aug.augment_swap_prob == 0 or aug.augment_mlm == "none":
        return None
    if aug.augment_mlm not in ("teacher", "embeddings"):
        return load_proposer(aug.augment_mlm, device)
    if aug.augment_mlm == "teacher" and not is_classifier(teacher.model.config):
        try:  # a checkpoint saved with a masked-LM head beside its classifier is rare: tried, quietly refused
            return load_proposer(dargs.student.teacher, device)
        except AugmentError:
            pass
    # a fine-tuned classifier keeps no masked-LM head (its checkpoint has none): its embeddings propose the words
    return EmbeddingNeighbours.of(teacher.model, teacher.tokenizer, dargs.student.teacher)


def read_inputs(dargs: DistillArguments, data_args: DataArguments, targs: TrainArguments, device) -> Inputs:
    refuse_masked_lm_teacher(dargs.student.teacher)
    teacher = load_model(ModelSpec(dargs.student.teacher), "classify", device)
    if dargs.loss.alpha_attn > 0:
        use_eager_attention(teacher.model)
    teacher_names = [teacher.id2label[i] for i in sorted(teacher.id2label)]
    data = read_data(data_args, targs.seed, teacher_names=teacher_names)
    transfer, sources, streams = [], [], []
    if dargs.transfer.transfer_file and dargs.transfer.streaming:
        streams, sources = open_transfer_streams(dargs.transfer.transfer_file, dargs.transfer.transfer_text_column,
                                                 dargs.transfer.max_transfer_samples, data_args.quoting)
    elif dargs.transfer.transfer_file:
        transfer, sources = load_transfer_texts(dargs.transfer.transfer_file, dargs.transfer.transfer_text_column,
                                                dargs.transfer.max_transfer_samples, targs.seed, data_args.quoting)
    eval_sets = {}
    for name, path in dargs.tests.eval_files.items():
        eval_sets[name] = load_eval_set(name, path, data.train.text_column, data.train.label_column,
                                        data_args.quoting)
        label_index(teacher, eval_sets[name].labels)  # unknown labels stop the run here (LabelMismatch)
    n_transfer = dargs.transfer.max_transfer_samples if streams else len(transfer)
    passes = Passes(targs.epochs, targs.batch_size, targs.gradient_accumulation_steps, targs.max_steps or None)
    plan = plan_augmentation(dargs.augmentation.augment, len(data.train.texts), can_vary(data.train.texts),
                             n_transfer or 0, dargs.loss.matches_teacher(), passes)
    mlm = resolve_mlm(dargs, teacher, device) if plan.variants else None
    augment = AugmentSettings(variants=plan.variants, mask_prob=dargs.augmentation.augment_mask_prob,
                              swap_prob=dargs.augmentation.augment_swap_prob if mlm is not None else 0.0,
                              ngram_prob=dargs.augmentation.augment_ngram_prob, seed=targs.seed,
                              mlm=mlm.name if mlm is not None else "none")
    digest = weights_digest(teacher.model)
    if dargs.transfer.transfer_cache:
        transfer_aug = augment.key() if dargs.augmentation.augment_transfer else "none"
        # The exact texts are known only after augmentation; the teacher is checked now, the rest on use.
        check_named_cache(Path(dargs.transfer.transfer_cache), TargetsKey(digest, "", 0, data_args.max_seq_length,
                                                                 transfer_aug, teacher.name), teacher_only=True)
    cache_dir = (None if (dargs.transfer.targets_cache_dir or "").lower() == "none" else
        Path(dargs.transfer.targets_cache_dir) if dargs.transfer.targets_cache_dir else DEFAULT_CACHE_DIR)
    return Inputs(teacher, data, transfer, sources, streams, eval_sets, mlm, augment, digest, cache_dir, plan)


# ---- the training set ----------------------------------------------------------------------------
def build_distill_set(inputs: Inputs, dargs: DistillArguments, data_args: DataArguments, targs: TrainArguments,
                      weights: LossWeights, out: Path, accelerator=None) -> tuple[DistillSet, list[TargetsInfo]]:
    """Labelled rows, their augmented variants, transfer text (and its variants), with soft targets
    (computed once, shared out over the processes of an accelerate launch)."""
    teacher, data = inputs.teacher, inputs.data
    mask = teacher.tokenizer.mask_token or "[MASK]"
    aug = dargs.augmentation
    aug_labelled = augment_texts(data.train.texts, inputs.augment, mask, inputs.mlm) if inputs.augment.variants else []
    transfer = inputs.transfer_texts
    aug_transfer = (augment_texts(transfer, inputs.augment, mask, inputs.mlm)
                    if aug.augment_transfer and inputs.augment.variants else [])
    if (aug_labelled or aug_transfer) and (accelerator is None or accelerator.is_main_process):
        write_augmented_sample(out / "augmented_samples.tsv", data.train.texts, aug_labelled, transfer, aug_transfer,
                               targs.seed)
    need_logits = weights.alpha_ce > 0 and not weights.needs_teacher_internals
    infos: list[TargetsInfo] = []

    def targets(name, texts, augmentation, cache_file=None):
        if not texts or not need_logits:
            return None
        logits, info = soft_targets(teacher, texts, name=name, max_length=data_args.max_seq_length,
                                    batch_size=targs.eval_batch_size, augmentation=augmentation,
                                    teacher_digest=inputs.teacher_digest, cache_dir=inputs.cache_dir,
                                    cache_file=cache_file, accelerator=accelerator)
        infos.append(info)
        return logits

    dset = DistillSet()
    labelled_texts = data.train.texts + [t for _, t in aug_labelled]
    logits = targets("labelled", labelled_texts, inputs.augment.key() if aug_labelled else "none")
    dset.add(data.train.texts, data.train_ids, LABELLED, None if logits is None else logits[:len(data.train)])
    dset.add([t for _, t in aug_labelled], [IGNORE_INDEX] * len(aug_labelled), AUGMENTED,
             None if logits is None else logits[len(data.train):])
    transfer_texts = transfer + [t for _, t in aug_transfer]
    logits = targets("transfer", transfer_texts, inputs.augment.key() if aug_transfer else "none",
                     Path(dargs.transfer.transfer_cache) if dargs.transfer.transfer_cache else None)
    dset.add(transfer, [IGNORE_INDEX] * len(transfer), TRANSFER, None if logits is None else logits[:len(transfer)])
    dset.add([t for _, t in aug_transfer], [IGNORE_INDEX] * len(aug_transfer), TRANSFER_AUGMENTED,
             None if logits is None else logits[len(transfer):])
    if inputs.transfer_streams:
        dset.stream, dset.n_streamed = inputs.transfer_streams, dargs.transfer.max_transfer_samples
    return dset, infos


def write_augmented_sample(path: Path, labelled: list[str], aug_labelled, transfer: list[str], aug_transfer,
                           seed: int) -> None:
    """A seeded sample of (source, augmented) pairs: what the student saw, for a person to check."""
    rows = ([("labelled", labelled[i], t) for i, t in aug_labelled] +
        [("transfer", transfer[i], t) for i, t in aug_transfer])
    rng = random.Random(seed)
    sample = sorted(rng.sample(range(len(rows)), min(SAMPLE_ROWS, len(rows))))
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["set", "source_text", "augmented_text"])
        for i in sample:
            writer.writerow(rows[i])


# ---- transfer text and extra test sets, as read for the training set ---------------------------------
def load_transfer_texts(files: Sequence[str], text_column: str | None, max_samples: int | None,
                        seed: int, quoting: str = "auto") -> tuple[list[str], list[dict]]:
    """Unlabelled texts of every transfer file, in file order (a seeded sample with max_samples).

    Returns the texts and, per file, what was read (for metrics.json and the card).
    """
    texts, sources = [], []
    for path in files:
        data = read_texts(path, text_column, column_flag="--transfer-text-column", quoting=quoting)
        sources.append({"file": str(path), "texts": len(data), "text_column": data.text_column})
        texts += data.texts
    if max_samples is not None and max_samples < len(texts):
        keep = sorted(random.Random(seed).sample(range(len(texts)), max_samples))
        texts = [texts[i] for i in keep]
    return texts, sources


def open_transfer_streams(files: Sequence[str], text_column: str | None, max_samples: int,
                          quoting: str = "auto") -> tuple[list[TextStream], list[dict]]:
    """--streaming: each transfer file as a stream, and the first max_samples texts counted through
    (a malformed row among them, or fewer texts than asked for, stops the run before training)."""
    streams = [stream_texts(path, text_column, quoting, column_flag="--transfer-text-column") for path in files]
    available = 0
    for stream in streams:
        available += stream.count(max_samples - available)
        if available >= max_samples:
            break
    if available < max_samples:
        raise DataError(f"--max-transfer-samples {max_samples:,}: the transfer stream holds only {available:,} "
                        "texts; ask for at most that many.")
    sources = [{"file": s.source, "text_column": s.text_column, "streamed": True} for s in streams]
    return streams, sources


def load_eval_set(name: str, path: str, text_column: str | None, label_column: str | None,
                  quoting: str = "auto") -> LabelledData:
    """An extra labelled test set; the training file's column names are used where the file has them."""
    return read_labelled(path, text_column, label_column, columns_if_present=True, quoting=quoting)
