"""The accelerated student: exported with torch.onnx, optionally dynamic int8, run by ONNX Runtime.

No optimum here: its ONNX exporter (optimum-onnx) holds transformers below 4.58. Exports are cached
on disk, keyed by the model's weights, the torch and ONNX Runtime versions and the quantisation
scheme, so only the first run pays for them. The result is a LoadedModel that the task code runs
like any other.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import re
import warnings
from pathlib import Path

import torch

from demo.models.inputs import accepted_inputs
from demo.models.loading import LoadedModel, LoadError, pretrained
from demo.models.runtime_model import RuntimeModel

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


# The dynamic-int8 settings per instruction set, as optimum's AutoQuantizationConfig chose them (activations
# uint8 everywhere; weights uint8 only on AVX2, where ONNX Runtime's u8u8 kernels are the fast ones).
INT8_WEIGHTS = {"avx2": "QUInt8", "avx512": "QInt8", "avx512_vnni": "QInt8", "arm64": "QInt8"}
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def _cache_key(student: LoadedModel, int8: bool) -> str:
    import onnxruntime

    h = hashlib.sha256()
    h.update(student.task.encode())
    for f in student.weight_files:
        stat = Path(f).stat()
        h.update(f"{Path(f).resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    if not student.weight_files:
        h.update(student.name.encode())
    h.update(f"torch {torch.__version__} opset {OPSET} onnxruntime {onnxruntime.__version__}".encode())
    h.update((f"{quantization_scheme()}-per-channel={PER_CHANNEL}-{EXCLUSION_RULES}" if int8 else "fp32").encode())
    return h.hexdigest()[:20]


def fp32_nodes(onnx_file: Path) -> list[str]:
    """The nodes dynamic int8 should leave in fp32, by name.

    - MatMuls between two activations (attention scores, attention x values): ONNX Runtime's own
      quantize_dynamic leaves them alone by default (MatMulConstBOnly); named here so the rule is ours.
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


def export_fp32(source: Path, task: str, target: Path) -> None:
    """The student's graph as ONNX (torch.onnx's TorchScript exporter), batch and length left open.

    Eager attention for the export: the graph then holds plain MatMul/Softmax nodes, which dynamic
    int8 and every runtime handle; written to a temporary name first, so a crash leaves no half file
    that the cache would take for a finished one."""
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification

    cls = AutoModelForMaskedLM if task == "fill_mask" else AutoModelForSequenceClassification
    model = pretrained(cls, str(source), attn_implementation="eager").eval()
    names = [name for name in INPUT_NAMES if name in accepted_inputs(model)]
    example = {name: torch.zeros(2, 16, dtype=torch.long) if name == "token_type_ids"
               else torch.ones(2, 16, dtype=torch.long) for name in names}
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes["logits"] = {0: "batch", 1: "sequence"} if task == "fill_mask" else {0: "batch"}
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial.onnx")
    with warnings.catch_warnings():  # the tracer's notes on Python-side shape checks, none of which bind
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (), str(partial), kwargs=example, input_names=names, output_names=["logits"],
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    partial.replace(target)


class QuantiserChatter(logging.Filter):
    """ONNX Runtime's quantiser logs on the root logger (`logging.info(...)`): a line for every tensor it leaves
    alone, hundreds a model, and advice to pre-process its inputs; nothing a user of this app can act on.
    Dropped while it quantises (its errors and other warnings pass)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ours = f"onnxruntime{os.sep}quantization{os.sep}" in record.pathname
        return not (ours and (record.levelno <= logging.INFO or "pre-processing before quantization" in
                              record.getMessage()))


def quantize_int8(fp32_file: Path, target: Path) -> None:
    """Dynamic int8 (weights per channel, activations per call) with ONNX Runtime's own quantiser."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial.onnx")
    chatter, root = QuantiserChatter(), logging.getLogger()
    root.addFilter(chatter)
    try:
        quantize_dynamic(fp32_file, partial, op_types_to_quantize=list(IntegerOpsRegistry), per_channel=PER_CHANNEL,
                         reduce_range=False, weight_type=getattr(QuantType, INT8_WEIGHTS[quantization_scheme()]),
                         nodes_to_exclude=fp32_nodes(fp32_file),
                         extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
    finally:
        root.removeFilter(chatter)
    partial.replace(target)


def onnx_file(student: LoadedModel, int8: bool, cache_root: Path | None = None) -> Path:
    """The student's ONNX file (fp32 or dynamic int8), made on first use and then read from the cache."""
    source = Path(student.weight_files[0]).parent if student.weight_files else None
    if source is None:
        raise LoadError(student.name, "the student has no weight files on disk to export.",
                        "Save it with save_pretrained first.")
    if student.random_weights:  # new weights every run: export beside them, never into the shared cache
        cache_root = source / "onnx"
    target = Path(cache_root or CACHE_ROOT) / _cache_key(student, int8)
    fp32 = target.with_name(target.name + "-fp32") / "model.onnx" if int8 else target / "model.onnx"
    wanted = target / "model_quantized.onnx" if int8 else fp32
    try:
        if not fp32.is_file():
            log.info("exporting %s to ONNX (first run only)", student.name)
            export_fp32(source, student.task, fp32)
        if int8 and not wanted.is_file():
            log.info("quantising %s to dynamic int8 (%s)", student.name, quantization_scheme())
            quantize_int8(fp32, wanted)
    except Exception as exc:
        raise LoadError(student.name, f"ONNX {'int8 ' if int8 else ''}export failed "
                        f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}).",
                        "The PyTorch student still runs; check that torch.onnx can export this architecture.") from exc
    return wanted


def export(student: LoadedModel, int8: bool, threads: int | None = None,
           cache_root: Path | None = None) -> LoadedModel:
    """The student run by ONNX Runtime (fp32 or dynamic int8), as a LoadedModel the task code runs as usual."""
    import onnxruntime as ort

    path = onnx_file(student, int8, cache_root)
    try:
        session = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise LoadError(student.name, f"ONNX Runtime could not open {path.name} ({type(exc).__name__}).",
                        "Delete the file to have it exported again.") from exc
    names = [i.name for i in session.get_inputs()]
    model = RuntimeModel(student.model.config, names, lambda feeds: session.run(["logits"], feeds)[0],
                         runtime="onnxruntime")
    return LoadedModel(spec=student.spec, task=student.task, model=model, tokenizer=student.tokenizer,
                       device=torch.device("cpu"), weight_files=[path], runtime="onnxruntime",
                       dtype_name="int8" if int8 else "float32", random_weights=student.random_weights)
