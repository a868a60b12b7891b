"""The accelerated student: exported to ONNX with optimum, optionally dynamic int8, run by ONNX Runtime.

Exports are cached on disk, keyed by the model's weights, the optimum version and the quantisation
scheme, so only the first run pays for them. The result is a LoadedModel that the task code runs
like any other.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import re
from pathlib import Path

import torch

from demo.models.loading import MODEL_BUILD_LOCK, LoadedModel, LoadError

log = logging.getLogger(__name__)

CACHE_ROOT = Path(os.environ.get("DISTILL_DEMO_CACHE", Path.home() / ".cache" / "distill-demo")) / "onnx"
PER_CHANNEL = True  # int8 weight scales per output channel rather than one per tensor
# MatMuls kept in fp32 (see fp32_nodes): the first layer's FFN output projection, whose input (GELU
# output) has the widest activation range in the network, and activation-by-activation MatMuls.
FIRST_FFN_OUTPUT = re.compile(r"layers?\.0/(output/dense|ffn/lin2)/MatMul$")
EXCLUSION_RULES = "const-b-only+first-ffn-output"  # part of the cache key: change it when the rules change


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def quantization_scheme() -> str:
    """The dynamic-int8 configuration for this CPU's instruction set."""
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "arm64"
    flags = cpu_flags()
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"


def _ort_class(task: str):
    from optimum.onnxruntime import (
        ORTModelForMaskedLM,
        ORTModelForSequenceClassification,
    )

    return ORTModelForMaskedLM if task == "fill_mask" else ORTModelForSequenceClassification


def _cache_key(student: LoadedModel, int8: bool) -> str:
    import optimum.version

    h = hashlib.sha256()
    h.update(student.task.encode())
    for f in student.weight_files:
        stat = Path(f).stat()
        h.update(f"{Path(f).resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    if not student.weight_files:
        h.update(student.name.encode())
    h.update(optimum.version.__version__.encode())
    h.update((f"{quantization_scheme()}-per-channel={PER_CHANNEL}-{EXCLUSION_RULES}" if int8 else "fp32").encode())
    return h.hexdigest()[:20]


def fp32_nodes(onnx_file: Path) -> list[str]:
    """The nodes dynamic int8 should leave in fp32, by name.

    - MatMuls between two activations (attention scores, attention x values): ONNX Runtime's own
      quantize_dynamic leaves them alone (MatMulConstBOnly), optimum's quantizer does not.
    - The first encoder layer's FFN output projection. Dynamic int8 gives each activation tensor one
      scale, so a few outlier channels cost every other value its precision; among the FFN output
      projections the first layer's input (GELU output) has the widest range (absmax 24 against 5 in
      the last layer of the MiniLM teacher). In a sweep over single layers and layer kinds on the
      SST-2 MiniLM pair, this MatMul was the one whose exclusion bought most: a quarter less mean
      logit error on the 3-layer student (8% on the 6-layer teacher), for about 1/18 of a 6-layer
      student's MatMul work.
    """
    import onnx

    graph = onnx.load(str(onnx_file), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    return [node.name for node in graph.node if node.op_type == "MatMul"
            and (not any(name in weights for name in node.input) or FIRST_FFN_OUTPUT.search(node.name))]


def session_options(threads: int | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    # ONNX Runtime's workers otherwise spin for a while after each run, taking the cores from the
    # PyTorch model timed next (the app and the benchmark alternate them): they sleep instead.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


def export(student: LoadedModel, int8: bool, threads: int | None = None,
           cache_root: Path | None = None) -> LoadedModel:
    """ONNX (fp32 or dynamic int8) version of a loaded student; exported once, then read from the cache."""
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    source = Path(student.weight_files[0]).parent if student.weight_files else None
    if source is None:
        raise LoadError(student.name, "the student has no weight files on disk to export.",
                        "Save it with save_pretrained first.")
    cls = _ort_class(student.task)
    if student.random_weights:  # new weights every run: export beside them, never into the shared cache
        cache_root = source / "onnx"
    cache_root = Path(cache_root or CACHE_ROOT)
    target = cache_root / _cache_key(student, int8)
    file_name = "model_quantized.onnx" if int8 else "model.onnx"
    try:
        if not (target / file_name).is_file():
            fp32_dir = target.with_name(target.name + "-fp32") if int8 else target
            if not (fp32_dir / "model.onnx").is_file():
                log.info("exporting %s to ONNX (first run only)", student.name)
                with MODEL_BUILD_LOCK:  # the export loads the PyTorch model first
                    model = cls.from_pretrained(str(source), export=True)
                model.save_pretrained(fp32_dir)
                if student.tokenizer is not None:  # architecture-only runs may have none
                    student.tokenizer.save_pretrained(fp32_dir)
            if int8:
                scheme = quantization_scheme()
                log.info("quantising %s to dynamic int8 (%s)", student.name, scheme)
                # Per-channel weight scales: markedly fewer changed answers than per-tensor, at little cost in speed.
                config = getattr(AutoQuantizationConfig, scheme)(
                    is_static=False, per_channel=PER_CHANNEL, nodes_to_exclude=fp32_nodes(fp32_dir / "model.onnx"))
                quantizer = ORTQuantizer.from_pretrained(str(fp32_dir), file_name="model.onnx")
                quantizer.quantize(save_dir=str(target), quantization_config=config)
                if student.tokenizer is not None:
                    student.tokenizer.save_pretrained(target)
        model = cls.from_pretrained(str(target), file_name=file_name, session_options=session_options(threads))
    except Exception as exc:  # noqa: BLE001 - a failed export disables this variant only
        raise LoadError(student.name, f"ONNX {'int8 ' if int8 else ''}export failed "
                        f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}).",
                        "The PyTorch student still runs; check that optimum-onnx supports this architecture.") from exc
    onnx_file = target / file_name
    return LoadedModel(spec=student.spec, task=student.task, model=model, tokenizer=student.tokenizer,
                       device=torch.device("cpu"), weight_files=[onnx_file], runtime="onnxruntime",
                       dtype_name="int8" if int8 else "float32", random_weights=student.random_weights)
