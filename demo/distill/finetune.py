"""`finetune`: a BERT encoder fine-tuned on a classification task, to serve as the teacher."""

from __future__ import annotations

from dataclasses import asdict

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from demo.core.measure import count_parameters
from demo.distill.args import DataArguments, FinetuneArguments, TrainArguments
from demo.distill.batches import encode_examples
from demo.distill.data import batches
from demo.distill.loop import fit, forward, predict_ids, set_seed
from demo.distill.outputs import (
    command_line,
    copy_training_code,
    run_fingerprint,
    write_json,
)
from demo.distill.steps import (
    open_output_dir,
    read_data,
    run_files,
    start,
    start_trackers,
)
from demo.measuring.scoring import accuracy, macro_f1
from demo.models.config import ModelSpec
from demo.models.loading import explain_load_error


def run_finetune(margs: FinetuneArguments, data_args: DataArguments, targs: TrainArguments, argv: list[str]) -> dict:
    accelerator = start(targs)
    device = accelerator.device
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
    out = open_output_dir(accelerator, targs)
    fingerprint = run_fingerprint(margs, data_args, targs, step="finetune")
    start_trackers(accelerator, "finetune", fingerprint)
    train = encode_examples(tokenizer, data.train.texts, data.train_ids, data_args.max_seq_length)
    validation = encode_examples(tokenizer, data.validation.texts, data.validation_ids, data_args.max_seq_length)
    steps_per_epoch = -(-len(train) // (targs.batch_size * targs.gradient_accumulation_steps))
    total_steps = targs.total_steps(len(train))
    accelerator.print(f"fine-tuning {margs.model} on {len(data.train):,} rows, {len(data.label_names)} classes "
                      f"({', '.join(data.label_names)}), {total_steps:,} steps ({total_steps / steps_per_epoch:.1f} "
                      f"epochs), {accelerator.num_processes} process(es) on {device}, mixed precision "
                      f"{accelerator.mixed_precision}", flush=True)

    def loss_fn(m, batch):
        logits = forward(m, batch, device).logits
        return torch.nn.functional.cross_entropy(logits.float(), batch["labels"].to(device)), {}

    result = fit(model, train, loss_fn, accelerator, validation=validation, epochs=targs.epochs,
                 batch_size=targs.batch_size, eval_batch_size=targs.eval_batch_size,
                 learning_rate=targs.learning_rate, weight_decay=targs.weight_decay, warmup_ratio=targs.warmup_ratio,
                 max_grad_norm=targs.max_grad_norm, seed=targs.seed, desc="finetune", total_steps=total_steps,
                 run=run_files(targs, out, fingerprint))
    metrics = {}
    if accelerator.is_main_process:
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        preds = predict_ids(model, batches(validation.encoded, validation.labels, targs.eval_batch_size, tokenizer),
                            device)
        metrics = {"accuracy": accuracy(preds, data.validation_ids), "macro_f1": macro_f1(preds, data.validation_ids),
                   "params": count_parameters(model), "train_seconds": result.train_seconds,
                   "total_steps": result.total_steps, "best_epoch": result.best_epoch, "history": result.history,
                   "resumed_from": result.resumed_from, "num_processes": accelerator.num_processes,
                   "mixed_precision": accelerator.mixed_precision, "n_train": len(data.train),
                   "n_validation": len(data.validation), "label_names": data.label_names, "device": str(device),
                   "command": command_line("finetune", argv), "args": {**asdict(margs), **asdict(data_args),
                                                                       **asdict(targs)}}
        write_json(out / "metrics.json", metrics)
        copy_training_code(out)
        print(f"teacher saved to {out}: validation accuracy {metrics['accuracy']:.4f}, macro-F1 "
              f"{metrics['macro_f1']:.4f}, {result.train_seconds:.0f} s", flush=True)
    accelerator.end_training()
    return metrics
