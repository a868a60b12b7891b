"""What the masked-LM steps share: `finetune --objective mlm` (adapting a teacher) and `distill
--objective mlm` (general distillation) train on raw text with one fit, measure held-out text alike and
record the corpus alike. Steps are peers: each imports this, neither imports the other.
"""

from __future__ import annotations

from pathlib import Path

from demo.core.progress import ProgressLine
from demo.distill.args import DataArguments, TrainArguments
from demo.distill.batches import encode_examples
from demo.distill.data import TextCorpus
from demo.distill.loop import Trainee
from demo.distill.objectives import masked_accuracy
from demo.measuring.mlm_eval import EVAL_SEED, evaluate_masked_lm
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

    def measure(texts: list[str], student=None):
        with ProgressLine("measuring held-out text", unit="texts") as progress:
            report = evaluate_masked_lm(teacher, tokenizer, texts, student=student,
                                        max_length=data_args.max_seq_length, batch_size=targs.eval_batch_size,
                                        device=device, progress=progress, teacher_pppl=known.get(id(texts)))
        known[id(texts)] = report.teacher.pseudo_perplexity
        return report

    return measure
