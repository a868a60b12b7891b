"""What the training loop iterates over: tokenised rows, batched as accelerate expects.

In-memory rows come in global batches grouped by length (seeded per epoch, so every process and
every resumed run sees the same order); with --streaming, the labelled rows are mixed with texts
read from a stream as they come.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from demo.data.streams import read_stream
from demo.distill.losses import IGNORE_INDEX


@dataclass
class Examples:
    """Tokenised rows for the loop: each an encoding (input_ids, attention_mask, ...) and a label."""

    encoded: list[dict]
    labels: list[int]
    tokenizer: object

    def __len__(self) -> int:
        return len(self.encoded)


class _Rows(Dataset):
    def __init__(self, examples: Examples):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> int:
        return i  # the collate function pads the rows of a batch together


class LengthGroupedBatches(Sampler):
    """Global batches of row indices; shuffled ones grouped by length (data.batch_order), seeded
    per epoch, so every process and every resumed run sees the same order."""

    def __init__(self, examples: Examples, batch_size: int, shuffle: bool, seed: int):
        self.examples, self.batch_size, self.shuffle, self.seed = examples, batch_size, shuffle, seed
        self.drop_last = False
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(batch_order(self.examples.encoded, self.batch_size, self.shuffle, self.seed + self.epoch))

    def __len__(self) -> int:
        return -(-len(self.examples) // self.batch_size)


@dataclass
class StreamedExamples:
    """In-memory rows plus the first n_streamed texts of a stream (--streaming), which are read,
    tokenised (datasets' batched map) and trained on as they come, never held whole. Streamed rows
    carry no label and index -1: their teacher outputs are computed batch by batch."""

    rows: Examples
    streams: list  # data.streams.TextStream
    n_streamed: int
    max_length: int

    @property
    def tokenizer(self):
        return self.rows.tokenizer

    def __len__(self) -> int:
        return len(self.rows) + self.n_streamed


STREAM_SHUFFLE_BUFFER = 10_000  # streamed texts are shuffled within a window this large
STREAM_TOKENISE_BATCH = 256


class _MixedRows(IterableDataset):
    """One pass: the in-memory rows (shuffled) and the streamed texts (shuffled within a buffer),
    drawn at random in proportion to what is left of each, seeded per epoch."""

    def __init__(self, examples: StreamedExamples, seed: int):
        self.examples, self.seed, self.epoch = examples, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _streamed(self):
        import datasets

        ex = self.examples
        combined = datasets.concatenate_datasets([s.dataset for s in ex.streams])
        combined = combined.take(ex.n_streamed).shuffle(seed=self.seed + self.epoch,
                                                        buffer_size=STREAM_SHUFFLE_BUFFER)
        tokenizer, max_length = ex.tokenizer, ex.max_length
        tokenised = combined.map(lambda b: tokenizer(b["text"], truncation=True, max_length=max_length),
                                 batched=True, batch_size=STREAM_TOKENISE_BATCH, remove_columns=["text"])
        return read_stream(tokenised, "transfer stream")

    def __iter__(self):
        rng = random.Random(self.seed + self.epoch)
        order = list(range(len(self.examples.rows)))
        rng.shuffle(order)
        streamed = self._streamed()
        left_rows, left_stream = len(order), self.examples.n_streamed
        while left_rows or left_stream:
            if left_rows and rng.random() < left_rows / (left_rows + left_stream):
                left_rows -= 1
                yield order[left_rows]
            else:
                left_stream -= 1
                yield next(streamed)


def data_loader(examples: Examples | StreamedExamples, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    tokenizer = examples.tokenizer
    # Padding pre-tokenised ids is what we want here; silence the fast tokenizer's hint about __call__.
    getattr(tokenizer, "deprecation_warnings", {})["Asking-to-pad-a-fast-tokenizer"] = True
    if isinstance(examples, StreamedExamples):
        rows = examples.rows

        def collate_mixed(items: list) -> dict[str, torch.Tensor]:
            encoded = [rows.encoded[i] if isinstance(i, int) else i for i in items]
            batch = dict(tokenizer.pad(encoded, return_tensors="pt"))
            batch["labels"] = torch.tensor([rows.labels[i] if isinstance(i, int) else IGNORE_INDEX for i in items])
            batch["index"] = torch.tensor([i if isinstance(i, int) else -1 for i in items])
            return batch

        return DataLoader(_MixedRows(examples, seed), batch_size=batch_size, collate_fn=collate_mixed,
                          generator=torch.Generator().manual_seed(seed))

    def collate(indices: list[int]) -> dict[str, torch.Tensor]:
        batch = dict(tokenizer.pad([examples.encoded[i] for i in indices], return_tensors="pt"))
        batch["labels"] = torch.tensor([examples.labels[i] for i in indices])
        batch["index"] = torch.tensor(indices)  # into the rows, for cached teacher outputs
        return batch

    # Its own generator: a DataLoader otherwise draws its base seed from the global torch RNG at
    # every new iterator, and a resumed run (which starts one mid-epoch) would then drift from an
    # uninterrupted one.
    return DataLoader(_Rows(examples), batch_sampler=LengthGroupedBatches(examples, batch_size, shuffle, seed),
                      collate_fn=collate, generator=torch.Generator().manual_seed(seed))


def encode_examples(tokenizer, texts: Sequence[str], labels: Sequence[int], max_length: int) -> Examples:
    """Tokenise once up front; batches are padded on the fly to their own longest text."""
    return Examples(encode_texts(tokenizer, texts, max_length), list(labels), tokenizer)


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
