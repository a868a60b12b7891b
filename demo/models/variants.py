"""Every variant a task's pair can be measured as, in one table: how it is built, its title, colour and
runtime, and whose weights it runs. The benchmark, the app's third column, the charts and the reports look
a variant up here by name; adding one touches this table and its builder only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from demo.models import int8_choice, onnx_variants, openvino_variants
from demo.models.config import APP_INT8, PAIR
from demo.models.inputs import GENERIC_SENTENCES
from demo.models.loading import LoadedModel

Builder = Callable[[LoadedModel, int], LoadedModel]  # (the fp32 model it is made from, threads) -> the variant


def _onnx(int8: bool) -> Builder:
    def build(source: LoadedModel, threads: int) -> LoadedModel:
        return onnx_variants.export(source, int8=int8, threads=threads)

    return build


def _openvino(source: LoadedModel, threads: int) -> LoadedModel:
    return openvino_variants.export(source, GENERIC_SENTENCES, threads=threads)


def _fastest_int8(source: LoadedModel, threads: int) -> LoadedModel:
    return int8_choice.fastest(source, threads)


@dataclass(frozen=True)
class Variant:
    name: str
    title: str  # how a page or report names it
    color: str  # its colour in every chart
    runtime: str  # what runs it: pytorch, onnxruntime, openvino, or the fastest int8 backend of this machine
    source: str  # whose weights: "teacher" or "student"
    build: Builder | None = None  # None: the loaded fp32 model itself
    cpu_only: bool = False  # int8 and these runtimes are CPU techniques
    in_bench_default: bool = False  # timed by `python -m demo.bench` unless --variants says otherwise


TABLE: dict[str, Variant] = {v.name: v for v in (
    Variant("teacher", "Teacher", "#1f77b4", "pytorch", "teacher", in_bench_default=True),
    Variant("student", "Student", "#ff7f0e", "pytorch", "student", in_bench_default=True),
    Variant("student-onnx-fp32", "Student · ONNX Runtime fp32", "#9467bd", "onnxruntime", "student", _onnx(False),
            cpu_only=True, in_bench_default=True),
    Variant("student-onnx-int8", "Student · ONNX Runtime dynamic int8", "#2ca02c", "onnxruntime", "student",
            _onnx(True), cpu_only=True, in_bench_default=True),
    Variant("student-openvino-int8", "Student · OpenVINO static int8", "#8c564b", "openvino", "student", _openvino,
            cpu_only=True),
    Variant("student-int8", "Student · int8 (this machine's fastest backend)", "#17becf", "fastest int8", "student",
            _fastest_int8, cpu_only=True),
    Variant("teacher-int8", "Teacher · int8 (this machine's fastest backend)", "#7f7f7f", "fastest int8", "teacher",
            _fastest_int8, cpu_only=True),
    Variant("teacher-onnx-int8", "Teacher · ONNX Runtime dynamic int8", "#bcbd22", "onnxruntime", "teacher",
            _onnx(True), cpu_only=True),
)}
VARIANTS = tuple(TABLE)
BENCH_VARIANTS = tuple(v.name for v in TABLE.values() if v.in_bench_default)
assert APP_INT8 in TABLE  # the app's optional third column (config.py names it)


def variant(name: str) -> Variant:
    return TABLE[name]


def color(name: str) -> str:
    return TABLE[name].color if name in TABLE else "#444"


def title(name: str) -> str:
    return TABLE[name].title if name in TABLE else name


def derived(name: str) -> bool:
    """Built from a pair's fp32 model (not one of the pair itself)."""
    return name not in PAIR


def build(name: str, pair: dict[str, LoadedModel], threads: int) -> LoadedModel:
    """The variant of a loaded pair; raises LoadError (with its reason and fix) where it cannot be had."""
    v = TABLE[name]
    source = pair[v.source]
    return source if v.build is None else v.build(source, threads)
