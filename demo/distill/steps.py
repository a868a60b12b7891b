"""Pieces both training steps use: reading the task's data, validation accuracy, the student's tokenizer."""

from __future__ import annotations

import tempfile
from pathlib import Path

from transformers import DistilBertTokenizerFast

from demo.core.errors import UsageError
from demo.distill.accel import make_accelerator
from demo.distill.args import DataArguments, TrainArguments
from demo.distill.checkpoints import RunFiles
from demo.distill.data import TaskData, load_hub_task_data, load_task_data
from demo.distill.outputs import check_output_dir, prepare_output_dir
from demo.models.loading import resolve_device


def read_data(data_args: DataArguments, seed: int, teacher_names: list[str] | None = None) -> TaskData:
    common = dict(max_train_samples=data_args.max_train_samples, max_eval_samples=data_args.max_eval_samples,
                  label_names=data_args.label_name_list, teacher_names=teacher_names, seed=seed)
    if not data_args.dataset:
        common["quoting"] = data_args.quoting
    if data_args.dataset:
        return load_hub_task_data(data_args.dataset, data_args.dataset_config, data_args.text_column,
                                  data_args.label_column, **common)
    return load_task_data(data_args.first_train_file, data_args.validation_file, data_args.text_column,
                          data_args.label_column, **common)


def data_description(data_args: DataArguments, data: TaskData) -> str:
    source = (f"the Hub dataset `{data_args.dataset}`" + (f" (`{data_args.dataset_config}`)" if data_args.dataset_config
                                                         else "")) if data_args.dataset else \
        f"`{Path(data_args.first_train_file).name}` (validation: `{Path(data_args.validation_file).name}`)"
    subset = (f" a seeded random sample of {len(data.train):,} of its {data.train.total_rows:,} training rows"
              if len(data.train) < data.train.total_rows else f" all {len(data.train):,} training rows")
    return (f"Trained on{subset} from {source}; text column `{data.train.text_column}`, label column "
            f"`{data.train.label_column}`; evaluated on {len(data.validation):,} validation rows.")


def start(targs: TrainArguments):
    """Before any work: the output directory and flags checked, then the run's Accelerator.

    Under `accelerate launch` there is one per process; batch sizes are global, so each must split
    evenly over the processes.
    """
    resolve_device(targs.device)  # an explicit device that is absent: a clear error now
    check_output_dir(targs.output_dir, targs.overwrite_output_dir, resuming=bool(targs.resume_from_checkpoint))
    accelerator = make_accelerator(targs.device, targs.mixed_precision, targs.gradient_accumulation_steps,
                                   targs.report_to, project_dir=targs.output_dir)
    for flag, size in (("--batch-size", targs.batch_size), ("--eval-batch-size", targs.eval_batch_size)):
        if size % accelerator.num_processes:
            raise UsageError(f"{flag} {size} is the global batch: make it a multiple of the "
                             f"{accelerator.num_processes} processes.")
    return accelerator


def open_output_dir(accelerator, targs: TrainArguments) -> Path:
    """The output directory, created (or kept, when resuming) by the main process while the others wait."""
    accelerator.wait_for_everyone()
    out = Path(targs.output_dir)
    if accelerator.is_main_process:
        out = prepare_output_dir(targs.output_dir, targs.overwrite_output_dir, bool(targs.resume_from_checkpoint))
    accelerator.wait_for_everyone()
    return out


def run_files(targs: TrainArguments, out: Path, fingerprint: dict) -> RunFiles:
    return RunFiles(out=out, fingerprint=fingerprint, checkpoint_steps=targs.checkpoint_steps,
                    keep_checkpoints=targs.keep_checkpoints, logging_steps=targs.logging_steps,
                    resume_from=targs.resume_from_checkpoint)


def start_trackers(accelerator, step: str, fingerprint: dict) -> None:
    if accelerator.log_with:
        accelerator.init_trackers(f"distill-demo-{step}", config={k: v if isinstance(v, (int, float, str, bool))
                                                                  else str(v) for k, v in fingerprint.items()})


def save_tokenizer(tokenizer, out: Path, arch: str) -> None:
    """The teacher's vocabulary; for a DistilBERT student, a tokenizer that emits no token_type_ids."""
    if arch != "distilbert":
        tokenizer.save_pretrained(out)
        return
    from transformers.utils import logging as hf_logging

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "loaded from a BertTokenizer checkpoint": the point of this copy
        try:
            DistilBertTokenizerFast.from_pretrained(tmp).save_pretrained(out)
        finally:
            hf_logging.set_verbosity(verbosity)
