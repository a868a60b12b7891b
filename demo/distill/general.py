"""General-purpose distillation (Sanh et al., 2019, section 3), `--objective mlm`.

`finetune --objective mlm` adapts an encoder to a text domain with the masked-LM loss (a head tied
to the input embeddings is added where the checkpoint has none). `distill --objective mlm` trains
a student made of every other teacher layer on raw text with DistilBERT's triple loss: soft
targets over the vocabulary at the masked positions (temperature T), the masked-LM loss on the
true tokens, and a cosine loss aligning the last hidden states. Masks are drawn anew for every
batch (dynamic masking); the held-out text is measured with fixed, seeded masks (mlm_eval).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

from demo.core.errors import UserError
from demo.core.measure import count_parameters
from demo.core.progress import ProgressLine
from demo.data.files import read_texts
from demo.distill.args import (
    DataArguments,
    DistillArguments,
    FinetuneArguments,
    TrainArguments,
)
from demo.distill.batches import encode_examples
from demo.distill.data import TextCorpus, load_text_corpus
from demo.distill.loop import FitResult, fit, set_seed
from demo.distill.losses import NO_LABEL, MlmWeights, mlm_distillation_loss
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
from demo.distill.targets import weights_digest
from demo.measuring.mlm_eval import (
    EVAL_SEED,
    MaskedLMReport,
    evaluate_masked_lm,
    paired_top1,
)
from demo.models.config import ModelSpec
from demo.models.loading import explain_load_error, load_model
from demo.models.masked_lm import (
    IGNORE,
    DynamicMasker,
    MaskedLMAtPositions,
    fixed_masks,
    mask_token_id,
    masked_logits,
)

HELD_OUT_FILE = "heldout_texts.txt"  # the texts measured, one per line: `python -m demo.evaluate --task fill_mask`


class ObjectiveMismatch(UserError):
    """A teacher that does not fit the objective (a classifier for --objective mlm, or the reverse)."""


def is_classifier(config) -> bool:
    return any("ForSequenceClassification" in a for a in (getattr(config, "architectures", None) or []))


def is_masked_lm(config) -> bool:
    return any("ForMaskedLM" in a for a in (getattr(config, "architectures", None) or []))


def load_masked_lm(name: str, *, teacher: bool):
    """(model, tokenizer, head_added). A teacher must already be a masked LM with its head; an
    encoder being adapted gets a new head (transform newly initialised, projection tied to the
    input embeddings) where its checkpoint has none."""
    spec = ModelSpec(name)
    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001
        raise explain_load_error(spec, exc) from None
    if teacher and is_classifier(config):
        raise ObjectiveMismatch(f"{name} is a sequence classifier ({config.architectures[0]}), but --objective mlm "
                                "distils a masked LM: distil it with --objective classification, or give a masked-LM "
                                "teacher (adapt an encoder with `finetune --objective mlm`).")
    mask_token_id(tokenizer, name)
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(name, trust_remote_code=False, output_loading_info=True)
    except Exception as exc:  # noqa: BLE001
        raise explain_load_error(spec, exc) from None
    head_added = any(k.startswith(("cls.", "vocab_")) for k in info["missing_keys"])
    if teacher and head_added:
        raise ObjectiveMismatch(f"{name} has no masked-LM head (it is a bare encoder), so its guesses over the "
                                "vocabulary would be noise; adapt it first: python -m demo.distill finetune "
                                f"--objective mlm --model {name} --train-file TEXT ...")
    return model, tokenizer, head_added


def read_corpus(data_args: DataArguments, seed: int) -> TextCorpus:
    return load_text_corpus(data_args.train_file, data_args.validation_file, data_args.text_column,
                            data_args.validation_split_percentage, data_args.max_train_samples,
                            data_args.max_eval_samples, seed, data_args.quoting)


def corpus_description(corpus: TextCorpus) -> str:
    files = ", ".join(f"`{Path(s['file']).name}` ({s['texts']:,})" for s in corpus.sources)
    return (f"Trained on {len(corpus.train):,} texts from {files}; measured on {len(corpus.validation):,} texts "
            f"({corpus.validation_source}).")


def write_held_out(out: Path, texts: list[str]) -> None:
    (out / HELD_OUT_FILE).write_text("".join(" ".join(t.split()) + "\n" for t in texts), encoding="utf-8")


# ---- the loss and the score the loop uses ------------------------------------------------------------
def mlm_loss_fn(masker: DynamicMasker, device):
    """The masked-LM loss alone (adaptation, and the no-teacher baseline)."""

    def loss_fn(model, batch):
        ids, labels = masker(batch["input_ids"], batch["attention_mask"])
        labels = labels.to(device)
        logits, _ = model(input_ids=ids.to(device), attention_mask=batch["attention_mask"].to(device), labels=labels)
        gold = labels[labels != IGNORE]
        if gold.numel() == 0:  # a batch of one-token texts: nothing masked, nothing to learn
            return logits.sum() * 0.0, {}
        return F.cross_entropy(logits.float(), gold), {}

    return loss_fn


def triple_loss_fn(teacher, masker: DynamicMasker, weights: MlmWeights, device, accelerator=None,
                   layers: list[int] | None = None, cos_layers: str = "last"):
    """Per batch: one set of masks for both models; the teacher runs without gradients.

    The cosine term aligns the last hidden states (DistilBERT's), or with cos_layers="all" every
    student layer with the teacher layer it was copied from (and the embeddings); the hidden-state
    MSE, where switched on, takes those same pairs. layers: the teacher layers the student kept."""
    every = layer_pairs(layers, "all") if layers else []
    need_all = weights.alpha_hidden > 0 or (weights.alpha_cos > 0 and cos_layers == "all")
    if need_all and not layers:
        raise ValueError("aligning every layer needs the teacher layers the student kept")

    def loss_fn(model, batch):
        ids, labels = masker(batch["input_ids"], batch["attention_mask"])
        ids, labels, attention = ids.to(device), labels.to(device), batch["attention_mask"].to(device)
        s_logits, s_out = model(input_ids=ids, attention_mask=attention, labels=labels, output_hidden_states=need_all)
        with torch.no_grad(), (accelerator.autocast() if accelerator is not None else contextlib.nullcontext()):
            t_logits, t_out = masked_logits(teacher, ids, attention, labels, output_hidden_states=need_all)
        last = [(s_out.last_hidden_state.float(), t_out.last_hidden_state.float())]
        mapped = [(s_out.hidden_states[s].float(), t_out.hidden_states[t].float()) for s, t in every] \
            if need_all else []
        return mlm_distillation_loss(s_logits.float(), t_logits.float(), labels[labels != IGNORE], weights,
                                     mapped if cos_layers == "all" else last, attention, mapped)

    return loss_fn


def masked_accuracy(tokenizer, seed: int):
    """The loop's score: top-1 masked-token accuracy on the validation rows, fixed masks, gathered
    over processes (per row, so the padding rows of an uneven last batch are dropped)."""

    @torch.inference_mode()
    def score(accelerator, model, loader) -> float:
        model.eval()
        totals = torch.zeros(2)
        for batch in loader:
            ids, attention = batch["input_ids"].cpu(), batch["attention_mask"].cpu()
            masked, labels = fixed_masks(ids, attention, batch["index"].cpu(), tokenizer, seed)
            device = accelerator.device
            logits, _ = masked_logits(model, masked.to(device), attention.to(device), labels.to(device))
            where = labels != IGNORE
            hits = (logits.argmax(-1).cpu() == labels[where]).float()
            per_row = torch.zeros(len(ids)).index_add_(0, where.nonzero()[:, 0], hits)
            rows = torch.stack([per_row, where.sum(1).float()], 1).to(device)
            totals += accelerator.gather_for_metrics(rows).sum(0).cpu()
        return (totals[0] / totals[1]).item() if totals[1] else 0.0

    return score


def fit_masked_lm(model, tokenizer, corpus: TextCorpus, loss_fn, accelerator, data_args: DataArguments,
                  targs: TrainArguments, desc: str, total_steps: int | None = None, run=None) -> FitResult:
    train = encode_examples(tokenizer, corpus.train, [NO_LABEL] * len(corpus.train), data_args.max_seq_length)
    validation = encode_examples(tokenizer, corpus.validation, [NO_LABEL] * len(corpus.validation),
                                 data_args.max_seq_length)
    return fit(MaskedLMAtPositions(model), train, loss_fn, accelerator, validation=validation,
               predictor=lambda m: m.model, score=masked_accuracy(tokenizer, EVAL_SEED), epochs=targs.epochs,
               batch_size=targs.batch_size, eval_batch_size=targs.eval_batch_size, learning_rate=targs.learning_rate,
               weight_decay=targs.weight_decay, warmup_ratio=targs.warmup_ratio, max_grad_norm=targs.max_grad_norm,
               seed=targs.seed, desc=desc, total_steps=total_steps or targs.total_steps(len(train)), run=run)


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


def run_info(result: FitResult, accelerator, targs: TrainArguments, corpus: TextCorpus, argv, step: str, *settings):
    return {"objective": "mlm", "train_seconds": result.train_seconds, "total_steps": result.total_steps,
            "best_epoch": result.best_epoch, "history": result.history, "resumed_from": result.resumed_from,
            "num_processes": accelerator.num_processes, "mixed_precision": accelerator.mixed_precision,
            "n_train": len(corpus.train), "n_validation": len(corpus.validation), "text_files": corpus.sources,
            "validation": corpus.validation_source, "heldout_file": HELD_OUT_FILE,
            "command": command_line(step, argv), "args": {k: v for s in settings for k, v in asdict(s).items()}}


# ---- finetune --objective mlm ------------------------------------------------------------------------
def run_mlm_finetune(margs: FinetuneArguments, data_args: DataArguments, targs: TrainArguments,
                     argv: list[str]) -> dict:
    accelerator = start(targs)
    device = accelerator.device
    set_seed(targs.seed)
    corpus = read_corpus(data_args, targs.seed)
    model, tokenizer, head_added = load_masked_lm(margs.model, teacher=False)
    if head_added:
        accelerator.print(f"{margs.model} has no masked-LM head: added one (its projection tied to the input "
                          "embeddings, its transform newly initialised); this adaptation trains it.", flush=True)
    out = open_output_dir(accelerator, targs)
    fingerprint = run_fingerprint(margs, data_args, targs, step="finetune")
    start_trackers(accelerator, "finetune", fingerprint)
    total_steps = targs.total_steps(len(corpus.train))
    accelerator.print(f"adapting {margs.model} to {len(corpus.train):,} texts with the masked-LM objective "
                      f"(dynamic masking, 15%, 80/10/10), {total_steps:,} steps; held out: {len(corpus.validation):,} "
                      f"texts; {accelerator.num_processes} process(es) on {device}", flush=True)
    result = fit_masked_lm(model, tokenizer, corpus, mlm_loss_fn(DynamicMasker(tokenizer), device), accelerator,
                           data_args, targs, "finetune (mlm)", total_steps, run_files(targs, out, fingerprint))
    metrics = {}
    if accelerator.is_main_process:
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        write_held_out(out, corpus.validation)
        report = measurer(model, tokenizer, data_args, targs, device)(corpus.validation)
        metrics = {"masked_lm": report.figures(), "head_added": head_added, "params": count_parameters(model),
                   **run_info(result, accelerator, targs, corpus, argv, "finetune", margs, data_args, targs)}
        write_json(out / "metrics.json", metrics)
        copy_training_code(out)
        print(f"masked LM saved to {out}: held-out top-1 {report.teacher.top1_accuracy:.4f}, top-5 "
              f"{report.teacher.top5_accuracy:.4f}, pseudo-perplexity {report.teacher.pseudo_perplexity:.2f}, "
              f"{result.train_seconds:.0f} s", flush=True)
    accelerator.end_training()
    return metrics


# ---- distill --objective mlm -------------------------------------------------------------------------
def run_mlm_distill(dargs: DistillArguments, data_args: DataArguments, targs: TrainArguments, argv: list[str]) -> dict:
    from demo.distill.card import write_mlm_card
    from demo.distill.hub import publish

    accelerator = start(targs)
    device = accelerator.device
    main = accelerator.is_main_process
    set_seed(targs.seed)
    teacher, tokenizer, _ = load_masked_lm(dargs.teacher, teacher=True)
    teacher.to(device).eval()
    corpus = read_corpus(data_args, targs.seed)
    eval_texts = {name: read_texts(path, data_args.text_column, quoting=data_args.quoting).texts
                  for name, path in dargs.eval_files.items()}
    layers = parse_layers(dargs.student_layers, teacher.config.num_hidden_layers)
    weights = MlmWeights(dargs.temperature, dargs.alpha_ce, dargs.alpha_mlm, dargs.alpha_cos, dargs.alpha_hidden)
    out = open_output_dir(accelerator, targs)
    fingerprint = run_fingerprint(dargs, data_args, targs, step="distill", teacher_weights=weights_digest(teacher))
    start_trackers(accelerator, "distill", fingerprint)
    total_steps = targs.total_steps(len(corpus.train))
    accelerator.print(
        f"general distillation of {dargs.teacher} ({teacher.config.num_hidden_layers} layers) into a {len(layers)}-"
        f"layer {dargs.student_arch} masked LM (layers {layers}) on {len(corpus.train):,} texts, {total_steps:,} "
        f"steps; loss weights {asdict(weights)}; {accelerator.num_processes} process(es) on {device}", flush=True)
    set_seed(targs.seed)
    student = make_student(teacher, layers, dargs.student_arch)
    masker = DynamicMasker(tokenizer)
    loss_fn = triple_loss_fn(teacher, masker, weights, device, accelerator, layers, dargs.cos_layers)
    result = fit_masked_lm(student, tokenizer, corpus, loss_fn, accelerator, data_args, targs, "distill (mlm)",
                           total_steps, run_files(targs, out, fingerprint))
    measure = measurer(teacher, tokenizer, data_args, targs, device)
    baselines = mlm_baselines(teacher, tokenizer, corpus, masker, dargs, data_args, targs, layers, total_steps,
                              accelerator, out, measure) if dargs.baselines else None
    accelerator.end_training()
    if not main:
        return {}
    student.save_pretrained(out, safe_serialization=True)
    save_tokenizer(tokenizer, out, dargs.student_arch)
    write_held_out(out, corpus.validation)
    # Final figures from the saved student, loaded as the app loads it.
    saved = load_model(ModelSpec(str(out)), "fill_mask", device)
    report = measure(corpus.validation, saved.model)
    metrics = {"masked_lm": report.figures(), "teacher_params": count_parameters(teacher),
               "student_params": count_parameters(saved.model), "layers": layers, "student_arch": dargs.student_arch,
               "loss_weights": asdict(weights),
               "eval_sets": {name: measure(texts, saved.model).figures() for name, texts in eval_texts.items()},
               **run_info(result, accelerator, targs, corpus, argv, "distill", dargs, data_args, targs)}
    if baselines is not None:
        metrics["baselines"] = [against_baseline(entry, report, baseline) for entry, baseline in baselines]
    write_json(out / "metrics.json", metrics)
    copy_training_code(out)
    write_mlm_card(out, metrics, dargs, corpus, layers, teacher.config.num_hidden_layers, corpus_description(corpus))
    print(f"student saved to {out}: held-out top-1 {report.student.top1_accuracy:.4f} (teacher "
          f"{report.teacher.top1_accuracy:.4f}), retention {report.retention_top1:.4f}, top-1 agreement "
          f"{report.agreement_top1:.4f}, speedup {report.speedup:.2f}x, params {metrics['student_params']:,} / "
          f"{metrics['teacher_params']:,}", flush=True)
    if dargs.push_to_hub:
        publish(out, dargs.push_to_hub, private=dargs.hub_private, dry_run=dargs.dry_run)
    return metrics


BASELINES_DIR = "baselines"


def mlm_baselines(teacher, tokenizer, corpus: TextCorpus, masker: DynamicMasker, dargs: DistillArguments,
                  data_args: DataArguments, targs: TrainArguments, layers: list[int], total_steps: int, accelerator,
                  out: Path, measure) -> list[tuple[dict, MaskedLMReport]]:
    """What the teacher adds: the same student shape untrained (layer dropping alone) and trained
    with the masked-LM loss alone on the same text and budget. Each is saved under baselines/ (for
    the downstream check) and measured on the held-out text: (metrics entry, report) for each."""
    device = accelerator.device
    set_seed(targs.seed)
    dropped = make_student(teacher, layers, dargs.student_arch)
    set_seed(targs.seed)
    alone = make_student(teacher, layers, dargs.student_arch)
    fit_masked_lm(alone, tokenizer, corpus, mlm_loss_fn(masker, device), accelerator, data_args, targs,
                  "MLM alone (no teacher)", total_steps)
    found = []
    if not accelerator.is_main_process:
        return found
    for slug, name, model in (("layer-drop", "layer dropping alone (no training)", dropped),
                              ("mlm-alone", "MLM loss alone (no teacher), same text and budget", alone)):
        path = out / BASELINES_DIR / slug
        model.save_pretrained(path, safe_serialization=True)
        save_tokenizer(tokenizer, path, dargs.student_arch)
        report = measure(corpus.validation, model.to(device))
        print(f"baseline {name}: held-out top-1 {report.student.top1_accuracy:.4f} (retention "
              f"{report.retention_top1:.4f})", flush=True)
        found.append(({"name": name, "path": f"{BASELINES_DIR}/{slug}", "masked_lm": report.figures()}, report))
    return found


def against_baseline(entry: dict, student: MaskedLMReport, baseline: MaskedLMReport) -> dict:
    """A baseline's metrics entry with the student's paired comparison against it (same held-out
    tokens), so a lead of a few tokens is not read as a win."""
    paired = paired_top1(student, baseline)
    print(f"this student against {entry['name']}: {paired.sentence('it', 'the baseline')}", flush=True)
    return {**entry, "paired_top1": paired.figures("student", "baseline")}
