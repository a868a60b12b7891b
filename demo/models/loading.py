"""The one place weights are read: from the Hub or a local directory, once per model per process.
Every from_pretrained of the package (configs, tokenizers, models, the ONNX export's source, the
masked LMs of augmentation and general distillation) goes through `pretrained` here.

Loading is safe by default: safetensors are preferred, `.bin` files only go through torch's
weights-only unpickler (transformers' default with torch >= 2.6), and remote code never runs.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import torch
from transformers import (
    AutoConfig,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from demo.core.errors import UserError
from demo.models.config import ConfigError, ModelSpec

log = logging.getLogger(__name__)

# Which head each task needs.
MODEL_CLASSES = {
    "sentiment": AutoModelForSequenceClassification,
    "classify": AutoModelForSequenceClassification,
    "fill_mask": AutoModelForMaskedLM,
}
WEIGHT_PATTERNS = ("model*.safetensors", "pytorch_model*.bin")  # in order of preference
OFFLINE_FIX = (
    "Point the config's `model` at a local directory saved with save_pretrained, "
    "or fill the Hugging Face cache once with network access and start with HF_HUB_OFFLINE=1."
)


class LoadError(UserError, RuntimeError):
    """A model that could not be loaded, with a one-sentence reason and how to fix it."""

    def __init__(self, model: str, reason: str, fix: str):
        super().__init__(f"{model}: {reason} {fix}")
        self.model, self.reason, self.fix = model, reason, fix


@dataclass
class LoadedModel:
    """A model ready to answer: module, tokenizer and the facts the size chart needs."""

    spec: ModelSpec
    task: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    weight_files: list[Path] = field(default_factory=list)
    runtime: str = "pytorch"  # or "onnxruntime"
    dtype_name: str | None = None  # set where the module has no torch parameters (ONNX)
    random_weights: bool = False  # architecture-only: built from a config, answers mean nothing
    display_name: str | None = None  # what visitors read instead of a server path (a visitor's own student)
    note: str | None = None  # how it was made, for status lines and reports (e.g. which int8 backend and why)

    @property
    def name(self) -> str:
        return self.display_name or self.spec.model

    @property
    def dtype(self) -> str:
        if self.dtype_name is not None:
            return self.dtype_name
        return str(next(self.model.parameters()).dtype).replace("torch.", "")

    @property
    def max_length(self) -> int:
        """Longest input the model accepts, in tokens (BERT: 512)."""
        limit = getattr(self.model.config, "max_position_embeddings", 512) or 512
        tok_limit = (self.tokenizer.model_max_length if self.tokenizer is not None else None) or limit
        return int(min(limit, tok_limit if tok_limit < 1_000_000 else limit))

    @property
    def id2label(self) -> dict[int, str]:
        return {int(k): str(v) for k, v in self.model.config.id2label.items()}


def resolve_device(requested: str = "auto") -> torch.device:
    """auto: CUDA, then Apple MPS, then CPU. An explicit device that is absent is a config error."""
    requested = requested.lower()
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps and mps.is_available())
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_ok else torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is visible; use --device auto or cpu.")
    if requested == "mps" and not mps_ok:
        raise ConfigError("device 'mps' was asked for but Apple MPS is not available; use --device auto or cpu.")
    if requested not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {requested!r}; use auto, cpu, cuda or mps.")
    return torch.device(requested)


def resolve_dtype(device: torch.device, fp16: bool) -> torch.dtype:
    """fp16 only where it pays and is safe: on CUDA. Elsewhere float32."""
    return torch.float16 if fp16 and device.type == "cuda" else torch.float32


def weight_files(spec: ModelSpec) -> list[Path]:
    """The weight files from_pretrained actually reads (safetensors first), local or cached."""
    path = Path(spec.model)
    if path.is_dir():
        for pattern in WEIGHT_PATTERNS:
            found = sorted(path.glob(pattern))
            if found:
                return found
        return []
    from huggingface_hub import try_to_load_from_cache

    def cached(name: str) -> Path | None:
        hit = try_to_load_from_cache(spec.model, name, revision=spec.revision)
        return Path(hit) if isinstance(hit, str) else None

    for single, index in (("model.safetensors", "model.safetensors.index.json"),
                          ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        if (hit := cached(single)) is not None:
            return [hit]
        if (idx := cached(index)) is not None:
            shards = sorted(set(json.loads(idx.read_text())["weight_map"].values()))
            return [p for s in shards if (p := cached(s)) is not None]
    return []


def explain_load_error(spec: ModelSpec, exc: BaseException) -> LoadError:
    """Turn whatever from_pretrained raised into one sentence and a fix."""
    if isinstance(exc, LoadError):
        return exc
    text = str(exc)
    looks_like_path = spec.model.startswith(("/", ".", "~")) or spec.model.count("/") > 1
    if looks_like_path and not Path(spec.model).exists():
        return LoadError(spec.model, "this directory does not exist.",
                         "Fix the path in the config, or use a Hub id.")
    directory = Path(spec.model)
    if directory.is_dir():  # look at the files rather than parse the message
        resave = "Save it again with save_pretrained (model and tokenizer), or point the config elsewhere."
        if not (directory / "config.json").is_file():
            return LoadError(spec.model, "this directory is not a complete saved model (config.json is missing).",
                             resave)
        if not weight_files(spec):
            return LoadError(spec.model, "this directory is not a complete saved model (no model.safetensors "
                             "or pytorch_model.bin).", resave)
        lowered = text.lower()
        if any(word in lowered for word in ("safetensor", "deserializ", "unpickl", "header", "corrupt",
                                            "unexpected end", "invalid load key")) or isinstance(exc, EOFError):
            return LoadError(spec.model, "its weight file is truncated or corrupt.", resave)
        if "tokenizer" in lowered or "vocab" in lowered:
            return LoadError(spec.model, "its tokenizer files are missing or broken.", resave)
        return LoadError(spec.model, f"the directory could not be loaded ({_first_line(text)}).",
                         "Check that it was saved with save_pretrained for this task.")
    if ("couldn't connect" in text.lower() or "offline" in text.lower() or "connection" in text.lower()
            or "LocalEntryNotFound" in type(exc).__name__ or "cached files" in text):
        return LoadError(spec.model, "the Hugging Face Hub cannot be reached and the model is not in the local cache.",
                         OFFLINE_FIX)
    if ("is not a local folder and is not a valid model identifier" in text
            or "RepositoryNotFound" in type(exc).__name__ or "404" in text):
        return LoadError(spec.model, "no such model on the Hub (or it is private).",
                         "Check the id, or log in with `huggingface-cli login` for a private model.")
    return LoadError(spec.model, f"loading failed ({_first_line(text)}).", OFFLINE_FIX)


def _first_line(text: str, limit: int = 200) -> str:
    line = (text.strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def pretrained(loader, name: str, *, revision: str | None = None, **kwargs):
    """Every from_pretrained of the package goes through here: remote code never runs, a build holds
    MODEL_BUILD_LOCK (transformers builds on a meta device that every thread sees), and whatever it raises
    becomes one LoadError sentence with a fix. loader: AutoConfig, AutoTokenizer, a model class."""
    try:
        with MODEL_BUILD_LOCK:
            return loader.from_pretrained(name, revision=revision, trust_remote_code=False, **kwargs)
    except Exception as exc:
        raise explain_load_error(ModelSpec(str(name), revision=revision), exc) from exc


def read_config(name: str):
    """A checkpoint's config, to tell what it is before loading it (a classifier, a masked LM); None when
    it cannot be read (the load that follows says why)."""
    try:
        return pretrained(AutoConfig, name)
    except LoadError:
        return None


def load_model(spec: ModelSpec, task: str, device: torch.device, dtype: torch.dtype = torch.float32,
               *, local_files_only: bool = False) -> LoadedModel:
    """Load one model for a task onto a device. Raises LoadError with a reason and a fix."""
    if task not in MODEL_CLASSES:
        raise ConfigError(f"unknown task {task!r}.")
    common = dict(revision=spec.revision, local_files_only=local_files_only)
    config = pretrained(AutoConfig, spec.model, **common)
    if spec.labels is not None and task != "fill_mask":
        if len(spec.labels) != config.num_labels:
            raise LoadError(spec.model, f"the config gives {len(spec.labels)} labels but the model has "
                            f"{config.num_labels} classes.", "Give exactly one name per class, in class order.")
        config.id2label = dict(enumerate(spec.labels))
        config.label2id = {name: i for i, name in enumerate(spec.labels)}
    tokenizer = pretrained(AutoTokenizer, spec.model, **common)
    model = pretrained(MODEL_CLASSES[task], spec.model, config=config, dtype=dtype, **common)
    if task == "fill_mask" and tokenizer.mask_token is None:
        raise LoadError(spec.model, "its tokenizer has no mask token, so it cannot fill masks.",
                        "Use a masked-language model such as BERT or DistilBERT.")
    model.to(device).eval()
    return LoadedModel(spec=spec, task=task, model=model, tokenizer=tokenizer, device=device,
                       weight_files=weight_files(spec))


# transformers builds a model's modules on the meta device (a context that is not confined to the thread
# that entered it): two models built at once in one process, say the app's background loader and a
# benchmark sweep, can leave one with weights on no device. Every build in this package holds this lock.
MODEL_BUILD_LOCK = threading.RLock()

HUB_PROBE_SECONDS = 3.0  # a TCP connection to the Hub that takes longer than this counts as no network


def hub_reachable(timeout: float = HUB_PROBE_SECONDS) -> bool:
    """Whether the Hub's host answers at all: one TCP connection, seconds instead of the ~25 s that
    from_pretrained spends on retries before it gives up on a machine without network. Behind a
    proxy (HTTPS_PROXY) a direct connection proves nothing, so the libraries are left to try."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=timeout).close()
        return True
    except OSError:
        return False


class ModelCache:
    """Thread-safe: each (task head, model, labels, device, dtype) is loaded at most once per process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[tuple, LoadedModel | LoadError] = {}
        self._key_locks: dict[tuple, threading.Lock] = {}
        self.hub_unreachable: bool | None = None  # None: not probed yet; True: Hub ids try the local cache only

    def get(self, spec: ModelSpec, task: str, device: torch.device, dtype: torch.dtype) -> LoadedModel:
        head = MODEL_CLASSES[task].__name__
        key = (head, spec, str(device), str(dtype))
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            cached = self._entries.get(key)
            if cached is None:
                if not spec.is_local and self.hub_unreachable is None:
                    self.hub_unreachable = not hub_reachable()
                try:
                    cached = load_model(spec, task, device, dtype,
                                        local_files_only=bool(self.hub_unreachable) and not spec.is_local)
                except LoadError as exc:
                    if "cannot be reached" in exc.reason:
                        self.hub_unreachable = True
                    cached = exc
                self._entries[key] = cached
            if isinstance(cached, LoadError):
                raise cached
            return cached

    def forget(self, spec: ModelSpec) -> None:
        """Drop a model (loaded or failed) so that the next get() reads it again."""
        with self._lock:
            for key in [k for k in self._entries if k[1] == spec]:
                del self._entries[key]
