"""Raw text for the masked-LM objective, and what its steps share: `finetune --objective mlm` (adapting a
teacher) and `distill --objective mlm` (general distillation) read and hold out text alike, train on it with
one fit, measure held-out text alike and record the corpus alike. Steps are peers: each imports this,
neither imports the other.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

from demo.core.progress import ProgressLine
from demo.data.files import DataError, read_texts
from demo.distill.args import DataArguments, TrainArguments
from demo.distill.batches import encode_examples
from demo.distill.loop import Trainee
from demo.distill.objectives import masked_accuracy
from demo.measuring.mlm_eval import EVAL_SEED, MaskedLMSettings, evaluate_masked_lm
from demo.models.inputs import IGNORE_INDEX
from demo.models.masked_lm import MaskedLMAtPositions

HELD_OUT_FILE = "heldout_texts.txt"  # the texts measured, one per line: `python -m demo.evaluate --task fill_mask`


def write_held_out(out: Path, texts: list[str]) -> None:
    (out / HELD_OUT_FILE).write_text("".join(" ".join(t.split()) + "\n" for t in texts), encoding="utf-8")


def corpus_record(corpus: TextCorpus) -> dict:
    """What metrics.json says about the text of an --objective mlm run."""
    return {"objective": "mlm", "n_train": len(corpus.train), "n_validation": len(corpus.validation),
            "text_files": corpus.sources, "validation": corpus.validation_source, "heldout_file": HELD_OUT_FILE}


def masked_lm_trainee(model, tokenizer, corpus: TextCorpus, loss_fn, max_length: int, desc: str,
                      total_steps: int) -> Trainee:
    """What fit() trains on raw text: rows carry no label, the head runs at the masked positions only."""
    train = encode_examples(tokenizer, corpus.train, [IGNORE_INDEX] * len(corpus.train), max_length)
    validation = encode_examples(tokenizer, corpus.validation, [IGNORE_INDEX] * len(corpus.validation), max_length)
    return Trainee(MaskedLMAtPositions(model), train, validation, loss_fn, desc=desc, total_steps=total_steps,
                   predictor=lambda m: m.model, score=masked_accuracy(tokenizer, EVAL_SEED))


def measurer(teacher, tokenizer, data_args: DataArguments, targs: TrainArguments, device):
    """measure(texts, student) on held-out text; the teacher's pseudo-perplexity (one forward per token,
    the same for every student) is measured once per text set."""
    known: dict[int, float] = {}
    how = MaskedLMSettings(data_args.max_seq_length, targs.eval_batch_size, device)

    def measure(texts: list[str], student=None):
        with ProgressLine("measuring held-out text", unit="texts") as progress:
            report = evaluate_masked_lm(teacher, tokenizer, texts, student=student, settings=how, progress=progress,
                                        teacher_pppl=known.get(id(texts)))
        known[id(texts)] = report.teacher.pseudo_perplexity
        return report

    return measure


# ---- raw text for the masked-LM objective ----------------------------------------------------------
@dataclass
class TextCorpus:
    """Training and held-out texts for --objective mlm, and what was read from where."""

    train: list[str]
    validation: list[str]
    sources: list[dict]
    validation_source: str  # a sentence for the card and metrics


def held_out(text: str, percentage: float) -> bool:
    """Whether a text belongs to the held-out slice: decided by a hash of the text alone, so the
    teacher's adaptation, the student's distillation and any later run hold out the same texts
    (whatever files, order or sample), and a duplicated text never lands on both sides."""
    return _text_hash(text) % 10_000 < percentage * 100


def _text_hash(text: str, purpose: bytes = b"") -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8, person=purpose).digest(), "big")


def read_corpus(data_args: DataArguments, seed: int) -> TextCorpus:
    """The training and held-out texts of --train-file (one or more) and --validation-file, or a hashed
    --validation-split-percentage of them; --max-train-samples a seeded sample, --max-eval-samples a hashed one."""
    files, validation_file, text_column = data_args.train_file, data_args.validation_file, data_args.text_column
    percentage, quoting = data_args.validation_split_percentage, data_args.quoting
    max_train, max_eval = data_args.max_train_samples, data_args.max_eval_samples
    train, validation, sources = [], [], []
    for path in files:
        data = read_texts(path, text_column, quoting=quoting)
        kept = data.texts if validation_file else [t for t in data.texts if not held_out(t, percentage)]
        sources.append({"file": str(path), "texts": len(data), "text_column": data.text_column,
                        "held_out": len(data) - len(kept)})
        train += kept
        if not validation_file:
            validation += [t for t in data.texts if held_out(t, percentage)]
    if validation_file:
        validation = read_texts(validation_file, text_column, quoting=quoting).texts
        described = f"`{Path(validation_file).name}`"
    else:
        described = f"{percentage:g}% of the texts held out by a hash of each text"
    if not train:
        raise DataError("no training text is left once the held-out slice is taken; give more text or a "
                        "--validation-file.")
    if not validation:
        raise DataError("the held-out slice is empty (too little text for the --validation-split-percentage); "
                        "give a --validation-file or a larger percentage.")
    rng = random.Random(seed)
    if max_train is not None and max_train < len(train):
        train = [train[i] for i in sorted(rng.sample(range(len(train)), max_train))]
    if max_eval is not None and max_eval < len(validation):
        # The same sample whatever --seed, the files' order or the training sample: a run with another
        # seed is measured on the same texts. (Chosen by a second hash of each text.)
        by_hash = sorted(range(len(validation)), key=lambda i: _text_hash(validation[i], b"eval-sample"))
        keep = set(by_hash[:max_eval])
        validation = [t for i, t in enumerate(validation) if i in keep]
        described += f", {max_eval:,} of them chosen by a hash of each text"
    return TextCorpus(train, validation, sources, described)


def corpus_description(corpus: TextCorpus) -> str:
    files = ", ".join(f"`{Path(s['file']).name}` ({s['texts']:,})" for s in corpus.sources)
    return (f"Trained on {len(corpus.train):,} texts from {files}; measured on {len(corpus.validation):,} texts "
            f"({corpus.validation_source}).")
