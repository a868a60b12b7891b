"""transformers' exporters against this project's own int8 paths, on one student and the same inputs.

    pip install onnxscript   # transformers.exporters' ONNX exporter needs it; the project does not
    PYTHONPATH=. python docs/trials/exporters_trial.py runs/x29/aug20

Prints (and writes to runs/exporters_trial.json) per path: export seconds, p50 ms at batch 8 x 128, and the
share of SST-2 validation answers equal to the fp32 student's. docs/results.md holds the figures it gave.
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.exporters import (
    NNCFOpenVINOQuantizer,
    OnnxConfig,
    OnnxExporter,
    OnnxRuntimeDynamicConfig,
    OnnxRuntimeQuantizer,
    OpenVINOConfig,
    OpenVINOExporter,
)

from demo.models import onnx_variants, openvino_variants
from demo.models.config import ModelSpec
from demo.models.inputs import GENERIC_SENTENCES
from demo.models.loading import load_model

VALIDATION = Path("../shared/data/sst2/validation.tsv")
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def feed(tokenizer, texts: list[str], max_length: int = 128, **kwargs) -> dict:
    enc = tokenizer(texts, truncation=True, max_length=max_length, return_tensors="pt", **kwargs)
    return {k: v for k, v in enc.items() if k in INPUTS}


def measure(call, tokenizer, texts: list[str], reference: torch.Tensor) -> dict:
    """p50 ms at batch 8 x 128 (after 3 untimed calls) and agreement with the fp32 answers."""
    answers = torch.cat([torch.as_tensor(call(feed(tokenizer, texts[i:i + 32], padding=True))).argmax(-1)
                         for i in range(0, len(texts), 32)])
    timed = feed(tokenizer, [" ".join(GENERIC_SENTENCES * 3)] * 8, padding="max_length")
    for _ in range(3):
        call(timed)
    samples = []
    for _ in range(20):
        start = time.perf_counter()
        call(timed)
        samples.append((time.perf_counter() - start) * 1000)
    return {"p50_ms_8x128": round(statistics.median(samples), 1),
            "agreement": round(float((answers == reference).float().mean()), 4)}


def main(student_dir: str) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(student_dir)
    model = AutoModelForSequenceClassification.from_pretrained(student_dir, attn_implementation="eager").eval()
    with VALIDATION.open(encoding="utf-8") as f:
        texts = [r["sentence"] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    with torch.no_grad():
        reference = torch.cat([model(**feed(tokenizer, texts[i:i + 32], padding=True)).logits.argmax(-1)
                               for i in range(0, len(texts), 32)])
    loaded = load_model(ModelSpec(student_dir), "sentiment", torch.device("cpu"))
    calibration = [feed(tokenizer, [t]) for t in openvino_variants.own_training_texts(loaded)]
    sample = feed(tokenizer, texts[:2], padding="max_length", max_length=16)  # no size-1 dims: they specialise
    exporters = {
        "transformers.exporters ONNX + OnnxRuntimeQuantizer (dynamic)": lambda: OnnxExporter().export(
            model, sample, config=OnnxConfig(dynamic=True, quantizer=OnnxRuntimeQuantizer(OnnxRuntimeDynamicConfig()))),
        "transformers.exporters OpenVINO + NNCFOpenVINOQuantizer (static)": lambda: OpenVINOExporter().export(
            model, sample, config=OpenVINOConfig(dynamic=True,
                                                 quantizer=NNCFOpenVINOQuantizer(calibration_dataset=calibration))),
    }
    rows = {}
    for name, export in exporters.items():
        start = time.perf_counter()
        exported = export()
        seconds = round(time.perf_counter() - start, 1)
        rows[name] = {"export_s": seconds, **measure(lambda x, e=exported: e(**x).logits, tokenizer, texts, reference)}
        print(name, rows[name], flush=True)
    ours = {"today: torch.onnx + ONNX Runtime quantize_dynamic": lambda cache: onnx_variants.export(
                loaded, int8=True, threads=2, cache_root=cache),
            "today: ONNX -> OpenVINO + nncf.quantize": lambda cache: openvino_variants.export(
                loaded, GENERIC_SENTENCES, threads=2, cache_root=cache)}
    for name, export in ours.items():
        start = time.perf_counter()
        built = export(Path(tempfile.mkdtemp()))
        seconds = round(time.perf_counter() - start, 1)
        rows[name] = {"export_s": seconds, **measure(lambda x, m=built: m.model(**x).logits, tokenizer, texts,
                                                     reference)}
        print(name, rows[name], flush=True)
    return rows


if __name__ == "__main__":
    figures = main(sys.argv[1] if len(sys.argv) > 1 else "runs/x29/aug20")
    Path("runs").mkdir(exist_ok=True)
    Path("runs/exporters_trial.json").write_text(json.dumps(figures, indent=1), encoding="utf-8")
