"""The student as OpenVINO int8 (weights and activations, static, calibrated by NNCF): the benchmark's
other int8 path, measured beside ONNX Runtime's dynamic int8 on the same student and inputs.

Built with openvino and nncf directly, the two libraries optimum-intel drives (its OVQuantizer calls
nncf.quantize with the transformer model type, as here): optimum-intel itself requires torchvision, and
PyPI's torchvision cannot load beside the CPU build of torch this project pins, which breaks
`import transformers.BertForMaskedLM` ("operator torchvision::nms does not exist"). Both libraries are
in requirements.txt; where they cannot be had (another platform), the variant is skipped with a note and the
fastest-int8 choice falls back on ONNX Runtime.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from pathlib import Path

import numpy as np
import torch

from demo.core.errors import UserError
from demo.data.files import read_texts
from demo.models import onnx_variants
from demo.models.loading import LoadedModel, LoadError
from demo.models.runtime_model import RuntimeModel

log = logging.getLogger(__name__)

CALIBRATION_TEXTS = 64  # generic texts NNCF measures activation ranges on, where the model's own are unknown
# texts of the model's own training file, where its run recorded one: for the MiniLM teacher 300 kept 0.9897 of
# its fp32 SST-2 answers in int8, 1,000 kept 0.9931 (docs/results.md)
OWN_CALIBRATION_TEXTS = 1000
CALIBRATION_LENGTHS = (16, 32, 64, 128)  # tokens: the ranges of short and long inputs both


def available() -> str | None:
    """Why the variant cannot be built here (None when it can)."""
    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
    except ImportError:
        return "openvino and nncf are not installed (pip install -r requirements.txt)."
    return None


def calibration_feeds(student: LoadedModel, sentences: list[str], input_names: list[str],
                      seed: int = 0, count: int = CALIBRATION_TEXTS) -> list[dict[str, np.ndarray]]:
    """Texts made of generic sentences (never the evaluation file, which would flatter the agreement),
    one per feed, cut to a spread of lengths; a mask token in each for a fill-mask student."""
    rng = random.Random(seed)
    if student.tokenizer is None:  # architecture only (random weights): ranges of random token ids serve the timing
        vocab = student.model.config.vocab_size
        return [{name: np.asarray([[1 if name == "attention_mask" else (0 if name == "token_type_ids" else
                                                                           rng.randrange(1000, vocab))
                                    for _ in range(CALIBRATION_LENGTHS[i % len(CALIBRATION_LENGTHS)])]], dtype=np.int64)
                 for name in input_names} for i in range(count)]
    mask = student.tokenizer.mask_token if student.task == "fill_mask" else None
    feeds = []
    for i in range(count):
        length = CALIBRATION_LENGTHS[i % len(CALIBRATION_LENGTHS)]
        words: list[str] = []
        while len(words) < length:
            words += rng.choice(sentences).split()
        if mask:
            words[rng.randrange(min(len(words), length - 2))] = mask
        enc = student.tokenizer([" ".join(words)], truncation=True, max_length=length, return_tensors="np")
        first = enc["input_ids"]
        feeds.append({name: np.asarray(enc[name] if name in enc else np.zeros_like(first), dtype=np.int64)
                      for name in input_names})
    return feeds


def own_training_texts(model: LoadedModel, n: int = OWN_CALIBRATION_TEXTS, seed: int = 0) -> list[str]:
    """A seeded sample of the text the model was trained on, where its run recorded the file (this project's
    finetune and distill write it in metrics.json) and it is readable here; [] otherwise. In-domain ranges
    keep more of the fp32 answers than generic sentences (0.9908 against 0.9885 on SST-2 validation for a
    MiniLM student): the evaluation file is never used, which would flatter the agreement."""
    if model.random_weights or not model.weight_files:
        return []
    metrics = Path(model.weight_files[0]).parent / "metrics.json"
    try:
        train = json.loads(metrics.read_text(encoding="utf-8")).get("args", {}).get("train_file")
        files = [f for f in (train if isinstance(train, list) else [train]) if f and Path(f).is_file()]
        texts = read_texts(files[0]).texts if files else []
    except (OSError, ValueError, UserError):
        return []
    return random.Random(seed).sample(texts, min(n, len(texts)))


def export(student: LoadedModel, sentences: list[str], threads: int | None = None,
           cache_root: Path | None = None) -> LoadedModel:
    """OpenVINO int8 student, quantised from its ONNX fp32 graph once, then read from the cache. Calibrated on
    the model's own training text where it can be had (own_training_texts), else on `sentences`."""
    missing = available()
    if missing:
        raise LoadError(student.name, missing, "The other variants still run.")

    import nncf
    import openvino as ov

    own = own_training_texts(student)
    feeds_from, count = (own, len(own)) if own else (sentences, CALIBRATION_TEXTS)
    digest = hashlib.sha256("\n".join(feeds_from).encode()).hexdigest()[:8]
    fp32 = onnx_variants.onnx_file(student, int8=False, cache_root=cache_root)
    target = fp32.parent.with_name(f"{fp32.parent.name}-openvino-int8-{digest}") / "model.xml"
    core = ov.Core()
    try:
        if not target.is_file():
            log.info("quantising %s to OpenVINO int8 (NNCF, %d calibration texts, %s)", student.name, count,
                     "its own training text" if own else "generic sentences")
            model = ov.convert_model(str(fp32))
            names = [port.get_any_name() for port in model.inputs]
            quantized = nncf.quantize(model, nncf.Dataset(calibration_feeds(student, feeds_from, names, count=count)),
                                      model_type=nncf.ModelType.TRANSFORMER, subset_size=count)
            target.parent.mkdir(parents=True, exist_ok=True)
            ov.save_model(quantized, str(target))
        compiled = core.compile_model(str(target), "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                          **({"INFERENCE_NUM_THREADS": threads} if threads else {})})
    except Exception as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LoadError(student.name, f"OpenVINO int8 failed ({why}).", "The other variants still run.") from exc
    names = [port.get_any_name() for port in compiled.inputs]
    output = compiled.output(0)
    model = RuntimeModel(student.model.config, names, lambda feeds: compiled(feeds)[output], runtime="openvino")
    return LoadedModel(spec=student.spec, task=student.task, model=model, tokenizer=student.tokenizer,
                       device=torch.device("cpu"), weight_files=[target, target.with_suffix(".bin")],
                       runtime="openvino", dtype_name="int8", random_weights=student.random_weights)

