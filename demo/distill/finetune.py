"""`finetune`: the teacher. A BERT encoder fine-tuned on a classification task, or with
`--objective mlm` adapted to a text domain with the masked-LM loss (a head tied to the input
embeddings is added where the checkpoint has none)."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoModelForSequenceClassification, AutoTokenizer

from demo.core.measure import count_parameters
from demo.distill.batches import batches, encode_examples
from demo.distill.data import read_data
from demo.distill.loop import FitResult, Trainee, fit
from demo.distill.masked_text import corpus_record, masked_lm_trainee, measurer, read_corpus, write_held_out
from demo.distill.objectives import cross_entropy_loss_fn, mlm_loss_fn, predict_ids
from demo.distill.steps import FinetuneStep
from demo.measuring.scoring import accuracy, macro_f1
from demo.models.loading import pretrained
from demo.models.masked_lm import DynamicMasker, load_masked_lm


class ClassifierFinetune(FinetuneStep):
    """A classifier teacher: cross-entropy on the gold labels."""


    def prepare(self, accelerator) -> None:
        self.data = data = read_data(self.data_args, self.targs.seed)
        name = self.margs.model
        self.tokenizer = pretrained(AutoTokenizer, name)
        self.model = pretrained(AutoModelForSequenceClassification, name, num_labels=len(data.label_names),
                                id2label=dict(enumerate(data.label_names)),
                                label2id={n: i for i, n in enumerate(data.label_names)}, ignore_mismatched_sizes=True)

    def train(self, accelerator, run) -> FitResult:
        data, length = self.data, self.data_args.max_seq_length
        train = encode_examples(self.tokenizer, data.train.texts, data.train_ids, length)
        self.validation = encode_examples(self.tokenizer, data.validation.texts, data.validation_ids, length)
        accelerator.print(f"fine-tuning {self.margs.model} on {len(data.train):,} rows, {len(data.label_names)} "
                          f"classes ({', '.join(data.label_names)}), {self.targs.budget_note(len(train))}, "
                          f"{accelerator.num_processes} process(es) on {accelerator.device}, mixed precision "
                          f"{accelerator.mixed_precision}", flush=True)
        trainee = Trainee(self.model, train, self.validation, cross_entropy_loss_fn(accelerator.device),
                          desc="finetune", total_steps=self.targs.total_steps(len(train)))
        return fit(trainee, accelerator, self.targs, run=run, status=self.status)

    def save(self, out: Path) -> None:
        self.model.save_pretrained(out, safe_serialization=True)
        self.tokenizer.save_pretrained(out)

    def measure(self, accelerator, out: Path, result: FitResult) -> dict:
        data, device = self.data, accelerator.device
        preds = predict_ids(self.model, batches(self.validation.encoded, self.validation.labels,
                                                self.targs.eval_batch_size, self.tokenizer), device)
        return {"accuracy": accuracy(preds, data.validation_ids), "macro_f1": macro_f1(preds, data.validation_ids),
                "params": count_parameters(self.model), "n_train": len(data.train),
                "n_validation": len(data.validation), "label_names": data.label_names, "device": str(device)}

    def summary(self, out: Path, metrics: dict) -> str:
        return (f"teacher saved to {out}: validation accuracy {metrics['accuracy']:.4f}, macro-F1 "
                f"{metrics['macro_f1']:.4f}, {metrics['train_seconds']:.0f} s")


class MlmFinetune(FinetuneStep):
    """A masked-LM teacher: the encoder adapted to the text with the masked-LM loss (dynamic masks)."""


    def prepare(self, accelerator) -> None:
        self.corpus = read_corpus(self.data_args, self.targs.seed)
        self.model, self.tokenizer, self.head_added = load_masked_lm(self.margs.model)
        if self.head_added:
            accelerator.print(f"{self.margs.model} has no masked-LM head: added one (its projection tied to the "
                              "input embeddings, its transform newly initialised); this adaptation trains it.",
                              flush=True)

    def train(self, accelerator, run) -> FitResult:
        corpus, targs = self.corpus, self.targs
        total_steps = targs.total_steps(len(corpus.train))
        accelerator.print(f"adapting {self.margs.model} to {len(corpus.train):,} texts with the masked-LM objective "
                          f"(dynamic masking, 15%, 80/10/10), {targs.budget_note(len(corpus.train))}; held out: "
                          f"{len(corpus.validation):,} texts; {accelerator.num_processes} process(es) on "
                          f"{accelerator.device}", flush=True)
        loss_fn = mlm_loss_fn(DynamicMasker(self.tokenizer), accelerator.device)
        trainee = masked_lm_trainee(self.model, self.tokenizer, corpus, loss_fn, self.data_args.max_seq_length,
                                    "finetune (mlm)", total_steps)
        return fit(trainee, accelerator, targs, run=run, status=self.status)

    def save(self, out: Path) -> None:
        self.model.save_pretrained(out, safe_serialization=True)
        self.tokenizer.save_pretrained(out)
        write_held_out(out, self.corpus.validation)

    def measure(self, accelerator, out: Path, result: FitResult) -> dict:
        self.report = measurer(self.model, self.tokenizer, self.data_args, self.targs,
                               accelerator.device)(self.corpus.validation)
        return {"masked_lm": self.report.figures(), "head_added": self.head_added,
                "params": count_parameters(self.model), **corpus_record(self.corpus)}

    def summary(self, out: Path, metrics: dict) -> str:
        teacher = self.report.teacher
        return (f"masked LM saved to {out}: held-out top-1 {teacher.top1_accuracy:.4f}, top-5 "
                f"{teacher.top5_accuracy:.4f}, pseudo-perplexity {teacher.pseudo_perplexity:.2f}, "
                f"{metrics['train_seconds']:.0f} s")
