"""A classification step's labelled rows: read from files (or a Hub dataset), sampled, and their labels
turned into the teacher's class ids, every mismatch refused. Where labels are read; batches are
batches.py's, raw text for the masked-LM objective masked_text.py's, transfer text trainset.py's."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from demo.data.files import DataError, LabelledData, read_labelled
from demo.distill.args import DataArguments


@dataclass
class TaskData:
    train: LabelledData
    validation: LabelledData
    label_names: list[str]  # class id -> name; becomes the model's id2label
    train_ids: list[int]
    validation_ids: list[int]


def _is_int(value: str) -> bool:
    return value.lstrip("-").isdigit()


def assign_label_ids(train: LabelledData, validation: LabelledData, label_names: Sequence[str] | None,
                     teacher_names: Sequence[str] | None) -> tuple[list[str], list[int], list[int]]:
    """Class names and integer ids for both splits; stops on unknown or mismatched labels.

    Integer labels index label_names (or the teacher's names); string labels are matched by name,
    case-insensitively. With a teacher, the data must use exactly the teacher's label set.
    """
    all_int = all(_is_int(v) for v in train.labels + validation.labels)
    if all_int:
        used = sorted({int(v) for v in train.labels})
        names = list(label_names or teacher_names or [str(i) for i in range(max(used) + 1)])
        bad = sorted({int(v) for v in train.labels + validation.labels if not 0 <= int(v) < len(names)})
        if bad:
            raise DataError(f"integer labels {bad} have no name among {len(names)} classes ({', '.join(names)}).")
        to_id = {str(i): i for i in range(len(names))}
        lookup = lambda v: to_id[str(int(v))]
    else:
        seen = list(dict.fromkeys(train.labels))
        names = list(label_names or teacher_names or sorted(seen, key=str.lower))
        to_id = {n.lower(): i for i, n in enumerate(names)}
        unknown_train = sorted({v for v in train.labels if v.lower() not in to_id})
        if unknown_train:
            raise DataError(f"training labels {', '.join(unknown_train)} are not among the classes "
                            f"{', '.join(names)}.")
        lookup = lambda v: to_id.get(v.lower())
    unknown_val = sorted({v for v in validation.labels if lookup(v) is None or str(v).lower() not in
                          {str(x).lower() for x in train.labels}})
    if unknown_val:
        raise DataError(f"validation labels {', '.join(unknown_val)} never occur in the training data "
                        f"(training labels: {', '.join(sorted(set(train.labels), key=str.lower))}).")
    train_ids = [lookup(v) for v in train.labels]
    if teacher_names is not None:
        data_set = {names[i].lower() for i in set(train_ids)}
        teacher_set = {n.lower() for n in teacher_names}
        if data_set != teacher_set or len(names) != len(teacher_names):
            raise DataError(f"the data's labels ({', '.join(sorted(data_set))}) differ from the teacher's "
                            f"({', '.join(teacher_names)}); distil on data of the teacher's task.")
    return names, train_ids, [lookup(v) for v in validation.labels]


def read_data(data_args: DataArguments, seed: int, teacher_names: list[str] | None = None) -> TaskData:
    """Both splits of --train-file and --validation-file (or of a Hub --dataset), labelled and checked
    against the teacher's classes. A training subset (--max-train-samples) is a seeded random sample, not
    the file's head."""
    if data_args.dataset:
        return read_data(hub_files(data_args), seed, teacher_names)
    text_column, label_column, quoting = data_args.text_column, data_args.label_column, data_args.quoting
    train = read_labelled(data_args.first_train_file, text_column, label_column, quoting=quoting)
    validation = read_labelled(data_args.validation_file, text_column or train.text_column,
                               label_column or train.label_column, max_rows=data_args.max_eval_samples,
                               quoting=quoting)
    wanted = data_args.max_train_samples
    if wanted is not None and wanted < len(train):
        keep = sorted(random.Random(seed).sample(range(len(train)), wanted))
        train = LabelledData([train.texts[i] for i in keep], [train.labels[i] for i in keep], train.source,
                             train.text_column, train.label_column, train.columns, train.total_rows)
    names, train_ids, val_ids = assign_label_ids(train, validation, data_args.label_name_list, teacher_names)
    return TaskData(train, validation, names, train_ids, val_ids)


def hub_files(data_args: DataArguments) -> DataArguments:
    """A Hub dataset by name (needs network or a filled datasets cache), written to local files: the same
    settings, reading those files as --train-file and --validation-file would."""
    from datasets import load_dataset  # only here: the local-file path never needs it

    dataset, config, label_column = data_args.dataset, data_args.dataset_config, data_args.label_column
    try:
        ds = load_dataset(dataset, config)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"dataset {dataset!r} could not be loaded ({str(exc).splitlines()[0]}); without "
                        "network, pass --train-file and --validation-file instead.") from None
    tmp = Path(tempfile.mkdtemp(prefix="demo-hub-data-"))
    files = {}
    for split in ("train", "validation"):
        if split not in ds:
            raise DataError(f"dataset {dataset!r} has no {split!r} split (it has {', '.join(ds)}).")
        part = ds[split]
        feature = part.features.get(label_column or "label")
        if feature is not None and hasattr(feature, "names"):  # ClassLabel: keep names as strings
            names, column = feature.names, label_column or "label"
            part = part.map(lambda row, names=names, column=column: {"label_name": names[row[column]]})
            label_col = "label_name"
        else:
            label_col = label_column
        files[split] = tmp / f"{split}.jsonl"
        part.to_json(str(files[split]))
    return replace(data_args, dataset=None, dataset_config=None, train_file=[str(files["train"])],
                   validation_file=str(files["validation"]), label_column=label_col, quoting="auto")


def data_description(data_args: DataArguments, data: TaskData) -> str:
    if data_args.dataset:
        config = f" (`{data_args.dataset_config}`)" if data_args.dataset_config else ""
        source = f"the Hub dataset `{data_args.dataset}`{config}"
    else:
        source = (f"`{Path(data_args.first_train_file).name}` (validation: "
                  f"`{Path(data_args.validation_file).name}`)")
    subset = (f" a seeded random sample of {len(data.train):,} of its {data.train.total_rows:,} training rows"
              if len(data.train) < data.train.total_rows else f" all {len(data.train):,} training rows")
    return (f"Trained on{subset} from {source}; text column `{data.train.text_column}`, label column "
            f"`{data.train.label_column}`; evaluated on {len(data.validation):,} validation rows.")
