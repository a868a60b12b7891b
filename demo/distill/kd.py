"""`distill`: a student from teacher layers, trained to copy the teacher on labelled rows, transfer
text and augmented text, then measured against its teacher and against the baselines.

Order of work: everything the user gave is checked (trainset.read_inputs: teacher, data, transfer
files, test sets, masked LM, named cache) before the output directory is created, so bad input
writes nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict

import torch

from demo.core.measure import count_parameters
from demo.data.files import LabelledData
from demo.distill.args import DataArguments, DistillArguments, TrainArguments
from demo.distill.batches import StreamedExamples, encode_examples
from demo.distill.card import write_card
from demo.distill.checkpoints import RunFiles
from demo.distill.data import TaskData
from demo.distill.hub import publish
from demo.distill.loop import FitResult, fit, forward, set_seed
from demo.distill.losses import LossWeights, distillation_loss
from demo.distill.outputs import (
    command_line,
    copy_training_code,
    run_fingerprint,
    write_json,
)
from demo.distill.steps import (
    open_output_dir,
    run_files,
    save_tokenizer,
    start,
    start_trackers,
)
from demo.distill.student import layer_pairs, make_student, parse_layers
from demo.distill.trainset import (
    LABELLED,
    DistillSet,
    Inputs,
    build_distill_set,
    read_inputs,
    use_eager_attention,
)
from demo.measuring.evaluation import evaluate_pair
from demo.models.config import ModelSpec
from demo.models.inputs import accepted_inputs, model_inputs
from demo.models.loading import LoadedModel, load_model


class StudentWithProjections(torch.nn.Module):
    """The student plus one linear map per aligned layer from its width to the teacher's (the
    hidden-state MSE needs equal widths). Only .student is saved: the maps serve training alone."""

    def __init__(self, student: torch.nn.Module, student_width: int, teacher_width: int, n_pairs: int):
        super().__init__()
        self.student = student
        self.projections = torch.nn.ModuleList(
            [torch.nn.Linear(student_width, teacher_width) for _ in range(n_pairs)]) \
            if student_width != teacher_width else None
        self._demo_accepted_inputs = accepted_inputs(student)  # the wrapper takes what the student takes

    def forward(self, **inputs):
        """The student's forward: training calls go through the wrapper (and DDP's, under accelerate)."""
        return self.student(**inputs)

    def project(self, index: int, hidden: torch.Tensor) -> torch.Tensor:
        return hidden if self.projections is None else self.projections[index](hidden)


def make_loss_fn(teacher: LoadedModel, dset: DistillSet, weights: LossWeights, layers: list[int], cos_layers: str,
                 accelerator=None):
    """The per-batch loss: student forward, teacher logits from the cache (or a teacher forward when
    hidden states or attentions are matched), then the weighted terms of losses.py."""
    device = teacher.device
    need_hidden = weights.alpha_cos > 0 or weights.alpha_hidden > 0
    need_attn = weights.alpha_attn > 0
    cos_pairs_idx = layer_pairs(layers, cos_layers)
    all_pairs = layer_pairs(layers, "all")

    def loss_fn(model: torch.nn.Module, batch: dict):
        wrapper: StudentWithProjections = getattr(model, "module", model)  # inside DDP's, under accelerate
        extra = {"output_hidden_states": True} if need_hidden else {}
        if need_attn:
            extra["output_attentions"] = True
        s_out = forward(model, batch, device, **extra)
        labels = batch["labels"].to(device)
        mask = batch["attention_mask"].to(device)
        # Streamed rows (index -1) have no cached soft targets: the teacher runs on their batch.
        streamed = bool(dset.n_streamed) and bool((batch["index"] < 0).any())
        if weights.needs_teacher_internals or streamed:
            with torch.no_grad(), (accelerator.autocast() if accelerator is not None else contextlib.nullcontext()):
                # The teacher gets exactly what plain inference gives it (token_type_ids included).
                t_out = teacher.model(**model_inputs(teacher.model, batch, device), **extra)
            t_logits = t_out.logits.float()
        elif dset.logits is not None:
            t_out, t_logits = None, dset.logits[batch["index"]].to(device)
        else:
            t_out, t_logits = None, s_out.logits.detach()
        hidden_pairs, attention_pairs = [], []
        if need_hidden:
            pairs = all_pairs if weights.alpha_hidden > 0 else cos_pairs_idx
            hidden_pairs = [(s_out.hidden_states[s].float(), t_out.hidden_states[t].float()) for s, t in pairs]
        if need_attn:
            attention_pairs = [(s_out.attentions[j], t_out.attentions[t]) for j, t in enumerate(layers)]
        cos_pairs = None
        if need_hidden and weights.alpha_cos > 0 and weights.alpha_hidden > 0:
            cos_pairs = [hidden_pairs[all_pairs.index(p)] for p in cos_pairs_idx]
        return distillation_loss(s_out.logits.float(), t_logits, labels, weights, hidden_pairs, mask,
                                 attention_pairs, wrapper.project, cos_pairs=cos_pairs)

    return loss_fn


def train_student(student, teacher: LoadedModel, dset: DistillSet, data: TaskData, weights: LossWeights,
                  dargs: DistillArguments, data_args: DataArguments, targs: TrainArguments, layers: list[int],
                  desc: str, accelerator, total_steps: int | None = None, run: RunFiles | None = None) -> FitResult:
    tok = teacher.tokenizer
    if weights.alpha_attn > 0:
        use_eager_attention(student)
    s_width = getattr(student.config, "dim", None) or student.config.hidden_size
    wrapper = StudentWithProjections(student, s_width, teacher.model.config.hidden_size, len(layers) + 1)
    train = encode_examples(tok, dset.texts, dset.labels, data_args.max_seq_length)
    if dset.n_streamed:
        train = StreamedExamples(train, dset.stream, dset.n_streamed, data_args.max_seq_length)
    validation = encode_examples(tok, data.validation.texts, data.validation_ids, data_args.max_seq_length)
    if total_steps is None:
        total_steps = targs.total_steps(len(train))
    return fit(wrapper, train, make_loss_fn(teacher, dset, weights, layers, dargs.cos_layers, accelerator),
               accelerator, validation=validation, predictor=lambda m: m.student, epochs=targs.epochs,
               batch_size=targs.batch_size, eval_batch_size=targs.eval_batch_size,
               learning_rate=targs.learning_rate, weight_decay=targs.weight_decay, warmup_ratio=targs.warmup_ratio,
               max_grad_norm=targs.max_grad_norm, seed=targs.seed, desc=desc, total_steps=total_steps, run=run)


# ---- measuring students --------------------------------------------------------------------------
def as_loaded(model, teacher: LoadedModel, name: str) -> LoadedModel:
    """An in-memory student wrapped like a loaded model, so the dashboard's evaluation code runs it."""
    return LoadedModel(spec=ModelSpec(name), task="classify", model=model.to(teacher.device).eval(),
                       tokenizer=teacher.tokenizer, device=teacher.device)


def eval_set_figures(teacher: LoadedModel, student: LoadedModel, eval_sets: dict[str, LabelledData],
                     data_args: DataArguments, targs: TrainArguments) -> dict[str, dict]:
    out = {}
    for name, ds in eval_sets.items():
        report = evaluate_pair(teacher, student, ds.texts, ds.labels, batch_size=targs.eval_batch_size,
                               max_length=data_args.max_seq_length)
        out[name] = {"file": ds.source, **{k: v for k, v in report.figures().items()
                                            if k not in ("teacher_confusion", "student_confusion")}}
        print(f"  {name}: teacher {report.teacher_accuracy:.4f}, student {report.student_accuracy:.4f}, "
              f"retention {report.retention:.4f}", flush=True)
    return out


def baseline_figures(name: str, model, teacher: LoadedModel, inputs: Inputs, data_args, targs, teacher_acc: float,
                     seen: dict[str, int]) -> dict:
    loaded = as_loaded(model, teacher, name)
    data = inputs.data
    gold = [data.label_names[i] for i in data.validation_ids]
    report = evaluate_pair(teacher, loaded, data.validation.texts, gold, batch_size=targs.eval_batch_size,
                           max_length=data_args.max_seq_length)
    print(f"baseline {name}: accuracy {report.student_accuracy:.4f} (retention {report.retention:.4f})", flush=True)
    return {"name": name, "accuracy": report.student_accuracy, "macro_f1": report.student_macro_f1,
            "retention": report.student_accuracy / teacher_acc if teacher_acc else float("nan"),
            "agreement": report.agreement, "data": seen,
            "eval_sets": {k: {"accuracy": v["student_accuracy"], "macro_f1": v["student_macro_f1"],
                              "retention": v["retention"]}
                          for k, v in eval_set_figures(teacher, loaded, inputs.eval_sets, data_args, targs).items()}}


def run_baselines(inputs: Inputs, dset: DistillSet, weights: LossWeights, dargs: DistillArguments,
                  data_args: DataArguments, targs: TrainArguments, layers: list[int], teacher_acc: float,
                  total_steps: int, accelerator) -> list[dict]:
    """What distillation adds: the same student shape and training budget (optimiser steps), with
    less of the recipe: untrained, hard labels alone, and (when the run had more text) KD on the
    labelled rows alone. Trained on every process; measured on the main one."""
    teacher = inputs.teacher
    main = accelerator.is_main_process
    none = {k: 0 for k in dset.counts()}
    set_seed(targs.seed)
    dropped = make_student(teacher.model, layers, dargs.student_arch)
    out = [baseline_figures("layer dropping alone (no training)", dropped, teacher, inputs, data_args, targs,
                            teacher_acc, none)] if main else []
    labelled = dset.only(LABELLED)
    set_seed(targs.seed)
    hard = make_student(teacher.model, layers, dargs.student_arch)
    train_student(hard, teacher, labelled, inputs.data, LossWeights(alpha_ce=0.0, alpha_hard=1.0), dargs, data_args,
                  targs, layers, desc="hard labels only", accelerator=accelerator, total_steps=total_steps)
    if main:
        out.append(baseline_figures("hard labels alone (no teacher)", hard, teacher, inputs, data_args, targs,
                                    teacher_acc, labelled.counts()))
    if len(labelled) < len(dset):
        set_seed(targs.seed)
        kd_only = make_student(teacher.model, layers, dargs.student_arch)
        train_student(kd_only, teacher, labelled, inputs.data, weights, dargs, data_args, targs, layers,
                      desc="KD, labelled rows only", accelerator=accelerator, total_steps=total_steps)
        if main:
            out.append(baseline_figures("same KD recipe, labelled rows only (no transfer/augmented text)", kd_only,
                                        teacher, inputs, data_args, targs, teacher_acc, labelled.counts()))
    return out


# ---- the step ------------------------------------------------------------------------------------
def run_distill(dargs: DistillArguments, data_args: DataArguments, targs: TrainArguments, argv: list[str]) -> dict:
    accelerator = start(targs)
    device = accelerator.device
    main = accelerator.is_main_process
    set_seed(targs.seed)
    inputs = read_inputs(dargs, data_args, targs, device)
    teacher, data = inputs.teacher, inputs.data
    n_teacher_layers = teacher.model.config.num_hidden_layers
    layers = parse_layers(dargs.student_layers, n_teacher_layers)
    weights = LossWeights(dargs.temperature, dargs.alpha_ce, dargs.alpha_hard, dargs.alpha_cos, dargs.alpha_hidden,
                          dargs.alpha_attn)
    out = open_output_dir(accelerator, targs)
    dset, target_infos = build_distill_set(inputs, dargs, data_args, targs, weights, out, accelerator)
    fingerprint = run_fingerprint(dargs, data_args, targs, step="distill", teacher_weights=inputs.teacher_digest)
    start_trackers(accelerator, "distill", fingerprint)
    counts = dset.counts()
    accelerator.print(
        f"distilling {dargs.teacher} ({n_teacher_layers} layers) into a {len(layers)}-layer {dargs.student_arch} "
        f"student (layers {layers}) on {len(dset):,} rows ({', '.join(f'{v:,} {k}' for k, v in counts.items() if v)})"
        f"; loss weights {asdict(weights)}; {accelerator.num_processes} process(es) on {device}, mixed precision "
        f"{accelerator.mixed_precision}", flush=True)
    set_seed(targs.seed)
    student = make_student(teacher.model, layers, dargs.student_arch)
    result = train_student(student, teacher, dset, data, weights, dargs, data_args, targs, layers, desc="distill",
                           accelerator=accelerator, run=run_files(targs, out, fingerprint))
    report = None
    if main:
        student.save_pretrained(out, safe_serialization=True)
        save_tokenizer(teacher.tokenizer, out, dargs.student_arch)
        # Final figures through the dashboard's own loader, batching and timing code.
        student_loaded = load_model(ModelSpec(str(out)), "classify", device)
        gold = [data.label_names[i] for i in data.validation_ids]
        report = evaluate_pair(teacher, student_loaded, data.validation.texts, gold, batch_size=targs.eval_batch_size,
                               max_length=data_args.max_seq_length)
        print(f"validation: teacher {report.teacher_accuracy:.4f}, student {report.student_accuracy:.4f}", flush=True)
    baselines = run_baselines(inputs, dset, weights, dargs, data_args, targs, layers,
                              report.teacher_accuracy if report else 0.0, result.total_steps, accelerator) \
        if dargs.baselines else None
    accelerator.end_training()
    if not main:
        return {}
    metrics = {**report.figures(), "teacher_params": count_parameters(teacher.model),
               "student_params": count_parameters(student_loaded.model), "train_seconds": result.train_seconds,
               "total_steps": result.total_steps, "best_epoch": result.best_epoch, "history": result.history,
               "resumed_from": result.resumed_from, "num_processes": accelerator.num_processes,
               "mixed_precision": accelerator.mixed_precision,
               "gradient_accumulation_steps": targs.gradient_accumulation_steps,
               "layers": layers, "student_arch": dargs.student_arch, "loss_weights": asdict(weights),
               "cos_layers": dargs.cos_layers, "n_train": len(data.train), "data": counts,
               "transfer_files": inputs.transfer_sources, "augmentation": asdict(inputs.augment),
               "soft_targets": [asdict(i) for i in target_infos],
               "eval_sets": eval_set_figures(teacher, student_loaded, inputs.eval_sets, data_args, targs),
               "eval_batch_size": targs.eval_batch_size, "command": command_line("distill", argv),
               "args": {**asdict(dargs), **asdict(data_args), **asdict(targs)}}
    if baselines is not None:
        metrics["baselines"] = baselines
    write_json(out / "metrics.json", metrics)
    copy_training_code(out)
    write_card(out, metrics, dargs, data_args, data, layers, n_teacher_layers, result)
    print(f"student saved to {out}: accuracy {report.student_accuracy:.4f} (teacher {report.teacher_accuracy:.4f}), "
          f"retention {report.retention:.4f}, agreement {report.agreement:.4f}, speedup {report.speedup:.2f}x, "
          f"params {metrics['student_params']:,} / {metrics['teacher_params']:,}", flush=True)
    if dargs.push_to_hub:
        publish(out, dargs.push_to_hub, private=dargs.hub_private, dry_run=dargs.dry_run)
    return metrics
