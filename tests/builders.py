"""What the tests build: tiny random checkpoints for every task (saved like real ones, fast, offline)
and the small data files they train and evaluate on. Shared by every test module; fixtures are in
conftest.py."""

from __future__ import annotations

import random
from pathlib import Path

import torch
import yaml
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertTokenizerFast,
    DistilBertConfig,
    DistilBertForMaskedLM,
    DistilBertForSequenceClassification,
    DistilBertTokenizerFast,
)

ROOT = Path(__file__).resolve().parent.parent
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
    words = write_vocab(directory).read_text(encoding="utf-8").split()
    tokenizer = tokenizer_cls(vocab={word: i for i, word in enumerate(words)}, do_lower_case=True,
                              model_max_length=512)
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


# ---- data -------------------------------------------------------------------------------------------
POSITIVE = ["good", "great", "happy", "love", "joy"]
NEGATIVE = ["bad", "terrible", "sad", "hate", "dull"]
FILLER = "the a film movie plot acting was is it this that very so day night".split()


def write_sentiment_tsv(path: Path, n: int, seed: int) -> Path:
    """n labelled rows, each four filler words and one word that gives the sentiment away."""
    rng = random.Random(seed)
    lines = ["sentence\tlabel"]
    for _ in range(n):
        label = rng.random() < 0.5
        words = [*rng.sample(FILLER, 4), rng.choice(POSITIVE if label else NEGATIVE)]
        rng.shuffle(words)
        lines.append(f"{' '.join(words)}\t{'positive' if label else 'negative'}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---- twelve texts for the evaluator, and what a model says of each, by plain transformers ------------
TEXTS = ["i feel happy today", "this is a sad day", "i love my dog", "that film made me angry",
         "i fear the night", "what a surprise", "the plot was dull", "we had a great day", "my cat ran fast",
         "i think she is very happy", "they hate this city", "so bright and good"]


def direct_predictions(model_dir: str) -> list[str]:
    """What the model says, one text at a time with plain transformers: the hand check."""
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    out = []
    with torch.no_grad():
        for text in TEXTS:
            enc = tok(text, return_tensors="pt")
            enc = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")
                   and (k != "token_type_ids" or model.config.model_type == "bert")}
            out.append(model.config.id2label[int(model(**enc).logits.argmax(-1))])
    return out


# ---- encoders and teachers for the training tests ----------------------------------------------------
def make_encoder(path: Path, seed: int = 0, num_hidden_layers: int = 4, **config) -> Path:
    """A tiny pretrained-style BERT encoder (no task head yet)."""
    torch.manual_seed(seed)
    model = BertForSequenceClassification(bert_config(num_hidden_layers=num_hidden_layers, **config))
    return save(model.bert, BertTokenizerFast, path)


def write_teacher(path: Path, **config) -> Path:
    """A (random) BERT sentiment classifier: the loop needs a teacher, not a good one."""
    torch.manual_seed(0)
    model = BertForSequenceClassification(bert_config(num_hidden_layers=2, num_labels=2,
                                                      id2label={0: "negative", 1: "positive"},
                                                      label2id={"negative": 0, "positive": 1}, **config))
    return save(model, BertTokenizerFast, path)
