"""Training and validation data: a classification task's labelled rows (read, checked, labelled,
batched), or raw text for the masked-LM objective."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from demo.data.files import DataError, LabelledData, read_labelled, read_texts
from demo.data.streams import TextStream, stream_texts
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


def load_task_data(train_file: str, validation_file: str, text_column: str | None, label_column: str | None,
                   max_train_samples: int | None = None, max_eval_samples: int | None = None,
                   label_names: Sequence[str] | None = None, teacher_names: Sequence[str] | None = None,
                   seed: int = 42, quoting: str = "auto") -> TaskData:
    """Both splits from local files. A training subset is a seeded random sample, not the file's head."""
    train = read_labelled(train_file, text_column, label_column, quoting=quoting)
    validation = read_labelled(validation_file, text_column or train.text_column,
                               label_column or train.label_column, max_rows=max_eval_samples, quoting=quoting)
    if max_train_samples is not None and max_train_samples < len(train):
        keep = sorted(random.Random(seed).sample(range(len(train)), max_train_samples))
        train = LabelledData([train.texts[i] for i in keep], [train.labels[i] for i in keep], train.source,
                             train.text_column, train.label_column, train.columns, train.total_rows)
    names, train_ids, val_ids = assign_label_ids(train, validation, label_names, teacher_names)
    return TaskData(train, validation, names, train_ids, val_ids)


def load_hub_task_data(dataset: str, config: str | None, text_column: str | None, label_column: str | None,
                       **kwargs) -> TaskData:
    """A Hub dataset by name (needs network or a filled datasets cache), as local files would be."""
    from datasets import load_dataset

    try:
        ds = load_dataset(dataset, config)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"dataset {dataset!r} could not be loaded ({str(exc).splitlines()[0]}); without "
                        "network, pass --train-file and --validation-file instead.") from None
    import tempfile

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
    return load_task_data(str(files["train"]), str(files["validation"]), text_column, label_col, **kwargs)


def encode_texts(tokenizer, texts: Sequence[str], max_length: int) -> list[dict[str, list[int]]]:
    """Tokenise once up front; batches are padded on the fly to their own longest text."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    keys = list(enc.keys())
    return [{k: enc[k][i] for k in keys} for i in range(len(texts))]


def batch_order(encoded: Sequence[dict], batch_size: int, shuffle: bool, seed: int) -> list[list[int]]:
    """Index lists, one per batch. Shuffled batches are grouped by length (as transformers'
    LengthGroupedSampler): shuffle, cut into mega-batches of 50 batches, sort each by length, cut
    into batches, shuffle the batches. Short SST-2 sentences then pad to ~their own length instead
    of the longest in a random batch, which makes an epoch about twice as fast.
    """
    order = list(range(len(encoded)))
    if not shuffle:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng = random.Random(seed)
    rng.shuffle(order)
    mega = batch_size * 50
    out = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start:start + mega], key=lambda i: -len(encoded[i]["input_ids"]))
        out += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(out)
    return out


def batches(encoded: Sequence[dict], labels: Sequence[int], batch_size: int, tokenizer,
            shuffle: bool = False, seed: int = 0, extra: torch.Tensor | None = None) -> Iterator[dict]:
    """Padded tensor batches with 'labels' (and 'index' into the dataset, for cached teacher outputs)."""
    # Padding pre-tokenised ids is what we want here; silence the fast tokenizer's hint about __call__.
    getattr(tokenizer, "deprecation_warnings", {})["Asking-to-pad-a-fast-tokenizer"] = True
    for idx in batch_order(encoded, batch_size, shuffle, seed):
        batch = tokenizer.pad([encoded[i] for i in idx], return_tensors="pt")
        batch["labels"] = torch.tensor([labels[i] for i in idx])
        batch["index"] = torch.tensor(idx)
        yield dict(batch)


def load_transfer_texts(files: Sequence[str], text_column: str | None, max_samples: int | None,
                        seed: int, quoting: str = "auto") -> tuple[list[str], list[dict]]:
    """Unlabelled texts of every transfer file, in file order (a seeded sample with max_samples).

    Returns the texts and, per file, what was read (for metrics.json and the card).
    """
    texts, sources = [], []
    for path in files:
        data = read_texts(path, text_column, column_flag="--transfer-text-column", quoting=quoting)
        sources.append({"file": str(path), "texts": len(data), "text_column": data.text_column})
        texts += data.texts
    if max_samples is not None and max_samples < len(texts):
        keep = sorted(random.Random(seed).sample(range(len(texts)), max_samples))
        texts = [texts[i] for i in keep]
    return texts, sources


def open_transfer_streams(files: Sequence[str], text_column: str | None, max_samples: int,
                          quoting: str = "auto") -> tuple[list[TextStream], list[dict]]:
    """--streaming: each transfer file as a stream, and the first max_samples texts counted through
    (a malformed row among them, or fewer texts than asked for, stops the run before training)."""
    streams = [stream_texts(path, text_column, quoting, column_flag="--transfer-text-column") for path in files]
    available = 0
    for stream in streams:
        available += stream.count(max_samples - available)
        if available >= max_samples:
            break
    if available < max_samples:
        raise DataError(f"--max-transfer-samples {max_samples:,}: the transfer stream holds only {available:,} "
                        "texts; ask for at most that many.")
    sources = [{"file": s.source, "text_column": s.text_column, "streamed": True} for s in streams]
    return streams, sources


def load_eval_set(name: str, path: str, text_column: str | None, label_column: str | None,
                  quoting: str = "auto") -> LabelledData:
    """An extra labelled test set; the training file's column names are used where the file has them."""
    return read_labelled(path, text_column, label_column, columns_if_present=True, quoting=quoting)


# ---- raw text for the masked-LM objective ----------------------------------------------------------
@dataclass
class TextCorpus:
    """Training and held-out texts for --objective mlm, and what was read from where."""

    train: list[str]
    validation: list[str]
    sources: list[dict]
    validation_source: str  # a sentence for the card and metrics


def held_out(text: str, percentage: float) -> bool:
    """Whether a text belongs to the held-out slice: decided by a hash of the text alone, so the
    teacher's adaptation, the student's distillation and any later run hold out the same texts
    (whatever files, order or sample), and a duplicated text never lands on both sides."""
    return _text_hash(text) % 10_000 < percentage * 100


def _text_hash(text: str, purpose: bytes = b"") -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8, person=purpose).digest(), "big")


def load_text_corpus(files: Sequence[str], validation_file: str | None, text_column: str | None,
                     percentage: float, max_train: int | None, max_eval: int | None, seed: int,
                     quoting: str = "auto") -> TextCorpus:
    train, validation, sources = [], [], []
    for path in files:
        data = read_texts(path, text_column, quoting=quoting)
        kept = data.texts if validation_file else [t for t in data.texts if not held_out(t, percentage)]
        sources.append({"file": str(path), "texts": len(data), "text_column": data.text_column,
                        "held_out": len(data) - len(kept)})
        train += kept
        if not validation_file:
            validation += [t for t in data.texts if held_out(t, percentage)]
    if validation_file:
        validation = read_texts(validation_file, text_column, quoting=quoting).texts
        described = f"`{Path(validation_file).name}`"
    else:
        described = f"{percentage:g}% of the texts held out by a hash of each text"
    if not train:
        raise DataError("no training text is left once the held-out slice is taken; give more text or a "
                        "--validation-file.")
    if not validation:
        raise DataError("the held-out slice is empty (too little text for the --validation-split-percentage); "
                        "give a --validation-file or a larger percentage.")
    rng = random.Random(seed)
    if max_train is not None and max_train < len(train):
        train = [train[i] for i in sorted(rng.sample(range(len(train)), max_train))]
    if max_eval is not None and max_eval < len(validation):
        # The same sample whatever --seed, the files' order or the training sample: a run with another
        # seed is measured on the same texts. (Chosen by a second hash of each text.)
        by_hash = sorted(range(len(validation)), key=lambda i: _text_hash(validation[i], b"eval-sample"))
        keep = set(by_hash[:max_eval])
        validation = [t for i, t in enumerate(validation) if i in keep]
        described += f", {max_eval:,} of them chosen by a hash of each text"
    return TextCorpus(train, validation, sources, described)


# ---- a step's data, from its flags ------------------------------------------------------------------
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


def read_corpus(data_args: DataArguments, seed: int) -> TextCorpus:
    return load_text_corpus(data_args.train_file, data_args.validation_file, data_args.text_column,
                            data_args.validation_split_percentage, data_args.max_train_samples,
                            data_args.max_eval_samples, seed, data_args.quoting)


def corpus_description(corpus: TextCorpus) -> str:
    files = ", ".join(f"`{Path(s['file']).name}` ({s['texts']:,})" for s in corpus.sources)
    return (f"Trained on {len(corpus.train):,} texts from {files}; measured on {len(corpus.validation):,} texts "
            f"({corpus.validation_source}).")
