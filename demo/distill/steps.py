"""Pieces both training steps use: reading the task's data, validation accuracy, the student's tokenizer."""

from __future__ import annotations

import tempfile
from pathlib import Path

from transformers import DistilBertTokenizerFast

from ..loading import LoadedModel
from ..scoring import accuracy
from .args import DataArguments
from .data import TaskData, batches, encode_texts, load_hub_task_data, load_task_data
from .train import predict_ids


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


def validation_accuracy(model, tokenizer, data: TaskData, max_len: int, batch_size: int, device) -> float:
    enc = encode_texts(tokenizer, data.validation.texts, max_len)
    return accuracy(predict_ids(model, batches(enc, data.validation_ids, batch_size, tokenizer), device),
                    data.validation_ids)


def save_tokenizer(teacher: LoadedModel, out: Path, arch: str) -> None:
    """The teacher's vocabulary; for a DistilBERT student, a tokenizer that emits no token_type_ids."""
    if arch != "distilbert":
        teacher.tokenizer.save_pretrained(out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        teacher.tokenizer.save_pretrained(tmp)
        DistilBertTokenizerFast.from_pretrained(tmp).save_pretrained(out)
