"""A model compiled for another runtime (ONNX Runtime, OpenVINO) behind the call every model gets.

The app, the benchmark and the evaluator call `loaded.model(**inputs).logits` on each model; this
wrapper gives an exported graph that same call, so the accelerated students go through one code path
with the PyTorch ones (tokeniser, masking, top-k and timing untouched).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class RuntimeOutput:
    logits: torch.Tensor


class RuntimeModel:
    """Callable like a transformers model; `run` maps int64 arrays by input name to the logits array."""

    def __init__(self, config, input_names: list[str], run: Callable[[dict[str, np.ndarray]], np.ndarray],
                 runtime: str):
        self.config = config  # the student's: labels, vocabulary size, position limit
        self.input_names = list(input_names)
        self.runtime = runtime
        self._run = run
        self._demo_accepted_inputs = set(input_names)  # what models.inputs.model_inputs passes on

    def __call__(self, **inputs: torch.Tensor) -> RuntimeOutput:
        first = next(iter(inputs.values()))
        feeds = {}
        for name in self.input_names:
            value = inputs.get(name)
            if value is None:  # e.g. token_type_ids, which a tokenizer may leave out: all zeros, as in BERT
                value = torch.zeros_like(first)
            feeds[name] = value.detach().cpu().numpy().astype(np.int64, copy=False)
        return RuntimeOutput(logits=torch.from_numpy(np.ascontiguousarray(self._run(feeds))))

    forward = __call__

    def eval(self) -> RuntimeModel:
        return self
