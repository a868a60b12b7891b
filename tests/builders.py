"""What the tests build: tiny random checkpoints for every task (saved like real ones, fast, offline)
and the small data files they train and evaluate on. Shared by every test module; fixtures are in
conftest.py."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import random
import socket
import subprocess
import sys
import time
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        words = rng.sample(FILLER, 4) + [rng.choice(POSITIVE if label else NEGATIVE)]
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


# ---- the app, started as a user starts it ----------------------------------------------------------
class AppServer:
    """`python app.py` in a subprocess, as a user would start it."""

    def __init__(self, config: Path, log_path: Path, *extra: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_path
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False",
               "HF_HUB_OFFLINE": "1", **(env or {})}
        env.pop("GRADIO_SERVER_NAME", None)
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "app.py", "--config", str(config), "--port",
                                      str(self.port), *extra], cwd=ROOT, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait_until_served(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"app not served after {timeout}s:\n{self.log()}")

    def client(self):
        from gradio_client import Client

        return Client(self.url, verbose=False)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


CALL_TIMEOUT = 60.0  # seconds one API call of a test may take, even on the slowest machine of this kind


def call(client, *args, api_name: str, timeout: float = CALL_TIMEOUT):
    """client.predict with a bound: gradio_client waits on its event stream without a timeout, so a call
    the app never answers would hang the suite; here it fails and names the endpoint."""
    job = client.submit(*args, api_name=api_name)
    try:
        return job.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        job.cancel()
        raise TimeoutError(f"{api_name} gave no answer within {timeout:.0f} s; see the app's log") from None


def call_when_ready(client, text: str, api_name: str, timeout: float = 60):
    """Call an endpoint, retrying while its models are still loading in the background."""
    from gradio_client.exceptions import AppError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return call(client, text, api_name=api_name)
        except AppError as exc:
            if "still loading" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)

class InProcessApp:
    """app.py's serve() in this process: the same flags, config, page and API as `python app.py`,
    without a new interpreter (about 10 s of imports on these machines). For tests of the page and its
    API; tests of the process itself (signals, binding, memory) start an AppServer."""

    def __init__(self, config: Path, *flags: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self._records: list = []
        self._handler = logging.Handler(level=logging.WARNING)
        self._handler.emit = self._records.append
        logging.getLogger().addHandler(self._handler)
        saved = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})  # read while the page is built (SPACE_ID), then put back
        try:
            import app

            served = app.serve(["--config", str(config), "--port", str(self.port), *flags])
        finally:
            for key, value in saved.items():
                os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
        if isinstance(served, int):
            logging.getLogger().removeHandler(self._handler)
            raise RuntimeError(f"app.serve refused the config: exit code {served}")
        self.page, self.registry = served

    def wait_until_loaded(self, timeout: float = 120) -> "InProcessApp":
        """Until every model has loaded or failed (the page answers before: it says what is loading)."""
        deadline = time.monotonic() + timeout
        while not self.registry.all_settled():
            if time.monotonic() > deadline:
                raise TimeoutError(f"models still loading after {timeout:.0f} s")
            time.sleep(0.1)
        return self

    def client(self):
        from gradio_client import Client

        return Client(self.url, verbose=False)

    def log(self) -> str:
        """The warnings and errors logged while it served, tracebacks included."""
        formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
        return "\n".join(formatter.format(r) for r in self._records)

    def stop(self) -> None:
        """Close the page once its models have settled: a loader still building a model when the next test
        builds one would race it (transformers builds on a meta device that every thread sees)."""
        try:
            self.wait_until_loaded()
        finally:
            training = getattr(self.page, "training_service", None)
            if training is not None:
                training.runner.close()
            self.page.close()
        logging.getLogger().removeHandler(self._handler)
