"""General-purpose distillation (Sanh et al., 2019, section 3), `distill --objective mlm`.

A student made of every other teacher layer learns on raw text with DistilBERT's triple loss (the
MLM objective in objectives.py): soft targets over the vocabulary at the masked positions, the
masked-LM loss on the true tokens, and a cosine loss aligning hidden states. Masks are drawn anew for
every batch; the held-out text is measured with fixed, seeded masks (measuring/mlm_eval.py).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from demo.core.measure import count_parameters
from demo.data.files import read_texts
from demo.distill.args import ObjectiveMismatch
from demo.distill.card import write_mlm_card
from demo.distill.loop import FitResult, fit, set_seed
from demo.distill.masked_text import (
    corpus_description,
    corpus_record,
    masked_lm_trainee,
    measurer,
    read_corpus,
    write_held_out,
)
from demo.distill.objectives import mlm_loss_fn, triple_loss_fn
from demo.distill.steps import DistillStep
from demo.distill.student import make_student, parse_layers, save_tokenizer
from demo.distill.targets import weights_digest
from demo.measuring.mlm_eval import (
    MaskedLMReport,
    paired_top1,
)
from demo.measuring.stats import Estimate
from demo.models.config import ModelSpec
from demo.models.loading import load_model, read_config
from demo.models.masked_lm import (
    DynamicMasker,
    is_classifier,
    load_masked_lm,
)

BASELINES_DIR = "baselines"


def load_mlm_teacher(name: str):
    """(model, tokenizer): a masked LM with its trained head; a classifier or a bare encoder is refused."""
    config = read_config(name)  # None: load_masked_lm explains a model that cannot be read
    if config is not None and is_classifier(config):
        raise ObjectiveMismatch(f"{name} is a sequence classifier ({config.architectures[0]}), but --objective mlm "
                                "distils a masked LM: distil it with --objective classification, or give a masked-LM "
                                "teacher (adapt an encoder with `finetune --objective mlm`).")
    model, tokenizer, head_missing = load_masked_lm(name)
    if head_missing:
        raise ObjectiveMismatch(f"{name} has no masked-LM head (it is a bare encoder), so its guesses over the "
                                "vocabulary would be noise; adapt it first: python -m demo.distill finetune "
                                f"--objective mlm --model {name} --train-file TEXT ...")
    return model, tokenizer


class MlmDistill(DistillStep):
    """`distill --objective mlm`: a fill-mask student, measured against its teacher and the baselines."""


    def prepare(self, accelerator) -> None:
        dargs, data_args = self.dargs, self.data_args
        self.teacher, self.tokenizer = load_mlm_teacher(dargs.student.teacher)
        self.teacher.to(accelerator.device).eval()
        self.corpus = read_corpus(data_args, self.targs.seed)
        self.eval_texts = {name: read_texts(path, data_args.text_column, quoting=data_args.quoting).texts
                           for name, path in dargs.tests.eval_files.items()}
        self.layers = parse_layers(dargs.student.student_layers, self.teacher.config.num_hidden_layers)
        self.weights = dargs.loss.weights("mlm")
        self.masker = DynamicMasker(self.tokenizer)

    def fingerprint_inputs(self) -> dict:
        return {"teacher_weights": weights_digest(self.teacher)}

    def train(self, accelerator, run) -> FitResult:
        dargs, corpus, targs = self.dargs, self.corpus, self.targs
        accelerator.print(
            f"general distillation of {dargs.student.teacher} ({self.teacher.config.num_hidden_layers} layers) into a "
            f"{len(self.layers)}-layer {dargs.student.student_arch} masked LM (layers {self.layers}) on "
            f"{len(corpus.train):,} texts, {targs.budget_note(len(corpus.train))}; loss weights "
            f"{asdict(self.weights)}; {accelerator.num_processes} process(es) on {accelerator.device}", flush=True)
        set_seed(targs.seed)
        self.student = make_student(self.teacher, self.layers, dargs.student.student_arch)
        loss_fn = triple_loss_fn(self.teacher, self.masker, self.weights, accelerator.device, accelerator,
                                 self.layers, dargs.loss.cos_layers)
        trainee = masked_lm_trainee(self.student, self.tokenizer, corpus, loss_fn, self.data_args.max_seq_length,
                                    "distill (mlm)", targs.total_steps(len(corpus.train)))
        return fit(trainee, accelerator, targs, run=run, status=self.status)

    def train_baselines(self, accelerator, result: FitResult) -> None:
        """What the teacher adds: the same student shape untrained (layer dropping alone) and trained with
        the masked-LM loss alone on the same text and budget."""
        if not self.dargs.tests.baselines:
            return
        arch, targs = self.dargs.student.student_arch, self.targs
        set_seed(targs.seed)
        dropped = make_student(self.teacher, self.layers, arch)
        set_seed(targs.seed)
        alone = make_student(self.teacher, self.layers, arch)
        fit(masked_lm_trainee(alone, self.tokenizer, self.corpus, mlm_loss_fn(self.masker, accelerator.device),
                              self.data_args.max_seq_length, "MLM alone (no teacher)",
                              self.dargs.tests.baseline_steps or result.total_steps), accelerator, targs,
            status=self.status)
        self.baselines = [("layer-drop", "layer dropping alone (no training)", dropped),
                          ("mlm-alone", "MLM loss alone (no teacher), same text and budget", alone)]

    def save(self, out: Path) -> None:
        self.student.save_pretrained(out, safe_serialization=True)
        save_tokenizer(self.tokenizer, out, self.dargs.student.student_arch)
        write_held_out(out, self.corpus.validation)

    def measure(self, accelerator, out: Path, result: FitResult) -> dict:
        device = accelerator.device
        measure = measurer(self.teacher, self.tokenizer, self.data_args, self.targs, device)
        saved = load_model(ModelSpec(str(out)), "fill_mask", device)  # as the app loads it
        self.report = report = measure(self.corpus.validation, saved.model)
        metrics = {"masked_lm": report.figures(), "teacher_params": count_parameters(self.teacher),
                   "student_params": count_parameters(saved.model), "layers": self.layers,
                   "student_arch": self.dargs.student.student_arch, "loss_weights": asdict(self.weights),
                   "eval_sets": {name: measure(texts, saved.model).figures()
                                 for name, texts in self.eval_texts.items()},
                   **corpus_record(self.corpus)}
        if self.dargs.tests.baselines:
            metrics["baselines"] = [self.measure_baseline(out, slug, name, model.to(device), measure)
                                    for slug, name, model in self.baselines]
        return metrics

    def measure_baseline(self, out: Path, slug: str, name: str, model, measure) -> dict:
        """A baseline saved under baselines/ (for the downstream check), measured on the held-out text and
        compared with the student token by token."""
        path = out / BASELINES_DIR / slug
        model.save_pretrained(path, safe_serialization=True)
        save_tokenizer(self.tokenizer, path, self.dargs.student.student_arch)
        report = measure(self.corpus.validation, model)
        print(f"baseline {name}: held-out top-1 {report.student.top1_accuracy:.4f} (retention "
              f"{report.retention_top1:.4f})", flush=True)
        entry = {"name": name, "path": f"{BASELINES_DIR}/{slug}", "masked_lm": report.figures()}
        return against_baseline(entry, self.report, report)

    def write_card(self, out: Path, metrics: dict) -> None:
        write_mlm_card(out, metrics, self.dargs, self.corpus, self.layers, self.teacher.config.num_hidden_layers,
                       corpus_description(self.corpus))

    def summary(self, out: Path, metrics: dict) -> str:
        r, ci = self.report, {k: Estimate(**v) for k, v in metrics["masked_lm"]["intervals"].items()}
        return (f"student saved to {out}: held-out top-1 {ci['student_top1_accuracy'].text()} (teacher "
                f"{ci['teacher_top1_accuracy'].text()}), retention {ci['retention_top1'].text(3)}, top-1 agreement "
                f"{r.agreement_top1:.4f}, speedup {r.speedup:.2f}x, params {metrics['student_params']:,} / "
                f"{metrics['teacher_params']:,}")



def against_baseline(entry: dict, student: MaskedLMReport, baseline: MaskedLMReport) -> dict:
    """A baseline's metrics entry with the student's paired comparison against it (same held-out
    tokens), so a lead of a few tokens is not read as a win."""
    paired = paired_top1(student, baseline)
    print(f"this student against {entry['name']}: {paired.sentence('it', 'the baseline')}", flush=True)
    return {**entry, "paired_top1": paired.figures("student", "baseline")}
