"""Tiny random teacher/student checkpoints for every task, saved like real ones (fast, offline)."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertTokenizerFast,
    DistilBertConfig,
    DistilBertForMaskedLM,
    DistilBertForSequenceClassification,
    DistilBertTokenizerFast,
)

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ("the a an is was of to and in it i you he she we they this that film movie good bad great "
         "terrible happy sad love hate angry fear surprise joy not very so my me capital france paris "
         "city dog cat ran fast slow acting plot dull bright day night feel think be".split())
LETTERS = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'\"-:;()")
VOCAB = SPECIAL + WORDS + LETTERS + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"] + ["##s", "##ing", "##ed"]
SENTIMENT_LABELS = ["negative", "positive"]
EMOTION_LABELS = ["sadness", "joy", "love", "anger", "fear", "surprise"]


def write_vocab(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "vocab.txt"
    path.write_text("\n".join(dict.fromkeys(VOCAB)) + "\n", encoding="utf-8")
    return path


def bert_config(**extra) -> BertConfig:
    settings = dict(vocab_size=len(dict.fromkeys(VOCAB)), hidden_size=32, num_hidden_layers=4,
                    num_attention_heads=4, intermediate_size=64, max_position_embeddings=512)
    return BertConfig(**{**settings, **extra})


def distil_config(**extra) -> DistilBertConfig:
    return DistilBertConfig(vocab_size=len(dict.fromkeys(VOCAB)), dim=32, n_layers=2, n_heads=4,
                            hidden_dim=64, max_position_embeddings=512, **extra)


def save(model, tokenizer_cls, directory: Path) -> Path:
    vocab = write_vocab(directory)
    tokenizer = tokenizer_cls(vocab_file=str(vocab), do_lower_case=True, model_max_length=512)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def make_pair(task: str, root: Path, seed: int = 0) -> dict[str, Path]:
    """Teacher (BERT) and student (DistilBERT) for one task, saved under root/task/{teacher,student}."""
    torch.manual_seed(seed)
    if task == "fill_mask":
        teacher, student = BertForMaskedLM(bert_config()), DistilBertForMaskedLM(distil_config())
    else:
        labels = SENTIMENT_LABELS if task == "sentiment" else EMOTION_LABELS
        id2label = dict(enumerate(labels))
        if task == "sentiment":  # like textattack: the teacher only knows LABEL_0/LABEL_1
            id2label = {i: f"LABEL_{i}" for i in range(len(labels))}
        teacher = BertForSequenceClassification(bert_config(num_labels=len(labels), id2label=id2label,
                                                            label2id={v: k for k, v in id2label.items()}))
        student = DistilBertForSequenceClassification(distil_config(
            num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={v: k for k, v in enumerate(labels)}))
    return {"teacher": save(teacher, BertTokenizerFast, root / task / "teacher"),
            "student": save(student, DistilBertTokenizerFast, root / task / "student")}


def make_config(root: Path, tasks=("sentiment", "fill_mask", "classify"), **overrides) -> Path:
    """All tiny pairs plus a pairs.yaml that points at them."""
    entries = {}
    for task in tasks:
        pair = make_pair(task, root)
        teacher = {"model": str(pair["teacher"])}
        if task == "sentiment":
            teacher["labels"] = SENTIMENT_LABELS
        entries[task] = {"teacher": teacher, "student": {"model": str(pair["student"])}}
    config = {"device": "cpu", "tasks": entries, **overrides}
    path = root / "pairs.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path
