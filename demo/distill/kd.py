"""`distill` (classification): a student from teacher layers, trained to copy the teacher on labelled
rows, transfer text and augmented text, then measured against its teacher and against the baselines.

Everything the user gave is checked (trainset.read_inputs: teacher, data, transfer files, test sets,
masked LM, named cache) before the output directory is created, so bad input writes nothing.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from demo.core.measure import count_parameters
from demo.data.files import LabelledData
from demo.distill.batches import StreamedExamples, encode_examples
from demo.distill.card import write_card
from demo.distill.loop import FitResult, Trainee, fit, set_seed
from demo.distill.losses import LossWeights
from demo.distill.objectives import StudentWithProjections, classification_loss_fn
from demo.distill.steps import DistillStep
from demo.distill.student import make_student, parse_layers, save_tokenizer
from demo.distill.trainset import (
    LABELLED,
    DistillSet,
    build_distill_set,
    read_inputs,
    use_eager_attention,
)
from demo.measuring import stats
from demo.measuring.bought import bought_sentence
from demo.measuring.evaluation import evaluate_pair
from demo.measuring.overlap import overlap, trained_on
from demo.models.config import ModelSpec
from demo.models.loading import LoadedModel, load_model


class ClassifierDistill(DistillStep):
    """`distill`: KD on labelled rows (plus transfer and augmented text), then every figure."""


    def prepare(self, accelerator) -> None:
        self.inputs = read_inputs(self.dargs, self.data_args, self.targs, accelerator.device)
        self.teacher = self.inputs.teacher
        self.layers = parse_layers(self.dargs.student.student_layers, self.teacher.model.config.num_hidden_layers)
        self.weights = self.dargs.loss.weights("classification")
        accelerator.print(self.inputs.plan.reason + (f"; words swapped by {self.inputs.mlm.name}"
                                                     if self.inputs.mlm is not None else ""), flush=True)

    def fingerprint_inputs(self) -> dict:
        return {"teacher_weights": self.inputs.teacher_digest}

    def train(self, accelerator, run) -> FitResult:
        dargs, teacher = self.dargs, self.teacher
        self.dset, self.target_infos = build_distill_set(self.inputs, dargs, self.data_args, self.targs,
                                                         self.weights, run.out, accelerator)
        counts = self.dset.counts()
        if self.inputs.augment.variants and not counts["augmented"] + counts["transfer_augmented"]:
            accelerator.print("augmentation made no text that differs from its source; training without it", flush=True)
        accelerator.print(
            f"distilling {dargs.student.teacher} ({teacher.model.config.num_hidden_layers} layers) into a "
            f"{len(self.layers)}-layer {dargs.student.student_arch} student (layers {self.layers}) on "
            f"{len(self.dset):,} rows ({', '.join(f'{v:,} {k}' for k, v in counts.items() if v)}), "
            f"{self.targs.budget_note(len(self.dset))}; loss weights {asdict(self.weights)}; "
            f"{accelerator.num_processes} process(es) on {accelerator.device}, mixed precision "
            f"{accelerator.mixed_precision}", flush=True)
        set_seed(self.targs.seed)
        self.student = make_student(teacher.model, self.layers, dargs.student.student_arch)
        if dargs.student.freeze_embeddings:  # part of the recipe: the baselines train theirs, as the CLI would alone
            self.student.get_input_embeddings().weight.requires_grad_(False)
        return self.train_student(self.student, self.dset, self.weights, "distill", accelerator, run=run)

    def train_student(self, student, dset: DistillSet, weights: LossWeights, desc: str, accelerator,
                      total_steps: int | None = None, run=None) -> FitResult:
        teacher, length = self.teacher, self.data_args.max_seq_length
        if weights.alpha_attn > 0:
            use_eager_attention(student)
        s_width = getattr(student.config, "dim", None) or student.config.hidden_size
        wrapper = StudentWithProjections(student, s_width, teacher.model.config.hidden_size, len(self.layers) + 1)
        train = encode_examples(teacher.tokenizer, dset.texts, dset.labels, length)
        if dset.n_streamed:
            train = StreamedExamples(train, dset.stream, dset.n_streamed, length)
        data = self.inputs.data
        validation = encode_examples(teacher.tokenizer, data.validation.texts, data.validation_ids, length)
        loss_fn = classification_loss_fn(teacher, dset, weights, self.layers, self.dargs.loss.cos_layers, accelerator)
        trainee = Trainee(wrapper, train, validation, loss_fn, desc=desc, predictor=lambda m: m.student,
                          total_steps=total_steps or self.targs.total_steps(len(train)))
        return fit(trainee, accelerator, self.targs, run=run, status=self.status)

    def train_baselines(self, accelerator, result: FitResult) -> None:
        """What distillation adds: the same student shape and budget (optimiser steps) with less of the
        recipe: untrained, hard labels alone, and (when the run had more text) KD on the labelled rows
        alone. Trained on every process; measured on the main one."""
        if not self.dargs.tests.baselines:
            return
        arch, seed = self.dargs.student.student_arch, self.targs.seed
        steps = self.dargs.tests.baseline_steps or result.total_steps
        none = dict.fromkeys(self.dset.counts(), 0)
        set_seed(seed)
        self.baselines = [("layer dropping alone (no training)", make_student(self.teacher.model, self.layers, arch),
                           none, 0)]
        labelled = self.dset.only(LABELLED)
        recipes = [("hard labels alone (no teacher)", LossWeights(alpha_ce=0.0, alpha_hard=1.0), "hard labels only")]
        if len(labelled) < len(self.dset) and self.dargs.tests.baselines == "all":
            recipes.append(("same KD recipe, labelled rows only (no transfer/augmented text)", self.weights,
                            "KD, labelled rows only"))
        for name, weights, desc in recipes:
            set_seed(seed)
            model = make_student(self.teacher.model, self.layers, arch)
            self.train_student(model, labelled, weights, desc, accelerator, total_steps=steps)
            self.baselines.append((name, model, labelled.counts(), steps))

    def save(self, out: Path) -> None:
        self.student.save_pretrained(out, safe_serialization=True)
        save_tokenizer(self.teacher.tokenizer, out, self.dargs.student.student_arch)

    def measure(self, accelerator, out: Path, result: FitResult) -> dict:
        """Final figures through the dashboard's own loader, batching and timing code."""
        teacher, data, inputs = self.teacher, self.inputs.data, self.inputs
        student = load_model(ModelSpec(str(out)), "classify", accelerator.device)
        self.report = report = self.evaluate(student, data.validation.texts,
                                             [data.label_names[i] for i in data.validation_ids])
        print(f"validation: teacher {report.teacher_accuracy:.4f}, student {report.student_accuracy:.4f}", flush=True)
        metrics = {**report.figures(), "teacher_params": count_parameters(teacher.model),
                   "student_params": count_parameters(student.model), "layers": self.layers,
                   "student_arch": self.dargs.student.student_arch, "loss_weights": asdict(self.weights),
                   "cos_layers": self.dargs.loss.cos_layers, "n_train": len(data.train), "data": self.dset.counts(),
                   "transfer_files": inputs.transfer_sources,
                   "augmentation": {**asdict(inputs.augment), "reason": inputs.plan.reason},
                   "soft_targets": [asdict(i) for i in self.target_infos],
                   "eval_sets": self.eval_set_figures(student),
                   # contamination: validation rows the student or its teacher trained on (hashes, never the rows)
                   "overlap": overlap(data.validation.texts,
                                      {"student": list(data.train.texts),
                                       "teacher": trained_on(self.dargs.student.teacher)}).to_dict()}
        if self.dargs.tests.baselines:
            metrics["baselines"] = [self.baseline_figures(name, model, seen, steps)
                                    for name, model, seen, steps in self.baselines]
            # the one sentence the card and the app lead with (it names a baseline's own budget)
            metrics["bought"] = bought_sentence({**metrics, "total_steps": result.total_steps})
        return metrics

    def evaluate(self, student: LoadedModel, texts: list[str], gold: list[str]):
        return evaluate_pair(self.teacher, student, texts, gold, batch_size=self.targs.eval_batch_size,
                             max_length=self.data_args.max_seq_length)

    def eval_set_figures(self, student: LoadedModel) -> dict[str, dict]:
        out = {}
        for name, ds in self.inputs.eval_sets.items():
            out[name] = eval_set_entry(ds, self.evaluate(student, ds.texts, ds.labels))
            print(f"  {name}: teacher {out[name]['teacher_accuracy']:.4f}, student "
                  f"{out[name]['student_accuracy']:.4f}, retention {out[name]['retention']:.4f}", flush=True)
        return out

    def baseline_figures(self, name: str, model, seen: dict[str, int], steps: int) -> dict:
        teacher, data = self.teacher, self.inputs.data
        loaded = LoadedModel(spec=ModelSpec(name), task="classify", model=model.to(teacher.device).eval(),
                             tokenizer=teacher.tokenizer, device=teacher.device)
        report = self.evaluate(loaded, data.validation.texts, [data.label_names[i] for i in data.validation_ids])
        print(f"baseline {name}: accuracy {report.student_accuracy:.4f} (retention {report.retention:.4f})", flush=True)
        teacher_acc = self.report.teacher_accuracy
        paired = stats.paired_comparison(student_hits(self.report), student_hits(report), "the distilled student",
                                         name.split(" (")[0])
        print(f"  the distilled student against {name}: {paired.sentence()}", flush=True)
        return {"name": name, "accuracy": report.student_accuracy, "macro_f1": report.student_macro_f1,
                "retention": report.student_accuracy / teacher_acc if teacher_acc else float("nan"),
                "agreement": report.agreement, "data": seen, "steps": steps,
                "intervals": {"accuracy": report.intervals["student_accuracy"],
                              "macro_f1": report.intervals["student_macro_f1"],
                              "retention": report.intervals["retention"]},  # against the same teacher, same rows
                "paired": paired.to_dict(),
                "eval_sets": {k: {"accuracy": v["student_accuracy"], "macro_f1": v["student_macro_f1"],
                                  "retention": v["retention"]} for k, v in self.eval_set_figures(loaded).items()}}

    def write_card(self, out: Path, metrics: dict) -> None:
        write_card(out, metrics, self.dargs, self.data_args, self.inputs.data, self.layers, self.teacher)

    def summary(self, out: Path, metrics: dict) -> str:
        r = self.report
        return (f"student saved to {out}: accuracy {r.student_accuracy:.4f} (teacher {r.teacher_accuracy:.4f}), "
                f"retention {r.retention:.4f}, agreement {r.agreement:.4f}, speedup {r.speedup:.2f}x, params "
                f"{metrics['student_params']:,} / {metrics['teacher_params']:,}")



def student_hits(report) -> list[bool]:
    return [r["student_prediction"] == r["gold"] for r in report.rows]


def eval_set_entry(ds: LabelledData, report) -> dict:
    return {"file": ds.source, **{k: v for k, v in report.figures().items()
                                  if k not in ("teacher_confusion", "student_confusion")}}
