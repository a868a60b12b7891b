"""`python -m demo.distill {finetune,distill,push} ...`: teacher fine-tuning, distillation, publishing."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DistilBertTokenizerFast, HfArgumentParser

from ..config import ConfigError, ModelSpec
from ..datafiles import DataError
from ..evaluation import LabelMismatch, evaluate_pair
from ..loading import LoadedModel, LoadError, explain_load_error, load_model, resolve_device
from ..measure import count_parameters
from ..metrics import accuracy, macro_f1
from .args import DataArguments, DistillArguments, FinetuneArguments, PushArguments, TrainArguments
from .card import AttrDict, render_card
from .data import TaskData, batches, encode_texts, load_hub_task_data, load_task_data
from .hub import PublishError, publish
from .losses import LossWeights, distillation_loss
from .student import make_student, parse_layers
from .train import FitResult, fit, model_inputs, predict_ids, set_seed

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
STEPS = {
    "finetune": "fine-tune a BERT encoder on a classification task (the teacher)",
    "distill": "distil a fine-tuned BERT teacher into a smaller student, write metrics and model card",
    "push": "publish a finished output directory to the Hugging Face Hub",
}


class UsageError(ValueError):
    pass


# ---- shared steps ------------------------------------------------------------------------------
def prepare_output_dir(path: str, overwrite: bool) -> Path:
    out = Path(path)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"{out} is not empty; choose another --output-dir or pass --overwrite-output-dir.")
    out.mkdir(parents=True, exist_ok=True)
    return out


def read_data(data_args: DataArguments, seed: int, teacher_names: list[str] | None = None) -> TaskData:
    common = dict(max_train_samples=data_args.max_train_samples, max_eval_samples=data_args.max_eval_samples,
                  label_names=data_args.label_name_list, teacher_names=teacher_names, seed=seed)
    if data_args.dataset:
        return load_hub_task_data(data_args.dataset, data_args.dataset_config, data_args.text_column,
                                  data_args.label_column, **common)
    return load_task_data(data_args.train_file, data_args.validation_file, data_args.text_column,
                          data_args.label_column, **common)


def data_description(data_args: DataArguments, data: TaskData) -> str:
    source = (f"the Hub dataset `{data_args.dataset}`" + (f" (`{data_args.dataset_config}`)" if data_args.dataset_config
                                                         else "")) if data_args.dataset else \
        f"`{Path(data_args.train_file).name}` (validation: `{Path(data_args.validation_file).name}`)"
    subset = (f" a seeded random sample of {len(data.train):,} of its {data.train.total_rows:,} training rows"
              if len(data.train) < data.train.total_rows else f" all {len(data.train):,} training rows")
    return (f"Trained on{subset} from {source}; text column `{data.train.text_column}`, label column "
            f"`{data.train.label_column}`; evaluated on {len(data.validation):,} validation rows.")


def copy_training_code(out: Path) -> None:
    """Ship the code that made the model beside it (the card links to it)."""
    target = out / "training"
    shutil.copytree(PACKAGE_ROOT, target / "demo", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                    dirs_exist_ok=True)
    shutil.copy2(PACKAGE_ROOT.parent / "model_card" / "template.md", target / "model_card_template.md")


def command_line(step: str, argv: list[str]) -> str:
    return "python -m demo.distill " + " ".join(shlex.quote(a) for a in [step, *argv])


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def validation_accuracy(model, tokenizer, data: TaskData, max_len: int, batch_size: int, device) -> float:
    enc = encode_texts(tokenizer, data.validation.texts, max_len)
    return accuracy(predict_ids(model, batches(enc, data.validation_ids, batch_size, tokenizer), device),
                    data.validation_ids)


# ---- finetune ----------------------------------------------------------------------------------
def run_finetune(margs: FinetuneArguments, data_args: DataArguments, targs: TrainArguments, argv: list[str]) -> dict:
    device = resolve_device(targs.device)
    out = prepare_output_dir(targs.output_dir, targs.overwrite_output_dir)
    set_seed(targs.seed)
    data = read_data(data_args, targs.seed)
    spec = ModelSpec(margs.model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(margs.model, trust_remote_code=False)
        model = AutoModelForSequenceClassification.from_pretrained(
            margs.model, num_labels=len(data.label_names), id2label=dict(enumerate(data.label_names)),
            label2id={n: i for i, n in enumerate(data.label_names)}, trust_remote_code=False,
            ignore_mismatched_sizes=True)
    except Exception as exc:  # noqa: BLE001
        raise explain_load_error(spec, exc) from None
    print(f"fine-tuning {margs.model} on {len(data.train):,} rows, {len(data.label_names)} classes "
          f"({', '.join(data.label_names)}), device {device}", flush=True)
    train_enc = encode_texts(tokenizer, data.train.texts, data_args.max_seq_length)

    def loss_fn(m, batch):
        outputs = m(**model_inputs(m, batch, device))
        loss = torch.nn.functional.cross_entropy(outputs.logits.float(), batch["labels"].to(device))
        return loss, {}

    result = fit(model, lambda epoch: batches(train_enc, data.train_ids, targs.batch_size, tokenizer, shuffle=True,
                                              seed=targs.seed + epoch),
                 -(-len(train_enc) // targs.batch_size), loss_fn,
                 lambda m: validation_accuracy(m, tokenizer, data, data_args.max_seq_length, targs.eval_batch_size,
                                               device),
                 epochs=targs.epochs, learning_rate=targs.learning_rate, weight_decay=targs.weight_decay,
                 warmup_ratio=targs.warmup_ratio, max_grad_norm=targs.max_grad_norm, device=device, desc="finetune")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    val_enc = encode_texts(tokenizer, data.validation.texts, data_args.max_seq_length)
    preds = predict_ids(model, batches(val_enc, data.validation_ids, targs.eval_batch_size, tokenizer), device)
    metrics = {"accuracy": accuracy(preds, data.validation_ids), "macro_f1": macro_f1(preds, data.validation_ids),
               "teacher_accuracy": accuracy(preds, data.validation_ids),
               "teacher_macro_f1": macro_f1(preds, data.validation_ids), "params": count_parameters(model),
               "train_seconds": result.train_seconds, "best_epoch": result.best_epoch, "history": result.history,
               "n_train": len(data.train), "n_validation": len(data.validation), "label_names": data.label_names,
               "device": str(device), "command": command_line("finetune", argv),
               "args": {**asdict(margs), **asdict(data_args), **asdict(targs)}}
    write_json(out / "metrics.json", metrics)
    copy_training_code(out)
    print(f"teacher saved to {out}: validation accuracy {metrics['accuracy']:.4f}, macro-F1 "
          f"{metrics['macro_f1']:.4f}, {result.train_seconds:.0f} s", flush=True)
    return metrics


# ---- distill -----------------------------------------------------------------------------------
def teacher_logits_cache(teacher: LoadedModel, encoded, labels, batch_size: int) -> torch.Tensor:
    """The teacher's logits for every training example, computed once (eval mode is deterministic).

    Examples go through in order of length so that batches carry little padding; the result is in
    dataset order.
    """
    from tqdm.auto import tqdm

    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]["input_ids"]))
    by_length = [encoded[i] for i in order]
    chunks = []
    with torch.inference_mode():
        for batch in tqdm(batches(by_length, [labels[i] for i in order], batch_size, teacher.tokenizer),
                          total=-(-len(encoded) // batch_size), desc="teacher soft targets", leave=False,
                          mininterval=2.0):
            chunks.append(teacher.model(**model_inputs(teacher.model, batch, teacher.device)).logits.float().cpu())
    sorted_logits = torch.cat(chunks)
    logits = torch.empty_like(sorted_logits)
    logits[torch.tensor(order)] = sorted_logits
    return logits


def train_student(student, teacher: LoadedModel, data: TaskData, weights: LossWeights, dargs: DistillArguments,
                  data_args: DataArguments, targs: TrainArguments, layers: list[int], desc: str) -> FitResult:
    device = teacher.device
    tok = teacher.tokenizer
    train_enc = encode_texts(tok, data.train.texts, data_args.max_seq_length)
    need_hidden = weights.alpha_cos > 0
    cached = None if need_hidden or weights.alpha_ce == 0 else \
        teacher_logits_cache(teacher, train_enc, data.train_ids, targs.eval_batch_size)
    # Hidden-state pairs: hidden_states[0] is the embeddings, [i + 1] the output of layer i.
    pairs = [(len(layers), layers[-1] + 1)] if dargs.cos_layers == "last" else \
        [(0, 0)] + [(j + 1, t + 1) for j, t in enumerate(layers)]

    def loss_fn(model, batch):
        s_out = model(**model_inputs(model, batch, device), output_hidden_states=need_hidden)
        t_hidden = []
        if cached is not None:
            t_logits = cached[batch["index"]].to(device)
        elif weights.alpha_ce > 0 or need_hidden:
            with torch.no_grad():
                # The teacher gets exactly what plain inference gives it (token_type_ids included).
                t_out = teacher.model(**model_inputs(teacher.model, batch, device), output_hidden_states=need_hidden)
            t_logits, t_hidden = t_out.logits.float(), t_out.hidden_states or []
        else:
            t_logits = s_out.logits.detach()
        hidden_pairs = [(s_out.hidden_states[s].float(), t_hidden[t].float()) for s, t in pairs] if need_hidden else []
        return distillation_loss(s_out.logits.float(), t_logits, batch["labels"].to(device), weights, hidden_pairs,
                                 batch["attention_mask"].to(device))

    return fit(student, lambda epoch: batches(train_enc, data.train_ids, targs.batch_size, tok, shuffle=True,
                                              seed=targs.seed + epoch),
               -(-len(train_enc) // targs.batch_size), loss_fn,
               lambda m: validation_accuracy(m, tok, data, data_args.max_seq_length, targs.eval_batch_size, device),
               epochs=targs.epochs, learning_rate=targs.learning_rate, weight_decay=targs.weight_decay,
               warmup_ratio=targs.warmup_ratio, max_grad_norm=targs.max_grad_norm, device=device, desc=desc)


def save_tokenizer(teacher: LoadedModel, out: Path, arch: str) -> None:
    """The teacher's vocabulary; for a DistilBERT student, a tokenizer that emits no token_type_ids."""
    if arch != "distilbert":
        teacher.tokenizer.save_pretrained(out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        teacher.tokenizer.save_pretrained(tmp)
        DistilBertTokenizerFast.from_pretrained(tmp).save_pretrained(out)


def run_distill(dargs: DistillArguments, data_args: DataArguments, targs: TrainArguments, argv: list[str]) -> dict:
    device = resolve_device(targs.device)
    out = prepare_output_dir(targs.output_dir, targs.overwrite_output_dir)
    set_seed(targs.seed)
    teacher = load_model(ModelSpec(dargs.teacher), "classify", device)
    teacher_names = [teacher.id2label[i] for i in sorted(teacher.id2label)]
    data = read_data(data_args, targs.seed, teacher_names=teacher_names)
    n_teacher_layers = teacher.model.config.num_hidden_layers
    layers = parse_layers(dargs.student_layers, n_teacher_layers)
    weights = LossWeights(dargs.temperature, dargs.alpha_ce, dargs.alpha_hard, dargs.alpha_cos)
    print(f"distilling {dargs.teacher} ({n_teacher_layers} layers) into a {len(layers)}-layer {dargs.student_arch} "
          f"student (layers {layers}) on {len(data.train):,} rows; loss weights {asdict(weights)}; device {device}",
          flush=True)
    student = make_student(teacher.model, layers, dargs.student_arch)
    result = train_student(student, teacher, data, weights, dargs, data_args, targs, layers, desc="distill")
    student.save_pretrained(out, safe_serialization=True)
    save_tokenizer(teacher, out, dargs.student_arch)

    # Final figures through the dashboard's own loader, batching and timing code.
    student_loaded = load_model(ModelSpec(str(out)), "classify", device)
    gold = [data.label_names[i] for i in data.validation_ids]
    report = evaluate_pair(teacher, student_loaded, data.validation.texts, gold, batch_size=targs.eval_batch_size,
                           max_length=data_args.max_seq_length)
    metrics = {**report.figures(), "teacher_params": count_parameters(teacher.model),
               "student_params": count_parameters(student_loaded.model), "train_seconds": result.train_seconds,
               "best_epoch": result.best_epoch, "history": result.history, "layers": layers,
               "student_arch": dargs.student_arch, "loss_weights": asdict(weights), "cos_layers": dargs.cos_layers,
               "n_train": len(data.train), "eval_batch_size": targs.eval_batch_size,
               "command": command_line("distill", argv),
               "args": {**asdict(dargs), **asdict(data_args), **asdict(targs)}}
    if dargs.baselines:
        metrics["baselines"] = run_baselines(teacher, data, dargs, data_args, targs, layers, report.teacher_accuracy)
    write_json(out / "metrics.json", metrics)
    copy_training_code(out)
    write_card(out, metrics, dargs, data_args, data, layers, n_teacher_layers, result)
    print(f"student saved to {out}: accuracy {report.student_accuracy:.4f} (teacher {report.teacher_accuracy:.4f}), "
          f"retention {report.retention:.4f}, agreement {report.agreement:.4f}, speedup {report.speedup:.2f}x, "
          f"params {metrics['student_params']:,} / {metrics['teacher_params']:,}", flush=True)
    if dargs.push_to_hub:
        publish(out, dargs.push_to_hub, private=dargs.hub_private, dry_run=dargs.dry_run)
    return metrics


def run_baselines(teacher: LoadedModel, data: TaskData, dargs, data_args, targs, layers, teacher_acc) -> list[dict]:
    """What distillation adds: the same student shape untrained, and trained on gold labels alone."""
    device = teacher.device
    val_enc = encode_texts(teacher.tokenizer, data.validation.texts, data_args.max_seq_length)

    def figures(name, model):
        preds = predict_ids(model, batches(val_enc, data.validation_ids, targs.eval_batch_size, teacher.tokenizer),
                            device)
        acc = accuracy(preds, data.validation_ids)
        return {"name": name, "accuracy": acc, "macro_f1": macro_f1(preds, data.validation_ids),
                "retention": acc / teacher_acc if teacher_acc else float("nan")}

    set_seed(targs.seed)
    dropped = make_student(teacher.model, layers, dargs.student_arch).to(device)
    out = [figures("layer dropping alone (no training)", dropped)]
    set_seed(targs.seed)
    hard = make_student(teacher.model, layers, dargs.student_arch)
    train_student(hard, teacher, data, LossWeights(alpha_ce=0.0, alpha_hard=1.0, alpha_cos=0.0), dargs, data_args,
                  targs, layers, desc="hard labels only")
    out.append(figures("hard labels alone (no teacher)", hard))
    return out


def write_card(out: Path, metrics: dict, dargs: DistillArguments, data_args: DataArguments, data: TaskData,
               layers: list[int], n_teacher_layers: int, result: FitResult) -> None:
    w = metrics["loss_weights"]
    terms = []
    if w["alpha_ce"]:
        terms.append(f"{w['alpha_ce']} × KL(teacher ‖ student) on softmax at temperature T = {w['temperature']}, "
                     "scaled by T²")
    if w["alpha_hard"]:
        terms.append(f"{w['alpha_hard']} × cross-entropy on the gold labels")
    if w["alpha_cos"]:
        terms.append(f"{w['alpha_cos']} × cosine loss between student and teacher hidden states "
                     f"({dargs.cos_layers} layer{'s' if dargs.cos_layers == 'all' else ''}, real tokens only)")
    dataset_name = data_args.dataset or Path(data_args.train_file).parent.name or "local files"
    repo_id = dargs.push_to_hub or f"{out.name}"
    context = {
        "model_name": repo_id.split("/")[-1], "repo_id": repo_id, "teacher": dargs.teacher,
        "teacher_url": f"https://huggingface.co/{dargs.teacher}" if not Path(dargs.teacher).exists() else "#",
        "task_description": f"text classification ({', '.join(data.label_names)})",
        "student_layer_count": len(layers), "teacher_layer_count": n_teacher_layers, "layers": layers,
        "student_arch": dargs.student_arch,
        "student_arch_name": "DistilBERT" if dargs.student_arch == "distilbert" else "BERT",
        "loss_description": " + ".join(terms), "args": AttrDict(metrics["args"]),
        "best_epoch": result.best_epoch, "data_description": data_description(data_args, data),
        "example_text": data.validation.texts[0][:120].replace('"', "'"), "label_names": data.label_names,
        "max_seq_length": data_args.max_seq_length, "command": metrics["command"],
        "baselines": metrics.get("baselines"), "dataset_name": dataset_name,
        "dataset_type": data_args.dataset or dataset_name,
    }
    render_card(metrics, context).save(out / "README.md")


# ---- entry point -------------------------------------------------------------------------------
def usage() -> str:
    lines = ["usage: python -m demo.distill STEP [options]   (python -m demo.distill STEP --help for options)", ""]
    lines += [f"  {name:<9} {text}" for name, text in STEPS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    step, rest = argv[0], argv[1:]
    if step not in STEPS:
        print(f"error: unknown step {step!r}.\n{usage()}", file=sys.stderr)
        return 2
    types = {"finetune": (FinetuneArguments, DataArguments, TrainArguments),
             "distill": (DistillArguments, DataArguments, TrainArguments),
             "push": (PushArguments,)}[step]
    parser = HfArgumentParser(types, prog=f"python -m demo.distill {step}", description=STEPS[step])
    try:
        parsed = parser.parse_args_into_dataclasses(args=rest)
    except ValueError as exc:  # __post_init__ checks: say how to fix, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if step == "finetune":
            run_finetune(*parsed, argv=rest)
        elif step == "distill":
            run_distill(*parsed, argv=rest)
        else:
            (pargs,) = parsed
            publish(pargs.output_dir, pargs.repo_id, private=pargs.hub_private, dry_run=pargs.dry_run)
    except (DataError, LoadError, LabelMismatch, UsageError, ConfigError, PublishError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # e.g. --student-layers out of range, a non-BERT teacher
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
