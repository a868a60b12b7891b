"""Models built from their configuration with random weights: real shapes, meaningless answers.

For measuring speed and size where the weights are not available (offline, or before a download
of gigabytes). Every caller must say that the weights were random.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoTokenizer, BertConfig, DistilBertConfig

from demo.core.scratch import scratch_dir
from demo.models.config import ModelSpec
from demo.models.loading import MODEL_BUILD_LOCK, MODEL_CLASSES, LoadedModel, LoadError, pretrained

# The published shapes, for when a model's own config cannot be read (no network, empty cache).
BUILTIN_SHAPES = {"teacher": ("BERT-base", BertConfig), "student": ("DistilBERT-base", DistilBertConfig)}
DEFAULT_LABELS = {"sentiment": 2, "classify": 6}  # SST-2 and emotion


def architecture_config(spec: ModelSpec, variant: str, task: str):
    """(config, where it came from): the model's own config if readable offline, else the built-in shape."""
    local_only = not spec.is_local
    try:
        config = pretrained(AutoConfig, spec.model, revision=spec.revision, local_files_only=local_only)
        source = f"config of {spec.model}"
    except LoadError:  # not readable here: fall back to the published shape
        name, cls = BUILTIN_SHAPES[variant]
        config = cls()
        source = f"built-in {name} shape ({spec.model}'s config is not available offline)"
    if task != "fill_mask":
        n = len(spec.labels) if spec.labels else (config.num_labels if "config of" in source else DEFAULT_LABELS[task])
        config.num_labels = n
        config.id2label = {i: (spec.labels[i] if spec.labels else f"LABEL_{i}") for i in range(n)}
        config.label2id = {v: k for k, v in config.id2label.items()}
    return config, source


def offline_tokenizer(spec: ModelSpec):
    """The model's tokenizer where one can be had offline, else None (inputs become random token ids)."""
    try:
        return pretrained(AutoTokenizer, spec.model, revision=spec.revision, local_files_only=not spec.is_local)
    except LoadError:
        return None


def build_random(spec: ModelSpec, task: str, variant: str, device: torch.device, dtype: torch.dtype = torch.float32,
                 workdir: Path | None = None) -> tuple[LoadedModel, str]:
    """A randomly initialised model of the spec's architecture, saved to disk (for disk size and ONNX export)."""
    config, source = architecture_config(spec, variant, task)
    torch.manual_seed(0)
    with MODEL_BUILD_LOCK:
        model = MODEL_CLASSES[task].from_config(config)
    if workdir is None:  # the app's fallback: random weights are worth nothing once the process ends
        workdir = scratch_dir("architecture-only-")
    workdir = Path(workdir) / f"{task}-{variant}"
    model.save_pretrained(workdir, safe_serialization=True)
    tokenizer = offline_tokenizer(spec)
    if tokenizer is not None:
        tokenizer.save_pretrained(workdir)
    model.to(device=device, dtype=dtype).eval()
    loaded = LoadedModel(spec=spec, task=task, model=model, tokenizer=tokenizer, device=device,
                         weight_files=sorted(workdir.glob("*.safetensors")), random_weights=True)
    return loaded, source
