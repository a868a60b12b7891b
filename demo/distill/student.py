"""A student made from its teacher: embeddings, a subset of layers and the head copied (Sanh et
al., 2019), for a classifier teacher or a masked-LM one.

Two shapes: the teacher's own (BERT with fewer layers) or DistilBERT (no token-type embeddings,
no pooler), with BERT's weight names mapped onto DistilBERT's.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForMaskedLM,
    DistilBertForSequenceClassification,
    DistilBertTokenizerFast,
    PreTrainedModel,
)

from demo.core.errors import UsageError
from demo.models.loading import pretrained

# BERT layer sub-module -> DistilBERT layer sub-module (same tensors, other names).
BERT_TO_DISTIL_LAYER = {
    "attention.self.query": "attention.q_lin",
    "attention.self.key": "attention.k_lin",
    "attention.self.value": "attention.v_lin",
    "attention.output.dense": "attention.out_lin",
    "attention.output.LayerNorm": "sa_layer_norm",
    "intermediate.dense": "ffn.lin1",
    "output.dense": "ffn.lin2",
    "output.LayerNorm": "output_layer_norm",
}


def layer_pairs(layers: list[int] | None, which: str) -> list[tuple[int, int]]:
    """(student, teacher) indices into hidden_states, the one pairing rule of both objectives.

    "last": the two models' output states (DistilBERT's cosine term; for evenly spaced layers the
    student's last layer is a copy of the teacher's last). "all": the embeddings ([0] in both) and
    each student layer j with the teacher layer it was copied from ([j + 1] and [layers[j] + 1])."""
    if which == "last":
        return [(-1, -1)]
    if not layers:
        raise ValueError("aligning every layer needs the teacher layers the student kept")
    return [(0, 0)] + [(j + 1, t + 1) for j, t in enumerate(layers)]


def parse_layers(spec: str | int, teacher_layers: int) -> list[int]:
    """'6' -> 6 evenly spaced layers (first and last kept); '0,2,4,7,9,11' -> that list."""
    text = str(spec).strip()
    if "," in text:
        try:
            layers = [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise UsageError(f"--student-layers {text!r}: give a number or a comma-separated list of layer "
                             "indices such as 0,2,4,7,9,11.") from None
        if sorted(set(layers)) != layers:
            raise UsageError(f"--student-layers {text!r}: list each layer once, in increasing order.")
    else:
        try:
            n = int(text)
        except ValueError:
            raise UsageError(f"--student-layers {text!r}: give a number or a list such as 0,2,4.") from None
        if not 1 <= n <= teacher_layers:
            raise UsageError(f"--student-layers {n}: the teacher has {teacher_layers} layers; pick 1 to "
                             f"{teacher_layers}.")
        if n == 1:
            return [teacher_layers - 1]
        # Evenly spaced, rounding half up: 12 -> 6 gives 0,2,4,7,9,11 (the original DistilBERT list).
        layers = [int(i * (teacher_layers - 1) / (n - 1) + 0.5) for i in range(n)]
    if not layers or layers[0] < 0 or layers[-1] >= teacher_layers:
        raise UsageError(f"--student-layers {text!r}: indices must lie in 0..{teacher_layers - 1}.")
    return layers


def _bert_layers_state(teacher_sd: dict[str, torch.Tensor], prefix: str, layers: list[int]):
    """Yield (student layer index, sub-name, tensor) for the kept teacher layers."""
    for new, old in enumerate(layers):
        head = f"{prefix}encoder.layer.{old}."
        for name, tensor in teacher_sd.items():
            if name.startswith(head):
                yield new, name[len(head):], tensor


def bert_student(teacher: BertForSequenceClassification | BertForMaskedLM, layers: list[int]) -> PreTrainedModel:
    """The teacher's architecture with only the kept layers; every other tensor copied as is."""
    config = BertConfig.from_dict({**teacher.config.to_dict(), "num_hidden_layers": len(layers)})
    student = type(teacher)(config)
    sd = teacher.state_dict()
    new_sd = {k: v for k, v in sd.items() if ".encoder.layer." not in k}
    for new, sub, tensor in _bert_layers_state(sd, "bert.", layers):
        new_sd[f"bert.encoder.layer.{new}.{sub}"] = tensor
    student.load_state_dict(new_sd, strict=True)
    return student


def _distilbert_config(tc: BertConfig, layers: list[int], **head) -> DistilBertConfig:
    if getattr(tc, "position_embedding_type", "absolute") != "absolute":
        raise UsageError("the DistilBERT shape needs absolute position embeddings; use --student-arch bert.")
    return DistilBertConfig(
        vocab_size=tc.vocab_size, max_position_embeddings=tc.max_position_embeddings, n_layers=len(layers),
        n_heads=tc.num_attention_heads, dim=tc.hidden_size, hidden_dim=tc.intermediate_size,
        dropout=tc.hidden_dropout_prob, attention_dropout=tc.attention_probs_dropout_prob,
        activation=tc.hidden_act, initializer_range=tc.initializer_range, pad_token_id=tc.pad_token_id, **head)


def _distilbert_body(sd: dict[str, torch.Tensor], layers: list[int]) -> dict[str, torch.Tensor]:
    """Embeddings and kept layers under DistilBERT's names."""
    new_sd = {
        "distilbert.embeddings.word_embeddings.weight": sd["bert.embeddings.word_embeddings.weight"],
        # DistilBERT has no token types: single-segment input always adds token type 0, so fold it in.
        "distilbert.embeddings.position_embeddings.weight":
            sd["bert.embeddings.position_embeddings.weight"] + sd["bert.embeddings.token_type_embeddings.weight"][0],
        "distilbert.embeddings.LayerNorm.weight": sd["bert.embeddings.LayerNorm.weight"],
        "distilbert.embeddings.LayerNorm.bias": sd["bert.embeddings.LayerNorm.bias"],
    }
    for new, sub, tensor in _bert_layers_state(sd, "bert.", layers):
        module, _, param = sub.rpartition(".")
        new_sd[f"distilbert.transformer.layer.{new}.{BERT_TO_DISTIL_LAYER[module]}.{param}"] = tensor
    return new_sd


def _load_mapped(student: PreTrainedModel, new_sd: dict[str, torch.Tensor], tied: tuple[str, ...] = ()):
    missing, unexpected = student.load_state_dict(new_sd, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids") and k not in tied]
    if missing or unexpected:
        raise RuntimeError(f"weight mapping incomplete: missing {missing}, unexpected {unexpected}")
    return student


# DistilBERT head tensor <- the BERT teacher's. BERT's pooler (dense + tanh on [CLS]) is the nearest thing to
# DistilBERT's pre_classifier; the masked-LM head's transform, LayerNorm and bias are copied as they are.
CLASSIFIER_HEAD = {"pre_classifier.weight": "bert.pooler.dense.weight", "pre_classifier.bias": "bert.pooler.dense.bias",
                   "classifier.weight": "classifier.weight", "classifier.bias": "classifier.bias"}
MLM_HEAD = {"vocab_transform.weight": "cls.predictions.transform.dense.weight",
            "vocab_transform.bias": "cls.predictions.transform.dense.bias",
            "vocab_layer_norm.weight": "cls.predictions.transform.LayerNorm.weight",
            "vocab_layer_norm.bias": "cls.predictions.transform.LayerNorm.bias",
            "vocab_projector.bias": "cls.predictions.bias"}


def distilbert_student(teacher: BertForSequenceClassification,
                       layers: list[int]) -> DistilBertForSequenceClassification:
    """DistilBERT shape: token-type-0 embedding folded into positions, BERT names mapped, pooler -> pre_classifier."""
    tc = teacher.config
    config = _distilbert_config(tc, layers, seq_classif_dropout=tc.hidden_dropout_prob, num_labels=tc.num_labels,
                                id2label=tc.id2label, label2id=tc.label2id, problem_type=tc.problem_type)
    sd = teacher.state_dict()
    new_sd = {**_distilbert_body(sd, layers), **{new: sd[old] for new, old in CLASSIFIER_HEAD.items()}}
    return _load_mapped(DistilBertForSequenceClassification(config), new_sd)


def distilbert_mlm_student(teacher: BertForMaskedLM, layers: list[int]) -> DistilBertForMaskedLM:
    """DistilBERT shape with the teacher's masked-LM head, the output projection tied to the (copied)
    word embeddings as in the teacher."""
    sd = teacher.state_dict()
    new_sd = {**_distilbert_body(sd, layers), **{new: sd[old] for new, old in MLM_HEAD.items()}}
    student = _load_mapped(DistilBertForMaskedLM(_distilbert_config(teacher.config, layers)), new_sd,
                           tied=("vocab_projector.weight",))
    student.tie_weights()
    return student


def make_student(teacher: PreTrainedModel, layers: list[int], arch: str = "distilbert") -> PreTrainedModel:
    """Student for a BERT teacher: a sequence classifier, or a masked LM (general distillation).
    arch: 'distilbert' (default) or 'bert'."""
    if isinstance(teacher, BertForMaskedLM):
        student = distilbert_mlm_student(teacher, layers) if arch == "distilbert" else bert_student(teacher, layers)
    elif isinstance(teacher, BertForSequenceClassification):
        student = distilbert_student(teacher, layers) if arch == "distilbert" else bert_student(teacher, layers)
    else:
        raise UsageError(f"the teacher must be a BERT sequence classifier or masked LM, got "
                         f"{type(teacher).__name__}; fine-tune a BERT encoder first with `python -m demo.distill "
                         "finetune` (--objective mlm for a masked LM).")
    return student.to(next(teacher.parameters()).dtype)


def save_tokenizer(tokenizer, out: Path, arch: str) -> None:
    """The teacher's vocabulary; for a DistilBERT student, a tokenizer that emits no token_type_ids."""
    if arch != "distilbert":
        tokenizer.save_pretrained(out)
        return
    from transformers.utils import logging as hf_logging

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "loaded from a BertTokenizer checkpoint": the point of this copy
        try:
            pretrained(DistilBertTokenizerFast, tmp).save_pretrained(out)
        finally:
            hf_logging.set_verbosity(verbosity)
